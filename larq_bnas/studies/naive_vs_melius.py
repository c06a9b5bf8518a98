"""Study ``naive-vs-melius`` (MeliusNet supplement, section 2): is the Improvement Block
worth it?

The supplement compares MeliusNet with a naive network of the same OPs that alternates
each Dense Block with a full-width Residual Block (BN -> sign -> binary 3x3 conv c -> c,
added to all c channels) instead of an Improvement Block. Both are trained 40 epochs with
Adam, lr 0.001, x0.1 at epochs 35 and 37 (recipe ``meliusnet-40``, which scales those
epochs with the run's length), and the curves and final accuracies are compared.

- paper scale: ``meliusnet22`` with the plain stem (2.58e8 OPs) against
  ``meliusnet-naive`` (2.577e8 OPs) on ImageNet, 40 epochs.
- toy scale: two small MeliusNets of matched OPs (``TOY_MODELS``, 32 x 32 input) on the
  digits, the same schedule scaled to a few epochs.
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
    train_unit,
    unit_history,
)

NAME = "naive-vs-melius"
TITLE = "Naive Dense + Residual network vs MeliusNet at matched OPs (MeliusNet supp. 2)"
SOURCE = "MeliusNet (Bethge et al., WACV 2021) supplementary material, section 2"

_TOY_BASE = {"stem": "plain", "stem_channels": 32, "growth": 16}
#: unit -> (zoo name, options) at each scale; the toy pair is matched in OPs (within 2 %).
TOY_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "meliusnet": (
        "meliusnet",
        {**_TOY_BASE, "blocks": (2, 3, 2), "transition_channels": (48, 64), "reductions": ()},
    ),
    "naive": (
        "meliusnet",
        {
            **_TOY_BASE,
            "blocks": (2, 2, 2),
            "transition_channels": (32, 48),
            "reductions": (),
            "block": "naive",
        },
    ),
}
PAPER_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "meliusnet": ("meliusnet22", {"stem": "plain"}),
    "naive": ("meliusnet-naive", {}),
}
TOY: dict[str, Any] = dict(dataset=TOY_DATASET, input_size=32, epochs=10, recipe="meliusnet-40")
PAPER: dict[str, Any] = dict(
    dataset="imagenet2012", input_size=224, epochs=40, recipe="meliusnet-40"
)

PAPER_COST = PaperCost(
    dataset="imagenet2012",
    units="2 trainings: MeliusNet22 (plain stem, 2.58e8 OPs) and the naive network (2.577e8 OPs)",
    schedule="40 epochs each, Adam lr 0.001, x0.1 at epochs 35 and 37 (recipe meliusnet-40), "
    "batch 64",
    gpu_hours="not stated in the papers",
)

COLUMNS = [
    "model",
    "block",
    "blocks",
    "test_top1",
    "best_test_top1",
    "ops",
    "bops",
    "flops",
    "size_mib",
    "trainable_params",
]


def run(ctx: StudyContext) -> StudyResult:
    from larq_bnas.costs import model_costs
    from larq_bnas.training import data
    from larq_bnas.zoo.registry import build

    s = TOY if ctx.toy else PAPER
    models = TOY_MODELS if ctx.toy else PAPER_MODELS
    epochs = ctx.epochs_or(s["epochs"])
    num_classes = data.info(s["dataset"], ctx.data_dir).num_classes
    shape = (s["input_size"], s["input_size"], 3)
    ctx.total = len(models)
    rows, histories = [], {}
    for key, (name, options) in models.items():

        def fn(unit_dir: Path, name: str = name, options: dict = options) -> dict[str, Any]:
            results = train_unit(
                ctx,
                unit_dir,
                name,
                dataset=s["dataset"],
                recipe=s["recipe"],
                epochs=epochs,
                input_size=s["input_size"],
                options=options,
            )
            return {"test_top1": results["test_top1"], "best_test_top1": results["best_test_top1"]}

        result = ctx.unit(key, f"{key} ({name})", fn)
        histories[key] = unit_history(ctx.unit_dir(key))
        costs = model_costs(build(name, input_shape=shape, num_classes=num_classes, **options))
        block = options.get("block", "melius")
        blocks = options.get("blocks")
        if blocks is None:
            from larq_bnas.zoo.registry import get_spec

            blocks = get_spec(name).config.blocks  # type: ignore[attr-defined]
        rows.append(
            {
                "model": key,
                "block": block,
                "blocks": list(blocks),
                "test_top1": result["test_top1"],
                "best_test_top1": result["best_test_top1"],
                "ops": costs.ops,
                "bops": costs.bops,
                "flops": costs.flops,
                "size_mib": costs.size_mib,
                "trainable_params": costs.trainable_params,
            }
        )

    def figure(path: Path) -> None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        for i, row in enumerate(rows):
            history = histories[row["model"]]
            label = f"{row['model']} ({row['ops'] / 1e6:.2f} M OPs, {row['size_mib']:.2f} MiB)"
            ep = [h["epoch"] for h in history]
            ax.plot(
                ep,
                [h.get("val_accuracy") for h in history],
                "-o",
                color=f"C{i}",
                markersize=3,
                label=f"{label}: test",
            )
            ax.plot(
                ep,
                [h.get("accuracy") for h in history],
                "--",
                color=f"C{i}",
                label=f"{label}: train",
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel("top-1 accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(
            scale_title(ctx, "Naive Dense + Residual vs MeliusNet, matched OPs"), fontsize=10
        )
        fig.tight_layout()
        save_figure(fig, path)

    return ctx.finish(
        COLUMNS,
        rows,
        figure,
        extras={
            "dataset": s["dataset"],
            "input_size": s["input_size"],
            "epochs": epochs,
            "recipe": s["recipe"],
            "source": SOURCE,
            "curves": {
                k: [
                    {
                        "epoch": h["epoch"],
                        "accuracy": h.get("accuracy"),
                        "val_accuracy": h.get("val_accuracy"),
                        "lr": h.get("lr"),
                    }
                    for h in v
                ]
                for k, v in histories.items()
            },
        },
    )
