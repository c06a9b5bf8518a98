"""Pictures of a search: the derived cells and the evolution of the alphas (matplotlib, Agg).

- ``plot_genotype(genotype, path)``: the normal and the reduction cell side by side, as
  in the paper's Fig. 4: inputs c_{k-2}, c_{k-1}, nodes 0..3, the output c_{k}; each
  kept edge is an arrow labelled with its operation.
- ``plot_alphas(history, path)``: per cell type, a heat map of the final softmax(alpha)
  (edges x operations) and the mean weight of each operation over the epochs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from larq_bnas._io import atomic_path
from larq_bnas.models.bnas.genotypes import Genotype


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Node positions (x, y) of one cell drawing: the inputs left, the 4 nodes in a row, the
# output right.
_POS: dict[Any, tuple[float, float]] = {
    0: (0.0, 2.0),
    1: (0.0, -2.0),
    2: (2.0, 0.0),
    3: (3.8, 0.0),
    4: (5.6, 0.0),
    5: (7.4, 0.0),
    "out": (9.4, 0.0),
}
_COLORS = {
    "none": "#9e9e9e",
    "max_pool_3x3": "#1f77b4",
    "avg_pool_3x3": "#17becf",
    "bin_conv_3x3": "#d62728",
    "bin_conv_5x5": "#ff7f0e",
    "bin_dil_conv_3x3": "#2ca02c",
    "bin_dil_conv_5x5": "#9467bd",
    "sep_conv_3x3": "#8c564b",
    "sep_conv_5x5": "#e377c2",
}


def _draw_cell(
    ax: Any, pairs: Sequence[tuple[str, int]], concat: Sequence[int], title: str
) -> None:
    labels = {0: "c_{k-2}", 1: "c_{k-1}", 2: "0", 3: "1", 4: "2", 5: "3", "out": "c_{k}"}
    for node, (x, y) in _POS.items():
        is_input = node in (0, 1) or node == "out"
        ax.add_patch(_patch(x, y, "#dff0d8" if is_input else "#d9e8fb"))
        ax.text(
            x,
            y,
            f"${labels[node]}$" if is_input else labels[node],
            ha="center",
            va="center",
            fontsize=11,
            zorder=4,
        )
    for i, (op, src) in enumerate(pairs):
        node = i // 2 + 2
        (x0, y0), (x1, y1) = _POS[src], _POS[node]
        if src == 0:
            bend = -0.15  # from c_{k-2}: curve above
        elif src == 1:
            bend = 0.15  # from c_{k-1}: curve below
        elif node - src == 1:
            bend = 0.0  # consecutive nodes: straight
        else:
            bend = -0.6 if (node + src) % 2 else 0.6  # skip a node: arc above or below
        color = _COLORS.get(op, "black")
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            zorder=2,
            arrowprops=dict(
                arrowstyle="-|>",
                color=color,
                lw=1.6,
                shrinkA=15,
                shrinkB=15,
                linestyle="--" if op == "none" else "-",
                connectionstyle=f"arc3,rad={bend}",
            ),
        )
        # A point of matplotlib's arc3 curve (a quadratic Bezier with this control point);
        # edges from an input are labelled where they have spread apart.
        cx = (x0 + x1) / 2 + bend * (y1 - y0)
        cy = (y0 + y1) / 2 - bend * (x1 - x0)
        t = 0.62 if src < 2 else 0.5
        mx = (1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t**2 * x1
        my = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t**2 * y1
        ax.text(
            mx,
            my,
            op,
            fontsize=7,
            ha="center",
            va="center",
            color=color,
            zorder=5,
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9),
        )
    for node in concat:
        (x0, y0), (x1, y1) = _POS[node], _POS["out"]
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            zorder=1,
            arrowprops=dict(
                arrowstyle="-|>",
                color="#bbbbbb",
                lw=1.0,
                shrinkA=15,
                shrinkB=15,
                connectionstyle=f"arc3,rad={0.0 if node == 5 else 0.3}",
            ),
        )
    ax.set_title(title, fontsize=11)
    ax.set_xlim(-0.7, 10.1)
    ax.set_ylim(-2.9, 2.9)
    ax.set_aspect("equal")
    ax.axis("off")


def _patch(x: float, y: float, color: str) -> Any:
    from matplotlib.patches import Circle

    return Circle((x, y), 0.36, fc=color, ec="#555555", lw=1.0, zorder=3)


def plot_genotype(genotype: Genotype, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the normal and the reduction cell of ``genotype`` into a PNG at ``path``."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 8.4))
    _draw_cell(axes[0], genotype.normal, genotype.normal_concat, "normal cell")
    _draw_cell(axes[1], genotype.reduce, genotype.reduce_concat, "reduction cell")
    fig.suptitle(title or genotype.name or "genotype", fontsize=12)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def plot_alphas(history: dict[str, Any], path: str | os.PathLike) -> Path:
    """Heat maps of the final softmax(alpha) and curves of each operation's mean weight per
    epoch, for the normal and the reduction cell. ``history`` is ``alphas.json``'s content
    (``epochs``, ``layer_set``, ``alpha_normal`` / ``alpha_reduce`` of shape
    epochs x 14 x K)."""
    from larq_bnas.search.supernet import edge_list

    plt = _pyplot()
    layer_set = list(history["layer_set"])
    epochs = list(history["epochs"])
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    edge_names = [
        f"{'c_k-2' if src == 0 else 'c_k-1' if src == 1 else f'n{src - 2}'} -> n{node - 2}"
        for node, src in edge_list()
    ]
    for col, kind in enumerate(("normal", "reduce")):
        alphas = np.asarray(history[f"alpha_{kind}"], dtype=np.float64)
        weights = _softmax(alphas)  # epochs x edges x ops
        ax = axes[0, col]
        image = ax.imshow(weights[-1], aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(layer_set)))
        ax.set_xticklabels(layer_set, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(edge_names)))
        ax.set_yticklabels(edge_names, fontsize=7)
        ax.set_title(f"{kind} cell: softmax(alpha) after epoch {epochs[-1]}", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax = axes[1, col]
        mean = weights.mean(axis=1)  # epochs x ops
        for k, op in enumerate(layer_set):
            ax.plot(epochs, mean[:, k], "-o", markersize=3, label=op, color=_COLORS.get(op))
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean softmax weight over edges")
        ax.set_title(f"{kind} cell: operation weights per epoch", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)
