"""Model references: one string that names any model the tools can work on.

``load_model(ref, ...)`` accepts, in this order:

- ``lqz:NAME`` — a larq-zoo model, e.g. ``lqz:QuickNet`` or ``lqz:MeliusNet22``;
- a genotype JSON file (``*.json``) — a BNAS network of that cell (options ``cells``,
  ``channels``, ``stem``, ... as for ``build("bnas", ...)``);
- a saved Keras model (``.h5``/``.keras`` file or a SavedModel directory);
- a zoo name such as ``bnas-a`` or ``meliusnet22``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

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
    **options: Any,
) -> tf.keras.Model:
    """Build or load the model that ``ref`` names (see the module docstring)."""
    if ref.startswith("lqz:"):
        return _larq_zoo_model(ref[4:], input_shape, num_classes, weights, include_top)
    if ref.endswith(".json"):
        if not os.path.exists(ref):
            raise FileNotFoundError(f"Genotype file {ref!r} does not exist")
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
        import larq_bnas.models.bnas.cells  # noqa: F401  (registers the custom layers)

        model = tf.keras.models.load_model(ref, compile=False)
        if weights is not None:
            model.load_weights(weights)
        return model
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
