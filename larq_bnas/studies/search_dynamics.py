"""Study ``search-dynamics`` (BNAS eq. 5 and 4): what the diversity regularizer and the
transferability gamma do to a search.

Two searches, identical but for the regularizer's weight: lambda = 1 (BNAS) and lambda = 0
("No Div"). Each search's alphas are recorded after every epoch; both are derived with
gamma = 1 and gamma = 3. The table has one row per (lambda, gamma):

- the mean entropy of softmax(alpha) (28 rows: normal and reduction cell) after the
  first epoch, early (mean over the first third of the epochs, the regularizer's window:
  its weight is exp(-t / tau) with tau = 7.7 / 50 of the search) and at the end;
- the derived cells' chosen ops' mean softmax weight (uniform 1/7) per cell type;
- the share of Zeroise among the 16 derived edges (gamma divides Zeroise's weight, so
  gamma 3 keeps fewer);
- the derived cells.

The figure plots the entropy per epoch, each op's mean softmax weight per epoch (normal
cell) and the ops chosen per (lambda, gamma).

- toy scale: the main job's search on the digits (5 cells, C = 8, 16 x 16, batch 16,
  6 epochs, architecture Adam lr 5e-2 without weight decay), minutes;
- paper scale: the paper's search (CIFAR-10, 8 cells, C = 16, batch 64, 50 epochs, Adam
  3e-4 with weight decay 1e-3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from larq_bnas.studies.common import (
    TOY_DATASET,
    PaperCost,
    StudyContext,
    StudyResult,
    pyplot,
    save_figure,
    scale_title,
)

NAME = "search-dynamics"
TITLE = "Search dynamics: diversity regularizer (lambda 1 vs 0) and gamma (1 vs 3)"
SOURCE = "BNAS (Kim et al., ECCV 2020) eq. 4 and 5, Table 8 (No Div)"

LAMBDAS = (1.0, 0.0)
GAMMAS = (1.0, 3.0)

TOY: dict[str, Any] = dict(
    dataset=TOY_DATASET,
    cells=5,
    channels=8,
    input_size=16,
    batch_size=16,
    epochs=6,
    steps_per_epoch=None,
    arch_learning_rate=5e-2,
    arch_weight_decay=0.0,
)
PAPER: dict[str, Any] = dict(
    dataset="cifar10",
    cells=8,
    channels=16,
    input_size=32,
    batch_size=64,
    epochs=50,
    steps_per_epoch=None,
    arch_learning_rate=3e-4,
    arch_weight_decay=1e-3,
)

PAPER_COST = PaperCost(
    dataset="cifar10",
    units="2 searches (lambda 1 and lambda 0), each derived with gamma 1 and 3",
    schedule="50 epochs, 8 cells, C = 16, batch 64 (the paper's search)",
    gpu_hours="about 10 hours per search on one RTX 2080 Ti (the paper's search cost), "
    "so about 20 GPU-hours",
)

COLUMNS = [
    "lambda",
    "gamma",
    "entropy_epoch1",
    "entropy_early",
    "entropy_final",
    "chosen_weight_normal",
    "chosen_weight_reduce",
    "zeroise_share",
    "normal",
    "reduce",
]


def _cell(pairs: list[list[Any]]) -> str:
    return " ".join(f"{op}:{src}" for op, src in pairs)


def _key(lam: float) -> str:
    return f"lambda{lam:g}"


def entropy_curve(history: dict[str, Any]) -> list[float]:
    """Mean entropy of softmax(alpha) over both cell types' rows, per recorded epoch."""
    import numpy as np

    from larq_bnas.search.derive import row_entropy

    return [
        float(np.mean(np.concatenate([row_entropy(n), row_entropy(r)])))
        for n, r in zip(history["alpha_normal"], history["alpha_reduce"], strict=True)
    ]


