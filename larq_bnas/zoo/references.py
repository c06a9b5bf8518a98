"""Model references: one string that names any model the tools can work on.

``load_model(ref, ...)`` accepts, in this order:

- ``lqz:NAME`` — a larq-zoo model, e.g. ``lqz:QuickNet`` or ``lqz:MeliusNet22``;
- a genotype JSON file (``*.json``) — a BNAS network of that cell (options ``cells``,
  ``channels``, ``stem``, ... as for ``build("bnas", ...)``);
- a saved Keras model (``.h5``/``.keras`` file or a SavedModel directory);
- a zoo name such as ``bnas-a`` or ``meliusnet22``.

A saved model can carry code: a ``Lambda`` layer stores Python bytecode that Keras runs
when it loads the model. ``load_model`` reads the model's configuration first and refuses
such layers unless ``trust_model_code=True`` (``--trust-model-code`` on the command line).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

from larq_bnas.errors import InputError, UntrustedModelError
from larq_bnas.zoo.registry import build, get_spec


def larq_zoo_names() -> list[str]:
    """Names of the larq-zoo models usable as ``lqz:NAME``."""
    import larq_zoo

    names = []
    for module in (larq_zoo.sota, larq_zoo.literature):
        names += [n for n in getattr(module, "__all__", dir(module)) if n[:1].isupper()]
    return sorted(set(names))


def is_saved_model(ref: str) -> bool:
    return (ref.endswith((".h5", ".keras")) and os.path.isfile(ref)) or (
        os.path.isdir(ref) and os.path.exists(os.path.join(ref, "saved_model.pb"))
    )


def load_model(
    ref: str,
    *,
    input_shape: Sequence[int | None] | None = None,
    num_classes: int | None = None,
    weights: str | None = None,
    include_top: bool = True,
    trust_model_code: bool = False,
    **options: Any,
) -> tf.keras.Model:
    """Build or load the model that ``ref`` names (see the module docstring).

    ``trust_model_code``: load a saved model even if it carries code (Lambda layers);
    only for files you made or trust."""
    if weights is not None and os.path.exists(weights):
        check_weights_file(weights)
    if ref.startswith("lqz:"):
        return _larq_zoo_model(ref[4:], input_shape, num_classes, weights, include_top)
    if ref.endswith(".json"):
        if not os.path.exists(ref):
            raise InputError(f"Genotype file {ref!r} does not exist")
        _check_json(ref)
        return build(
            "bnas",
            genotype=ref,
            input_shape=input_shape,
            num_classes=num_classes,
            weights=weights,
            include_top=include_top,
            **options,
        )
    if is_saved_model(ref):
        if options:
            raise ValueError(f"Options {sorted(options)} do not apply to a saved model ({ref!r})")
        return _load_saved_model(ref, weights, trust_model_code)
    get_spec(ref)  # a clear error listing the zoo names when ref is none of the above
    return build(
        ref,
        input_shape=input_shape,
        num_classes=num_classes,
        weights=weights,
        include_top=include_top,
        **options,
    )


def _larq_zoo_model(
    name: str,
    input_shape: Sequence[int | None] | None,
    num_classes: int | None,
    weights: str | None,
    include_top: bool,
) -> tf.keras.Model:
    import larq_zoo

    valid = larq_zoo_names()
    if name not in valid:
        raise ValueError(f"Unknown larq-zoo model {name!r}; valid ones are: {', '.join(valid)}")
    constructor = getattr(larq_zoo.sota, name, None) or getattr(larq_zoo.literature, name)
    kwargs: dict[str, Any] = {"weights": weights, "include_top": include_top}
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return constructor(**kwargs)


# --- saved models and weights files ----------------------------------------------------

#: Layer classes whose configuration holds code Keras runs on loading.
CODE_LAYERS = ("Lambda", "__lambda__")


def _load_saved_model(ref: str, weights: str | None, trust_model_code: bool) -> tf.keras.Model:
    import larq_bnas.models.bnas.cells  # noqa: F401  (registers the custom layers)

    config = _saved_model_config(ref)
    if not trust_model_code:
        carriers = sorted(set(_code_carriers(config)))
        if carriers:
            raise UntrustedModelError(
                f"{ref!r} holds layers that carry code ({', '.join(carriers)}); loading it "
                "would run that code. Pass --trust-model-code (trust_model_code=True) only "
                "for a file you made or trust"
            )
    kwargs: dict[str, Any] = {"compile": False}
    if ref.endswith(".keras"):
        kwargs["safe_mode"] = not trust_model_code
    try:
        model = tf.keras.models.load_model(ref, **kwargs)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise InputError(
            f"Could not load the model {ref!r}: {_first_line(err)}; give a model saved by "
            "Keras (.h5, .keras or a SavedModel directory), e.g. model.h5 of a training run"
        ) from err
    if weights is not None:
        from larq_bnas.zoo.weights import load_weights

        load_weights(model, weights)
    return model


def _saved_model_config(ref: str) -> Any:
    """The architecture stored in a saved model (JSON), read without running anything."""
    try:
        if os.path.isdir(ref):
            path = os.path.join(ref, "keras_metadata.pb")
            if not os.path.exists(path):
                return {}  # a plain SavedModel: TensorFlow graphs, no Keras layers
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            # The metadata is a protocol buffer of JSON strings: look for the markers.
            return [{"class_name": name} for name in _marked_code_layers(text)]
        if zipfile.is_zipfile(ref):
            with zipfile.ZipFile(ref) as archive:
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(ref, "r") as f:
            raw = f.attrs.get("model_config")
    except (OSError, KeyError, ValueError) as err:
        raise InputError(
            f"{ref!r} is not a readable Keras model file ({_first_line(err)}); it may be "
            "truncated or corrupt"
        ) from err
    if raw is None:
        raise InputError(
            f"{ref!r} holds weights only, not a model; pass it with --weights next to the "
            "MODEL it was saved from"
        )
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


def _marked_code_layers(text: str) -> Iterator[str]:
    for name in CODE_LAYERS:
        if re.search(r'"class_name":\s*"' + re.escape(name) + '"', text):
            yield name
    if '"function_type"' in text:
        yield "function_type"


def _code_carriers(config: Any) -> Iterator[str]:
    """Names of the layers in a model configuration that carry code."""
    if isinstance(config, dict):
        name = config.get("class_name")
        if name in CODE_LAYERS or "function_type" in config:
            inner = config.get("config", {})
            yield str(inner.get("name", name) if isinstance(inner, dict) else name)
        for value in config.values():
            yield from _code_carriers(value)
    elif isinstance(config, list):
        for value in config:
            yield from _code_carriers(value)


def check_weights_file(path: str) -> None:
    """Raise ``InputError`` if the weights file ``path`` cannot be read (truncated, not
    HDF5, ...). TensorFlow checkpoint prefixes are checked by their index."""
    if os.path.isdir(path):
        raise InputError(f"Weights {path!r} is a directory; give an .h5 weights file")
    if not os.path.exists(path):
        return  # a checkpoint prefix or published weights: checked where they are loaded
    if zipfile.is_zipfile(path):
        return
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as err:
        raise InputError(
            f"Weights file {path!r} is not a readable HDF5 file ({_first_line(err)}); it "
            "may be truncated or corrupt. Give weights saved by training (best.weights.h5, "
            "final.weights.h5) or model.save_weights"
        ) from err


def _check_json(path: str) -> None:
    """A clear error, naming the file, for a genotype file that is not JSON (empty, cut
    short, ...) or not a genotype."""
    try:
        with open(path, encoding="utf-8") as f:
            json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"Genotype file {path!r} is not valid JSON ({err}); a genotype is an object "
            'with "normal", "normal_concat", "reduce" and "reduce_concat" like the '
            "genotype_gamma*.json files a search writes"
        ) from err
    except IsADirectoryError as err:
        raise InputError(f"Genotype file {path!r} is a directory") from err
    from larq_bnas.models.bnas.genotypes import resolve_genotype

    try:
        resolve_genotype(path)
    except (ValueError, TypeError, KeyError) as err:
        raise InputError(f"Genotype file {path!r}: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
