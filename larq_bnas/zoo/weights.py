"""``weights=`` for zoo models: None, a local file, or published weights by name.

Published weights are fetched with ``tf.keras.utils.get_file`` into the cache directory
(``larq_bnas._cache.cache_dir("weights")``), under ``<model>/``, and
checked against their sha256 (larq-zoo's convention). MeliusNet22 has larq-zoo's
published ImageNet weights (``weights="imagenet"``); the BNAS authors' PyTorch checkpoints
load as ``weights="PATH.pth.tar"`` (``larq_bnas.zoo.published``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tensorflow as tf

from larq_bnas._cache import cache_dir


@dataclass(frozen=True)
class PretrainedWeights:
    """A published weights file: where to fetch it and its sha256."""

    url: str
    sha256: str
    include_top: bool = True
    num_classes: int | None = None
    description: str = ""
    #: "keras" (our own weights file) or "larq-zoo" (a larq-zoo model's file, mapped by
    #: ``larq_bnas.models.meliusnet.load_larq_zoo_weights``).
    loader: str = "keras"
    #: Config options the model is built with for these weights (``layout="lqz"``).
    options: Mapping[str, Any] = field(default_factory=dict)


def _is_checkpoint_prefix(path: str) -> bool:
    return os.path.exists(path + ".index")


def resolve_weights(
    model: str,
    published: Mapping[str, PretrainedWeights],
    weights: str | os.PathLike | None,
    *,
    include_top: bool,
    num_classes: int,
) -> str | None:
    """Turn the ``weights`` argument into a local file path (or None)."""
    if weights is None:
        return None
    text = os.fspath(weights)
    if os.path.exists(text) or _is_checkpoint_prefix(text):
        return text
    entry = _find_entry(published, text, include_top)
    if entry is None:
        names = ", ".join(sorted(published)) or "none are published for this model yet"
        raise ValueError(
            f"weights={text!r} is neither an existing file nor published weights of "
            f"{model}. Use None (random initialisation), a path to a weights file "
            f"(.h5 or a TensorFlow checkpoint), or a published name ({names})."
        )
    if include_top and entry.num_classes is not None and entry.num_classes != num_classes:
        raise ValueError(
            f"weights={text!r} of {model} have {entry.num_classes} classes; build with "
            f"num_classes={entry.num_classes} or include_top=False"
        )
    fname = Path(entry.url.split("?")[0]).name
    root = cache_dir("weights")  # get_file falls back to /tmp unless it exists
    return tf.keras.utils.get_file(
        fname=fname,
        origin=entry.url,
        file_hash=entry.sha256,
        hash_algorithm="sha256",
        cache_dir=str(root),
        cache_subdir=model,
    )


def published_entry(
    published: Mapping[str, PretrainedWeights], weights: Any, include_top: bool
) -> PretrainedWeights | None:
    """The published entry that ``weights`` names (None for paths and None)."""
    if weights is None:
        return None
    text = os.fspath(weights)
    if os.path.exists(text) or _is_checkpoint_prefix(text):
        return None
    return _find_entry(published, text, include_top)


def _find_entry(
    published: Mapping[str, PretrainedWeights], name: str, include_top: bool
) -> PretrainedWeights | None:
    for key in (name if include_top else f"{name}-notop", name):
        entry = published.get(key)
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
