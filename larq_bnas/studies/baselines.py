"""Study ``baselines`` (BNAS Table 6 and Figure 1): searched vs hand-crafted binary networks.

BNAS compares its searched CIFAR-10 networks with hand-crafted backbones binarized by
XNOR-Net (ResNet18, ResNet34, WRN40; ``larq_bnas.models.xnor``) and plots accuracy
against OPs (Figure 1). Every model is trained with the same recipe, and its cost comes
from the same report (``larq_bnas.costs.model_costs``, OPs = BOPs / 64 + FLOPs) of the
paper configuration at the CIFAR input size (32 x 32).

At toy scale the models trained on digits are shrunken (``TOY_OPTIONS``: XNOR backbones
at 1/8 width with their full depth, BNAS models with 3-5 cells and a few channels), so
the figure plots toy accuracies against the OPs of the paper configurations.
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
)

NAME = "baselines"
TITLE = "XNOR-Net baselines vs BNAS: accuracy and OPs (BNAS Table 6, Figure 1)"
SOURCE = "BNAS (Kim et al., ECCV 2020) Table 6 and Figure 1"

MODELS = ("xnor-resnet18", "xnor-resnet34", "xnor-wrn40", "bnas-mini", "bnas-a", "bnas-b", "bnas-c")
#: The shrunken configurations trained at toy scale (the paper scale trains the models as
#: they are in the zoo).
TOY_OPTIONS: dict[str, dict[str, Any]] = {
    "xnor-resnet18": {"width": 0.125},
    "xnor-resnet34": {"width": 0.125},
    "xnor-wrn40": {"width": 0.125},
    "bnas-mini": {"cells": 3, "channels": 4},
    "bnas-a": {"cells": 5, "channels": 6},
    "bnas-b": {"cells": 3, "channels": 10},
    "bnas-c": {"cells": 4, "channels": 16},
}
TOY: dict[str, Any] = dict(dataset=TOY_DATASET, input_size=16, epochs=3, recipe="digits")
PAPER: dict[str, Any] = dict(dataset="cifar10", input_size=32, epochs=600, recipe="bnas-cifar")

PAPER_COST = PaperCost(
    dataset="cifar10",
    units="7 trainings: XNOR-ResNet18, XNOR-ResNet34, XNOR-WRN40, BNAS-Mini/A/B/C",
    schedule="600 epochs each, recipe bnas-cifar (the BNAS paper's CIFAR-10 recipe: SGD "
    "one-cycle 4e-4..5e-2, batch 256), also for the XNOR baselines (our choice)",
    gpu_hours="not stated in the papers",
)

COLUMNS = [
    "model",
    "family",
    "trained_options",
    "test_top1",
    "paper_top1",
    "ops",
    "ops_paper",
    "bops",
    "flops",
    "size_mib",
    "trainable_params",
    "trained_ops",
]


def paper_configuration_costs(name: str) -> dict[str, Any]:
    """Cost figures of zoo model ``name`` at its paper configuration and 32 x 32 input:
    from the shipped figures when present, else computed."""
    from larq_bnas.zoo.figures import load_figures
    from larq_bnas.zoo.registry import model_cost_report

    shipped = load_figures().get(name)
    if shipped and all(k in shipped for k in ("ops", "bops", "flops", "size_mib")):
        return dict(shipped)
    report = model_cost_report(name)
    return {**report.to_dict(), **report.extras}


def run(ctx: StudyContext) -> StudyResult:
    from larq_bnas.zoo.registry import get_spec

    s = TOY if ctx.toy else PAPER
    epochs = ctx.epochs_or(s["epochs"])
    ctx.total = len(MODELS)
    rows = []
    for name in MODELS:
        options = TOY_OPTIONS[name] if ctx.toy else {}

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
            return {
                "model": name,
                "test_top1": results["test_top1"],
                "best_test_top1": results["best_test_top1"],
                "trained_ops": results["ops"],
                "trained_options": options,
            }

        result = ctx.unit(name, name, fn)
        spec = get_spec(name)
        costs = paper_configuration_costs(name)
        rows.append(
            {
                "model": name,
                "family": spec.family,
                "trained_options": " ".join(f"{k}={v}" for k, v in options.items()) or "paper",
                "test_top1": result["test_top1"],
                "paper_top1": spec.paper.get("top1"),
                "ops": costs["ops"],
                "ops_paper": costs.get("ops_paper"),
                "bops": costs["bops"],
                "flops": costs["flops"],
                "size_mib": costs["size_mib"],
                "trainable_params": costs.get("trainable_params"),
                "trained_ops": result["trained_ops"],
            }
        )

    def figure(path: Path) -> None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        styles = {"xnor": ("s", "XNOR-Net baselines"), "bnas": ("o", "BNAS")}
        for family, (marker, label) in styles.items():
            pts = [r for r in rows if r["family"] == family]
            ax.scatter(
                [r["ops"] for r in pts],
                [r["test_top1"] for r in pts],
                marker=marker,
                s=50,
                label=label,
            )
            for r in pts:
                ax.annotate(
                    r["model"],
                    (r["ops"], r["test_top1"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=8,
                )
        bnas = [r for r in rows if r["family"] == "bnas" and r.get("ops_paper")]
        if bnas:
            ax.scatter(
                [r["ops_paper"] for r in bnas],
                [r["test_top1"] for r in bnas],
                marker="o",
                facecolors="none",
                edgecolors="C1",
                s=50,
                label="BNAS, OPs counted the BNAS paper's way",
            )
        ax.set_xscale("log")
        ax.set_xlabel("OPs of the paper configuration at 32 x 32 (BOPs / 64 + FLOPs)")
        ax.set_ylabel("test top-1 accuracy" + (" (toy models on digits)" if ctx.toy else ""))
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title(scale_title(ctx, "Accuracy vs OPs"), fontsize=10)
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
            "cost_input_shape": [32, 32, 3],
            "source": SOURCE,
        },
    )