def run(ctx: StudyContext) -> StudyResult:
    import numpy as np

    from larq_bnas._io import read_json
    from larq_bnas.search import run_search
    from larq_bnas.search.derive import decisiveness, derive_genotype, softmax

    s = dict(TOY if ctx.toy else PAPER)
    s["epochs"] = ctx.epochs_or(s["epochs"])
    ctx.total = len(LAMBDAS)
    histories: dict[float, dict[str, Any]] = {}
    for lam in LAMBDAS:

        def search_fn(unit_dir: Path, lam: float = lam) -> dict[str, Any]:
            result = run_search(
                unit_dir,
                gammas=GAMMAS,
                diversity_lambda=lam,
                resume=ctx.resume,
                data_dir=ctx.data_dir,
                tensorboard=False,
                verbose=0,
                **s,
            )
            return {"alpha_entropy": result["alpha_entropy"], "options": result["options"]}

        ctx.unit(
            f"search_{_key(lam)}",
            f"search lambda {lam:g}",
            search_fn,
            summary=lambda r: f"alpha entropy {r['alpha_entropy']:.4f}",
        )
        histories[lam] = read_json(ctx.unit_dir(f"search_{_key(lam)}") / "alphas.json")

    rows = []
    curves: dict[str, list[float]] = {}
    for lam, history in histories.items():
        curve = entropy_curve(history)  # index 0: the initialisation
        curves[_key(lam)] = curve
        early = max(1, round(s["epochs"] / 3))
        final = {k: np.asarray(history[f"alpha_{k}"][-1]) for k in ("normal", "reduce")}
        for gamma in GAMMAS:
            genotype = derive_genotype(
                final["normal"], final["reduce"], gamma, history["layer_set"]
            )
            d = decisiveness(final["normal"], final["reduce"], gamma, history["layer_set"])
            ops = [op for op, _ in genotype.normal + genotype.reduce]
            rows.append(
                {
                    "lambda": lam,
                    "gamma": gamma,
                    "entropy_epoch1": curve[1],
                    "entropy_early": float(np.mean(curve[1 : early + 1])),
                    "entropy_final": curve[-1],
                    "chosen_weight_normal": d["normal"]["chosen_weight_mean"],
                    "chosen_weight_reduce": d["reduce"]["chosen_weight_mean"],
                    "zeroise_share": ops.count("none") / len(ops),
                    "normal": _cell(genotype.to_dict()["normal"]),
                    "reduce": _cell(genotype.to_dict()["reduce"]),
                }
            )

    def figure(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
        ax = axes[0]
        for lam, history in histories.items():
            ax.plot(history["epochs"], curves[_key(lam)], "-o", ms=3, label=f"lambda {lam:g}")
        ax.axhline(np.log(len(histories[LAMBDAS[0]]["layer_set"])), color="gray", lw=0.8, ls=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean entropy of softmax(alpha), nats")
        ax.set_title("entropy (dotted: uniform)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax = axes[1]
        from larq_bnas.search.plots import _COLORS

        for lam, history in histories.items():
            weights = softmax(np.asarray(history["alpha_normal"])).mean(axis=1)  # epochs x K
            for k, op in enumerate(history["layer_set"]):
                ax.plot(
                    history["epochs"],
                    weights[:, k],
                    "-" if lam else "--",
                    color=_COLORS.get(op),
                    label=op if lam == LAMBDAS[0] else None,
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean softmax weight over edges (normal cell)")
        ax.set_title("alpha per op (solid: lambda 1, dashed: lambda 0)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        ax = axes[2]
        layer_set = list(histories[LAMBDAS[0]]["layer_set"])
        width = 0.8 / len(rows)
        for i, row in enumerate(rows):
            ops = (row["normal"] + " " + row["reduce"]).split()
            counts = [sum(1 for p in ops if p.split(":")[0] == op) for op in layer_set]
            ax.bar(
                np.arange(len(layer_set)) + (i - (len(rows) - 1) / 2) * width,
                counts,
                width,
                label=f"lambda {row['lambda']:g}, gamma {row['gamma']:g}",
            )
        ax.set_xticks(range(len(layer_set)), layer_set, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("derived edges (of 16)")
        ax.set_title("ops chosen", fontsize=10)
        ax.legend(fontsize=7)
        fig.suptitle(scale_title(ctx, TITLE), fontsize=11)
        fig.tight_layout()
        save_figure(fig, path)

    return ctx.finish(
        COLUMNS,
        rows,
        figure,
        extras={"search": s, "entropy_curves": curves, "source": SOURCE},
    )
