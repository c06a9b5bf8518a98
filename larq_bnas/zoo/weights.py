"""``weights=`` for zoo models: None, a local file, or published weights by name.

Published weights are fetched with ``tf.keras.utils.get_file`` into the cache directory
(``$LARQ_BNAS_CACHE``, default ``~/.keras``), under ``larq_bnas/models/<model>``, and
checked against their sha256 (larq-zoo's convention). No weights are published yet: the
registry lists none, and asking for a name gives an error that says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tensorflow as tf

from larq_bnas.zoo.registry import ModelSpec, PretrainedWeights


def cache_dir() -> str:
    """Where downloaded weights are kept."""
    return os.environ.get("LARQ_BNAS_CACHE", os.path.join(os.path.expanduser("~"), ".keras"))


def _is_checkpoint_prefix(path: str) -> bool:
    return os.path.exists(path + ".index")


def resolve_weights(
    spec: ModelSpec, weights: str | os.PathLike | None, *, include_top: bool, num_classes: int
) -> str | None:
    """Turn the ``weights`` argument into a local file path (or None)."""
    if weights is None:
        return None
    text = os.fspath(weights)
    if os.path.exists(text) or _is_checkpoint_prefix(text):
        return text
    entry = _find_entry(spec, text, include_top)
    if entry is None:
        published = ", ".join(sorted(spec.weights)) or "none are published for this model yet"
        raise ValueError(
            f"weights={text!r} is neither an existing file nor published weights of "
            f"{spec.name}. Use None (random initialisation), a path to a weights file "
            f"(.h5 or a TensorFlow checkpoint), or a published name ({published})."
        )
    if include_top and entry.num_classes is not None and entry.num_classes != num_classes:
        raise ValueError(
            f"weights={text!r} of {spec.name} have {entry.num_classes} classes; build with "
            f"num_classes={entry.num_classes} or include_top=False"
        )
    fname = Path(entry.url.split("?")[0]).name
    os.makedirs(cache_dir(), exist_ok=True)  # get_file falls back to /tmp otherwise
    return tf.keras.utils.get_file(
        fname=fname,
        origin=entry.url,
        file_hash=entry.sha256,
        hash_algorithm="sha256",
        cache_dir=cache_dir(),
        cache_subdir=os.path.join("larq_bnas", "models", spec.name),
    )


def _find_entry(spec: ModelSpec, name: str, include_top: bool) -> PretrainedWeights | None:
    for key in (name if include_top else f"{name}-notop", name):
        entry = spec.weights.get(key)
        if entry is not None and entry.include_top == include_top:
            return entry
    return None


def load_weights(model: Any, path: str) -> None:
    """Load ``path`` (.h5/.keras weights or a TF checkpoint prefix) into ``model``."""
    try:
        model.load_weights(path)
    except (ValueError, tf.errors.OpError) as err:
        raise ValueError(
            f"Could not load weights from {path!r} into {model.name}: {err}. "
            "Weights must come from the same model built with the same options."
        ) from err
