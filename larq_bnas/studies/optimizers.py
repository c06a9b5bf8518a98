"""Study ``optimizers`` (MeliusNet supplement, section 3, Figure 4): how often binary
weights flip their sign under Adam, RAdam and SGD.

The same network is trained with each optimizer (Adam and SGD with 5 warm-up epochs,
RAdam without; recipes ``adam``, ``radam``, ``sgd``). For every binary weight,
``larq_bnas.training.callbacks.WeightFlipCounter`` counts how many times its sign flips between
consecutive batches during an epoch; the study reports, per epoch, the 50th, 90th, 95th
and 99th percentile of those counts over the weights of two layers: the first binary
convolution of the first stage and the last binary convolution of the last stage.
The supplement finds that after about 90 epochs 95 % of the binary weights do not flip
within an epoch, that Adam and RAdam grow more stable over training, and that SGD's early
layers grow less stable after about epoch 60.

- paper scale: MeliusNet22 on ImageNet, 120 epochs per optimizer.
- toy scale: a small MeliusNet (32 x 32 input) on the digits for a few epochs; the
  warm-up is scaled with the epochs (min(5, epochs // 4) epochs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from larq_bnas._io import read_json
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

NAME = "optimizers"
TITLE = "Adam vs RAdam vs SGD: sign flips of binary weights (MeliusNet supp. 3, Fig. 4)"
SOURCE = "MeliusNet (Bethge et al., WACV 2021) supplementary material, section 3, Figure 4"

OPTIMIZERS = ("adam", "radam", "sgd")
PERCENTILES = ("p50", "p90", "p95", "p99")
TOY_MODEL = (
    "meliusnet",
    {
        "stem": "plain",
        "stem_channels": 32,
        "growth": 16,
        "blocks": (2, 3, 2),
        "transition_channels": (48, 64),
        "reductions": (),
    },
)
PAPER_MODEL: tuple[str, dict[str, Any]] = ("meliusnet22", {})
TOY: dict[str, Any] = dict(dataset=TOY_DATASET, input_size=32, epochs=8)
PAPER: dict[str, Any] = dict(dataset="imagenet2012", input_size=224, epochs=120)

PAPER_COST = PaperCost(
    dataset="imagenet2012",
    units="3 trainings of MeliusNet22: Adam, RAdam, SGD (recipes adam, radam, sgd)",
    schedule="120 epochs each, 5 warm-up epochs for Adam and SGD, cosine decay, batch 64",
    gpu_hours="not stated in the papers",
)

COLUMNS = [
    "optimizer",
    "layer",
    "layer_name",
    "epoch",
    *PERCENTILES,
    "max",
    "test_top1",
    "val_accuracy",
]


def first_and_last_binary_layers(records: list[dict[str, Any]]) -> tuple[str, str]:
    """The first and the last binary layer (in model order) of ``WeightFlipCounter``
    records: the first binary conv of the first stage and the last of the last stage."""
    names: list[str] = []
    for record in records:
        if record["layer"] != "all" and record["layer"] not in names:
            names.append(record["layer"])
    if not names:
        raise ValueError("The flip records name no binary layer")
    return names[0], names[-1]


def run(ctx: StudyContext) -> StudyResult:
    s = TOY if ctx.toy else PAPER
    name, options = TOY_MODEL if ctx.toy else PAPER_MODEL
    epochs = ctx.epochs_or(s["epochs"])
    ctx.total = len(OPTIMIZERS)
    results: dict[str, dict[str, Any]] = {}
    for optimizer in OPTIMIZERS:

        def fn(unit_dir: Path, optimizer: str = optimizer) -> dict[str, Any]:
            trained = train_unit(
                ctx,
                unit_dir,
                name,
                dataset=s["dataset"],
                recipe=optimizer,
                epochs=epochs,
                input_size=s["input_size"],
                options=options,
                flip_stats=True,
            )
            records = read_json(unit_dir / "flips.json")
            first, last = first_and_last_binary_layers(records)
            history = read_json(unit_dir / "history.json")
            val = {h["epoch"]: h.get("val_accuracy") for h in history}
            flips = [
                {
                    "layer": which,
                    "layer_name": r["layer"],
                    "epoch": r["epoch"],
                    **{p: r[p] for p in (*PERCENTILES, "max")},
                    "val_accuracy": val.get(r["epoch"]),
                }
                for which, layer in (("first", first), ("last", last))
                for r in records
                if r["layer"] == layer
            ]
            return {"test_top1": trained["test_top1"], "flips": flips}

        results[optimizer] = ctx.unit(optimizer, optimizer, fn)

    rows = [
        {"optimizer": opt, **flip, "test_top1": res["test_top1"]}
        for opt, res in results.items()
        for flip in res["flips"]
    ]

    def figure(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(
            2, len(OPTIMIZERS), figsize=(11, 6), sharex=True, sharey=True, squeeze=False
        )
        for col, opt in enumerate(OPTIMIZERS):
            for row_i, which in enumerate(("first", "last")):
                ax = axes[row_i][col]
                pts = [r for r in rows if r["optimizer"] == opt and r["layer"] == which]
                for p in PERCENTILES:
                    ax.plot(
                        [r["epoch"] for r in pts],
                        [r[p] for r in pts],
                        "-o",
                        markersize=3,
                        label=f"{p[1:]}th percentile",
                    )
                ax.plot(
                    [r["epoch"] for r in pts],
                    [r["max"] for r in pts],
                    ":",
                    color="grey",
                    label="maximum",
                )
                title = f"{opt}: {'first' if which == 'first' else 'last'} binary conv"
                if pts:
                    title += f"\n{pts[0]['layer_name']}"
                ax.set_title(title, fontsize=8)
                ax.grid(alpha=0.3)
                if col == 0:
                    ax.set_ylabel("sign flips per weight in the epoch")
                if row_i == 1:
                    ax.set_xlabel("epoch")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(scale_title(ctx, "Sign flips of binary weights per epoch"), fontsize=10)
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
            "model": name,
            "model_options": options,
            "source": SOURCE,
            "final_test_top1": {opt: res["test_top1"] for opt, res in results.items()},
        },
    )
