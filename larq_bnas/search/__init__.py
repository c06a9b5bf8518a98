"""BNAS cell search (paper 4.3): a differentiable supernet over the binary layer set, the
diversity regularizer, and the derivation of a genotype with the transferability gamma.

- ``run_search(output_dir, ...)``: the whole search job (what ``larq_bnas search`` runs);
- ``SearchModel``: the supernet as a Keras model whose ``fit`` over (train, val) batch
  pairs is the search loop;
- ``derive_genotype(alpha_normal, alpha_reduce, gamma, ...)``: paper eq. 4;
- ``derive_from_file(path, gamma)``: the same from a search's saved alphas.
"""

from larq_bnas.search.derive import derive_from_file, derive_genotype, format_gamma, load_alphas
from larq_bnas.search.model import SearchModel, alpha_entropy
from larq_bnas.search.runner import run_search, search_data
from larq_bnas.search.supernet import LAYER_SETS, Supernet, SupernetConfig, resolve_layer_set

__all__ = [
    "LAYER_SETS",
    "SearchModel",
    "Supernet",
    "SupernetConfig",
    "alpha_entropy",
    "derive_from_file",
    "derive_genotype",
    "format_gamma",
    "load_alphas",
    "resolve_layer_set",
    "run_search",
    "search_data",
]
