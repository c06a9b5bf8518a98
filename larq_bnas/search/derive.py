"""Deriving a genotype from the architecture parameters (paper eq. 4), with gamma.

For each cell type, every row of alpha (one edge) is turned into operation weights by a
softmax. The weight of Zeroise is divided by the *transferability* parameter gamma
before any comparison (``alpha* = max[alpha_z / gamma, alpha_op ...]``): gamma > 1 makes
Zeroise less likely to be kept, which the paper uses to transfer a cell searched on
CIFAR-10 to ImageNet (gamma = 1 gives the CIFAR cell, gamma = 3 the ImageNet cell).
Then, for each node, the 2 incoming edges with the highest score are kept (the score of
an edge is the maximum of its adjusted weights), and on each kept edge the operation
with the highest adjusted weight.

``discard_zeroise=True`` is the ablation "No Zeroise": Zeroise takes part in neither the
edge scores nor the operation choice.

(The reference implementation divides edge row 0 instead of the Zeroise column, so its
gamma has no effect on the result; this module implements the paper's intent.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from larq_bnas._io import read_json
from larq_bnas.models.bnas.genotypes import Genotype
from larq_bnas.models.bnas.ops import PRIMITIVES, ZEROISE

NODES = 4
#: Standard deviation of the alphas' initialisation (1e-3 * N(0, 1), paper / reference).
INIT_STD = 1e-3
#: A derived edge counts as decided by the search, not by the initialisation, when its
#: decision margin ln(w_chosen / w_runner_up) is at least this many ``INIT_STD``: at
#: initialisation the margins are of the order of ``INIT_STD`` itself.
NOISE_FACTOR = 10.0
NOT_MOVED_WARNING = (
    "the search did not move the architecture; the derived cell is arbitrary; search longer"
)


def softmax(alpha: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    alpha = np.asarray(alpha, dtype=np.float64)
    e = np.exp(alpha - alpha.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def adjusted_weights(
    alpha: np.ndarray,
    gamma: float = 1.0,
    layer_set: Sequence[str] = PRIMITIVES,
    discard_zeroise: bool = False,
) -> np.ndarray:
    """softmax(alpha) per row with Zeroise's weight divided by gamma (or, with
    ``discard_zeroise``, set to -inf so it is never chosen)."""
    weights = softmax(alpha)
    if ZEROISE in layer_set:
        z = list(layer_set).index(ZEROISE)
        weights[:, z] = -np.inf if discard_zeroise else weights[:, z] / gamma
    return weights


def _derived_edges(
    alpha: np.ndarray, gamma: float, layer_set: Sequence[str], discard_zeroise: bool
) -> list[tuple[int, int, int]]:
    """``(alpha row, input, chosen column)`` of the 8 derived edges, in genotype order."""
    weights = adjusted_weights(alpha, gamma, layer_set, discard_zeroise)
    chosen: list[tuple[int, int, int]] = []
    start = 0
    for node in range(NODES):
        n_inputs = node + 2
        rows = weights[start : start + n_inputs]
        scores = rows.max(axis=1)
        # Highest score first; ties keep the earlier input (a stable sort).
        edges = sorted(range(n_inputs), key=lambda j: -scores[j])[:2]
        for j in edges:
            chosen.append((start + j, j, int(np.argmax(rows[j]))))
        start += n_inputs
    return chosen


def _derive_cell(
    alpha: np.ndarray, gamma: float, layer_set: Sequence[str], discard_zeroise: bool
) -> list[tuple[str, int]]:
    return [
        (layer_set[k], j) for _, j, k in _derived_edges(alpha, gamma, layer_set, discard_zeroise)
    ]


def _check_alpha(name: str, alpha: Any, layer_set: Sequence[str]) -> np.ndarray:
    array = np.asarray(alpha, dtype=np.float64)
    edges = sum(i + 2 for i in range(NODES))
    if array.shape != (edges, len(layer_set)):
        raise ValueError(
            f"{name} must have shape ({edges}, {len(layer_set)}) (edges x operations of the "
            f"layer set {list(layer_set)}), got {array.shape}"
        )
    return array


def derive_genotype(
    alpha_normal: Any,
    alpha_reduce: Any,
    gamma: float = 1.0,
    layer_set: Sequence[str] = PRIMITIVES,
    discard_zeroise: bool = False,
    name: str | None = None,
) -> Genotype:
    """The genotype of the normal and reduction cell for architecture parameters.

    Args:
        alpha_normal, alpha_reduce: arrays of shape (14, len(layer_set)) (raw alphas,
            before the softmax).
        gamma: the transferability parameter (> 0); Zeroise's weight is divided by it.
        layer_set: operation names of the alpha columns.
        discard_zeroise: never keep Zeroise (ablation "No Zeroise").
        name: the genotype's name.
    """
    gamma = float(gamma)
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    layer_set = tuple(layer_set)
    if discard_zeroise and all(op == ZEROISE for op in layer_set):
        raise ValueError("discard_zeroise leaves no operation in the layer set")
    normal = _derive_cell(
        _check_alpha("alpha_normal", alpha_normal, layer_set), gamma, layer_set, discard_zeroise
    )
    reduce = _derive_cell(
        _check_alpha("alpha_reduce", alpha_reduce, layer_set), gamma, layer_set, discard_zeroise
    )
    return Genotype(normal=tuple(normal), reduce=tuple(reduce), name=name)


def row_entropy(alpha: Any) -> np.ndarray:
    """Entropy (nats) of softmax(alpha) per row."""
    p = softmax(alpha)
    return -np.sum(p * np.log(np.maximum(p, 1e-300)), axis=-1)


def decisiveness(
    alpha_normal: Any,
    alpha_reduce: Any,
    gamma: float = 1.0,
    layer_set: Sequence[str] = PRIMITIVES,
    discard_zeroise: bool = False,
) -> dict[str, Any]:
    """How clearly the alphas decide the derived cells (what ``derive_genotype`` keeps).

    Per cell type (``normal``, ``reduce``):

    - ``edges``: per derived edge (genotype order) the node (2..5), the input, the chosen
      op and its softmax weight, the runner-up op on that edge and its softmax weight, and
      ``margin`` = chosen minus runner-up in the scores the derivation compared (Zeroise's
      weight divided by gamma), plus ``log_margin`` = ln of their ratio;
    - ``chosen_weight_mean``: mean softmax weight of the 8 chosen ops (uniform: 1/K);
    - ``margin_mean``, ``margin_min`` and ``log_margin_median`` over the 8 edges;
    - ``entropy``: mean entropy of softmax(alpha) over the cell type's 14 rows (uniform:
      ln K);
    - ``moved``: ``log_margin_median >= NOISE_FACTOR * INIT_STD``, i.e. the choices are
      not within the initialisation noise.

    Also ``uniform_weight`` (1/K), ``noise_log_margin`` (the threshold), ``moved`` (both
    cell types moved) and ``warning`` (``NOT_MOVED_WARNING`` or None).
    """
    layer_set = tuple(layer_set)
    threshold = NOISE_FACTOR * INIT_STD
    result: dict[str, Any] = {
        "gamma": float(gamma),
        "uniform_weight": 1.0 / len(layer_set),
        "noise_log_margin": threshold,
    }
    for kind, raw in (("normal", alpha_normal), ("reduce", alpha_reduce)):
        alpha = _check_alpha(f"alpha_{kind}", raw, layer_set)
        plain = softmax(alpha)
        scores = adjusted_weights(alpha, gamma, layer_set, discard_zeroise)
        edges: list[dict[str, Any]] = []
        for pair, (row, j, k) in enumerate(
            _derived_edges(alpha, gamma, layer_set, discard_zeroise)
        ):
            others = [c for c in np.argsort(-scores[row], kind="stable") if c != k]
            r = int(others[0])
            margin = float(scores[row, k] - scores[row, r])
            log_margin = (
                float(np.log(scores[row, k] / scores[row, r]))
                if np.isfinite(scores[row, r]) and scores[row, r] > 0
                else float("inf")
            )
            edges.append(
                {
                    "node": pair // 2 + 2,
                    "input": j,
                    "op": layer_set[k],
                    "weight": float(plain[row, k]),
                    "runner_up": layer_set[r],
                    "runner_up_weight": float(plain[row, r]),
                    "margin": margin,
                    "log_margin": log_margin,
                }
            )
        log_median = float(np.median([e["log_margin"] for e in edges]))
        result[kind] = {
            "edges": edges,
            "chosen_weight_mean": float(np.mean([e["weight"] for e in edges])),
            "margin_mean": float(np.mean([e["margin"] for e in edges])),
            "margin_min": float(min(e["margin"] for e in edges)),
            "log_margin_median": log_median,
            "entropy": float(np.mean(row_entropy(alpha))),
            "moved": bool(log_median >= threshold),
        }
    result["moved"] = bool(result["normal"]["moved"] and result["reduce"]["moved"])
    result["warning"] = None if result["moved"] else NOT_MOVED_WARNING
    return result


def format_decisiveness(report: dict[str, Any]) -> list[str]:
    """Log lines for a ``decisiveness`` report: one per cell type, one per derived edge."""
    lines = []
    for kind in ("normal", "reduce"):
        d = report[kind]
        lines.append(
            f"gamma {format_gamma(report['gamma'])} {kind}: chosen_weight_mean "
            f"{d['chosen_weight_mean']:.3f} (uniform {report['uniform_weight']:.3f}), "
            f"entropy {d['entropy']:.4f}, median ln-margin {d['log_margin_median']:.4f}"
            f"{'' if d['moved'] else ' (within the initialisation noise)'}"
        )
        for e in d["edges"]:
            lines.append(
                f"  node {e['node']} <- {e['input']}: {e['op']} {e['weight']:.3f} vs "
                f"{e['runner_up']} {e['runner_up_weight']:.3f} (margin {e['margin']:.4f})"
            )
    if report["warning"]:
        lines.append(f"WARNING: {report['warning']}")
    return lines


def random_genotype(
    seed: int, layer_set: Sequence[str] = PRIMITIVES, name: str | None = None
) -> Genotype:
    """A random cell pair with the paper's node structure: each of the 4 nodes takes 2
    distinct earlier states (inputs 0..node-1) with an op drawn uniformly from
    ``layer_set`` (Zeroise included when the set has it), for both cell types."""
    rng = np.random.default_rng(seed)
    layer_set = tuple(layer_set)
    cells = []
    for _ in range(2):
        pairs: list[tuple[str, int]] = []
        for node in range(2, 2 + NODES):
            for j in sorted(rng.choice(node, size=2, replace=False).tolist()):
                pairs.append((layer_set[int(rng.integers(len(layer_set)))], int(j)))
        cells.append(pairs)
    return Genotype(normal=tuple(cells[0]), reduce=tuple(cells[1]), name=name or f"random{seed}")


def format_gamma(gamma: float) -> str:
    """1.0 -> "1", 3.0 -> "3", 1.5 -> "1.5" (as in ``genotype_gamma{G}.json``)."""
    return f"{float(gamma):g}"


def load_alphas(path: str | os.PathLike, epoch: int | None = None) -> dict[str, Any]:
    """Read architecture parameters saved by a search.

    Accepts ``alphas_final.json`` (one set) and ``alphas.json`` (the per-epoch history;
    the last epoch unless ``epoch`` is given). Returns a dict with ``alpha_normal``,
    ``alpha_reduce`` (numpy arrays), ``layer_set`` and ``epoch``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Alphas file {str(path)!r} does not exist")
    try:
        data = read_json(path)
    except ValueError as err:
        raise ValueError(f"{path} is not a JSON alphas file: {err}") from None
    if not isinstance(data, dict) or "alpha_normal" not in data or "alpha_reduce" not in data:
        raise ValueError(
            f"{path} holds no architecture parameters (expected the keys alpha_normal and "
            "alpha_reduce, as in a search's alphas_final.json or alphas.json)"
        )
    layer_set = tuple(data.get("layer_set", PRIMITIVES))
    normal, reduce = np.asarray(data["alpha_normal"]), np.asarray(data["alpha_reduce"])
    epochs = data.get("epochs")
    if normal.ndim == 3:  # a history: epochs x edges x ops
        if epoch is None:
            index = len(normal) - 1
        else:
            if epochs is None or epoch not in epochs:
                raise ValueError(f"Epoch {epoch} is not in {path}; it holds epochs {epochs}")
            index = list(epochs).index(epoch)
        return {
            "alpha_normal": normal[index],
            "alpha_reduce": reduce[index],
            "layer_set": layer_set,
            "epoch": epochs[index] if epochs is not None else index,
        }
    if epoch is not None and data.get("epoch") != epoch:
        raise ValueError(f"{path} holds the alphas of epoch {data.get('epoch')}, not {epoch}")
    return {
        "alpha_normal": normal,
        "alpha_reduce": reduce,
        "layer_set": layer_set,
        "epoch": data.get("epoch"),
    }


def derive_from_file(
    path: str | os.PathLike,
    gamma: float = 1.0,
    discard_zeroise: bool = False,
    epoch: int | None = None,
) -> Genotype:
    """``derive_genotype`` on the alphas saved in ``path`` (see ``load_alphas``)."""
    alphas = load_alphas(path, epoch)
    suffix = "_nozeroise" if discard_zeroise else ""
    return derive_genotype(
        alphas["alpha_normal"],
        alphas["alpha_reduce"],
        gamma,
        alphas["layer_set"],
        discard_zeroise,
        name=f"searched_gamma{format_gamma(gamma)}{suffix}",
    )
