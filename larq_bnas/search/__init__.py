"""BNAS cell search (paper 4.3): a differentiable supernet over the binary layer set, the
diversity regularizer, and the derivation of a genotype with the transferability gamma.

- ``run_search(output_dir, ...)``: the whole search job (what ``larq_bnas search`` runs);
- ``SearchModel``: the supernet as a Keras model whose ``fit`` over (train, val) batch
  pairs is the search loop;
- ``derive_genotype(alpha_normal, alpha_reduce, gamma, ...)``: paper eq. 4;
- ``decisiveness(alpha_normal, alpha_reduce, gamma)``: how clearly the alphas decide the
  derived cells (chosen vs runner-up weights, margins, entropy, the not-moved warning);
- ``derive_from_file(path, gamma)``: the same from a search's saved alphas.

Names resolve lazily: importing this package (or ``larq_bnas.search.scales``) imports no
TensorFlow; ``SearchModel`` and ``run_search`` do.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES: dict[str, str] = {
    "derive_from_file": "derive",
    "derive_genotype": "derive",
    "decisiveness": "derive",
    "format_gamma": "derive",
    "load_alphas": "derive",
    "random_genotype": "derive",
    "SearchModel": "model",
    "alpha_entropy": "model",
    "scaled_tau": "model",
    "run_search": "runner",
    "search_data": "runner",
    "LAYER_SETS": "supernet",
    "Supernet": "supernet",
    "SupernetConfig": "supernet",
    "resolve_layer_set": "supernet",
    "SEARCH_SCALES": "scales",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_NAMES))
