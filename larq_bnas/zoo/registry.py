"""The model registry: every zoo model by name, with its config and the paper's figures.

A ``ModelSpec`` ties a name to a family builder and a typed config; the zoo's models
are registered in ``larq_bnas.zoo.specs`` (imported by ``larq_bnas.zoo``), and a user can
``register`` more. ``build(name, ...)``
is the one place that turns a name, constructor options and ``weights=`` into a Keras
model; the lqz-style constructors (``BNASA()``, ``MeliusNet22()``) call it.

Names are matched without regard to case, ``-`` and ``_``: ``"bnas-a"``, ``"BNASA"`` and
``"bnas_a"`` are the same model. The command line shows the lower-case hyphenated names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from larq_bnas.config import ConfigError, ModelConfig
from larq_bnas.zoo.weights import (
    PretrainedWeights,
    load_weights,
    published_entry,
    resolve_weights,
)


class UnknownModelError(KeyError, ValueError):
    """A model name that the registry does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes:
        name: the command-line name (lower case, hyphens), e.g. ``"bnas-a"``.
        constructor: the Python constructor's name, e.g. ``"BNASA"``.
        family: "bnas" or "meliusnet" (the builder's family).
        builder: ``builder(config, *, input_shape, input_tensor, include_top,
            num_classes, name) -> tf.keras.Model``.
        config: the model's typed configuration (defaults of the family overridden).
        dataset: the dataset the paper trained it on ("cifar10", "imagenet2012").
        input_shape: the default input shape.
        num_classes: the default number of classes.
        paper: the paper's figures (``top1``, ``top5``, ``ops``, ``flops``, ``bops``,
            ``size_mib``, ``source``), only those the paper states.
        weights: published weights by name (none are published yet).
        cost_extras: extra figures derived from the cost report (e.g. the paper's OPs).
        custom: a free-form family builder rather than a fixed zoo model.
        description: one line for ``larq_bnas list``.
    """

    name: str
    constructor: str
    family: str
    builder: Callable[..., Any]
    config: ModelConfig
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    paper: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, PretrainedWeights] = field(default_factory=dict)
    cost_extras: Callable[[Any], dict[str, Any]] | None = None
    custom: bool = False
    description: str = ""

    @property
    def key(self) -> str:
        return normalize_name(self.name)


_REGISTRY: dict[str, ModelSpec] = {}


def normalize_name(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (under its name and its constructor's name)."""
    for key in {spec.key, normalize_name(spec.constructor)}:
        existing = _REGISTRY.get(key)
        if existing is not None and existing.name != spec.name:
            raise ValueError(f"Model name {key!r} is registered twice")
        _REGISTRY[key] = spec
    return spec


def list_specs(include_custom: bool = False) -> list[ModelSpec]:
    """Every registered model, in registration order, each once."""
    seen: dict[str, ModelSpec] = {}
    for spec in _REGISTRY.values():
        if spec.custom and not include_custom:
            continue
        seen.setdefault(spec.name, spec)
    return list(seen.values())


def model_names(include_custom: bool = False) -> list[str]:
    return [spec.name for spec in list_specs(include_custom)]


def add_weights(name: str, weights_name: str, entry: PretrainedWeights) -> ModelSpec:
    """Publish ``entry`` as ``weights=weights_name`` of model ``name``; return the new spec."""
    spec = get_spec(name)
    updated = dataclasses.replace(spec, weights={**spec.weights, weights_name: entry})
    for key, value in list(_REGISTRY.items()):
        if value is spec:
            _REGISTRY[key] = updated
    return updated


def find_spec(name: str) -> ModelSpec | None:
    """The spec registered as ``name``, or None."""
    return _REGISTRY.get(normalize_name(name))


def get_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; ``UnknownModelError`` lists the valid names."""
    spec = _REGISTRY.get(normalize_name(name))
    if spec is None:
        raise UnknownModelError(
            f"Unknown model {name!r}; valid models are: "
            + ", ".join(model_names(include_custom=True))
        )
    return spec


def configure(name: str, **options: Any) -> tuple[ModelSpec, ModelConfig]:
    """The spec of ``name`` and its config with ``options`` applied (strings parsed)."""
    spec = get_spec(name)
    return spec, spec.config.override(options) if options else spec.config


@dataclass(frozen=True)
class CheckpointImporter:
    """Builds a family's model from a foreign checkpoint format (e.g. the BNAS authors'
    PyTorch files, registered by ``larq_bnas.zoo.published``)."""

    family: str
    matches: Callable[[Any], bool]
    build: Callable[..., Any]


_CHECKPOINT_IMPORTERS: list[CheckpointImporter] = []


def register_checkpoint_importer(importer: CheckpointImporter) -> CheckpointImporter:
    """Let ``build(..., weights=FILE)`` hand files that ``importer.matches`` to it."""
    _CHECKPOINT_IMPORTERS.append(importer)
    return importer


def build(
    name: str,
    *,
    input_shape: Sequence[int | None] | None = None,
    input_tensor: Any = None,
    weights: str | None = None,
    include_top: bool = True,
    num_classes: int | None = None,
    **options: Any,
) -> Any:
    """Build the zoo model ``name`` as a Keras model.

    Args:
        name: a registered name (``larq_bnas.zoo.model_names()``), e.g. ``"bnas-a"``.
        input_shape: (height, width, channels); the model's default if None.
        input_tensor: a Keras tensor (or tf tensor) to build the model on.
        weights: None (random), a path to a weights file (.h5 or a TF checkpoint), a
            BNAS authors' PyTorch checkpoint (``.pth.tar``: built as the reference
            computes it, see ``larq_bnas.zoo.published``), or the name of published
            weights listed in the registry (``"imagenet"`` for MeliusNet22).
        include_top: whether to include the classifier.
        num_classes: classifier outputs; the model's default if None.
        **options: config fields of the model's family (e.g. ``cells=8``,
            ``genotype="search/genotype_gamma1.json"``, ``pad_values=0.0``).
    """
    if weights is not None:
        family = spec_family(name)
        for importer in _CHECKPOINT_IMPORTERS:
            if importer.family == family and importer.matches(weights):
                return importer.build(
                    name,
                    weights,
                    input_shape=input_shape,
                    input_tensor=input_tensor,
                    include_top=include_top,
                    num_classes=num_classes,
                    **options,
                )
    entry = published_entry(get_spec(name).weights, weights, include_top)
    if entry is not None and entry.options:
        options = {**entry.options, **options}
    spec, config = configure(name, **options)
    num_classes = spec.num_classes if num_classes is None else int(num_classes)
    weights_path = resolve_weights(
        spec.name, spec.weights, weights, include_top=include_top, num_classes=num_classes
    )
    model = spec.builder(
        config,
        input_shape=input_shape if input_shape is not None or spec.custom else spec.input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        name=spec.constructor.lower() if not spec.custom else spec.name.replace("-", "_"),
    )
    if weights_path is not None and entry is not None and entry.loader == "larq-zoo":
        from larq_bnas.models.meliusnet import load_larq_zoo_weights

        load_larq_zoo_weights(model, weights_path)
    elif weights_path is not None:
        load_weights(model, weights_path)
    return model


def spec_family(name: str) -> str:
    """The family of the registered model ``name``."""
    return get_spec(name).family


def model_cost_report(
    name: str,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    **options: Any,
) -> Any:
    """Build ``name`` and return its ``CostReport`` (with the family's extra figures)."""
    from larq_bnas.costs import model_costs

    spec, _ = configure(name, **options)
    model = build(name, input_shape=input_shape, num_classes=num_classes, **options)
    report = model_costs(model, name=spec.name)
    if spec.cost_extras is not None:
        report.extras.update(spec.cost_extras(report))
    return report


def make_constructor(name: str) -> Callable[..., Any]:
    """The lqz-style constructor of the registered model ``name``.

    Every constructor has the same keyword-only signature; ``**options`` are the family's
    config fields (see ``larq_bnas.zoo.get_spec(name).config``).
    """
    spec = get_spec(name)

    def constructor(
        *,
        input_shape: Sequence[int | None] | None = None,
        input_tensor: Any = None,
        weights: str | None = None,
        include_top: bool = True,
        num_classes: int | None = None,
        **options: Any,
    ) -> Any:
        return build(
            spec.name,
            input_shape=input_shape,
            input_tensor=input_tensor,
            weights=weights,
            include_top=include_top,
            num_classes=num_classes,
            **options,
        )

    constructor.__name__ = constructor.__qualname__ = spec.constructor
    constructor.__module__ = "larq_bnas.zoo"
    paper = ", ".join(f"{k} {v}" for k, v in spec.paper.items() if k != "source")
    constructor.__doc__ = f"""{spec.description}.

    Trained on {spec.dataset} in the paper ({paper or "no published figures"}).
    Default input {spec.input_shape}, {spec.num_classes} classes.

    Args:
        input_shape: (height, width, channels); default {spec.input_shape}.
        input_tensor: optional Keras tensor to use as the model's input.
        weights: None (random), a path to a weights file, or published weights' name.
        include_top: whether to include the classifier.
        num_classes: classifier outputs; default {spec.num_classes}.
        **options: fields of {type(spec.config).__name__} to override.

    Returns:
        A ``tf.keras.Model``.
    """
    return constructor


def option_names(name: str) -> list[str]:
    """The config options a model accepts (for errors and --help)."""
    return [f.name for f in dataclasses.fields(get_spec(name).config)]


__all__ = [
    "add_weights",
    "ConfigError",
    "ModelSpec",
    "PretrainedWeights",
    "UnknownModelError",
    "build",
    "configure",
    "find_spec",
    "get_spec",
    "list_specs",
    "make_constructor",
    "model_cost_report",
    "model_names",
    "normalize_name",
    "register",
]
