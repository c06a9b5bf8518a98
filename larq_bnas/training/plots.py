"""Learning curves: accuracy per epoch and the learning-rate schedule, in one PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from larq_bnas._io import atomic_path


def plot_curves(
    history: list[dict[str, Any]],
    path: str | os.PathLike,
    label: str,
    lr_curve: Sequence[tuple[float, float]] | None = None,
) -> Path:
    """Train and test top-1 accuracy per epoch (left axis) and the learning rate (right
    axis: ``lr_curve`` as (epoch, lr) points, e.g. sampled from the schedule every few
    steps, else the per-epoch ``lr`` of the history). The legend names the model with its
    size and OPs (``label``), as the MeliusNet supplement's experiment plots do."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in history]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, style, name in (("accuracy", "-", "train"), ("val_accuracy", "-o", "test")):
        values: list[Any] = [e.get(key) for e in history]
        if any(v is not None for v in values):
            ax.plot(epochs, values, style, label=f"{label} ({name})", markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    xs: list[Any]
    lrs: list[Any]
    if lr_curve:
        xs, lrs = [p[0] for p in lr_curve], [p[1] for p in lr_curve]
    else:
        xs, lrs = epochs, [e.get("lr") for e in history]
    if any(v is not None for v in lrs):
        ax2 = ax.twinx()
        ax2.plot(xs, lrs, "--", color="grey", label="learning rate")
        ax2.set_ylabel("learning rate")
        ax2.legend(loc="center right", fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(path)
