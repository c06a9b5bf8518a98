"""Study ``ablations`` (BNAS Table 8, 10 and 11): what each part of BNAS contributes, from
search through training.

Variants (each a searched cell stacked into the same network and trained the same way):

- ``full``: the BNAS search (layer set of Table 3, diversity regularizer lambda = 1),
  derived with gamma = 1;
- ``no_skip`` (Table 8 "No Skip"): the full search's cell, trained without the inter-cell
  skip connections (``inter_cell_skip=False``; the search itself keeps them, as
  ``run_search`` does);
- ``no_zeroise`` (Table 8 "No Zeroise"): the full search's alphas derived with Zeroise
  discarded (``discard_zeroise=True``);
- ``no_diversity`` (Table 8 "No Div"): searched with lambda = 0;
- ``no_dilated`` (Table 10, BNAS-A*): searched without the dilated convolutions;
- ``with_sep`` (Table 11, BNAS-A+): searched with the separable convolutions added.

That is four searches (full, no diversity, no dilated, with sep) and six trainings. The
paper reports BNAS-A on CIFAR-10: 92.70 full, 61.23 no skip, 89.47 no zeroise, 90.95 no
div; its BNAS-A* and BNAS-A+ accuracies are not in our reference facts.

- paper scale: searches as in the paper (CIFAR-10, 8 cells, C = 16, 50 epochs, batch 64),
  trainings as BNAS-A (20 cells, C = 36, 600 epochs, recipe bnas-cifar);
- toy scale: a tiny supernet (3 cells, C = 4, 16 x 16 digits, 1 epoch of 4 steps) and a
  tiny network (4 cells, C = 6) trained a few epochs.
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

NAME = "ablations"
TITLE = "BNAS ablations: skip, zeroise, diversity, layer set (BNAS Table 8, 10, 11)"
SOURCE = "BNAS (Kim et al., ECCV 2020) Table 8, 10 and 11"

#: search key -> run_search options
SEARCHES: dict[str, dict[str, Any]] = {
    "full": {"layer_set": "bnas", "diversity_lambda": 1.0},
    "no_diversity": {"layer_set": "bnas", "diversity_lambda": 0.0},
    "no_dilated": {"layer_set": "no_dilated", "diversity_lambda": 1.0},
    "with_sep": {"layer_set": "with_sep", "diversity_lambda": 1.0},
}
#: variant -> (search it uses, discard Zeroise at derivation, inter-cell skip, description)
VARIANTS: dict[str, tuple[str, bool, bool, str]] = {
    "full": ("full", False, True, "BNAS: full search and template"),
    "no_skip": ("full", False, False, "no inter-cell skip connections (Table 8)"),
    "no_zeroise": ("full", True, True, "Zeroise discarded at derivation (Table 8)"),
    "no_diversity": ("no_diversity", False, True, "diversity regularizer off, lambda 0 (Table 8)"),
    "no_dilated": (
        "no_dilated",
        False,
        True,
        "no dilated convs in the layer set, BNAS-A* (Table 10)",
    ),
    "with_sep": ("with_sep", False, True, "separable convs in the layer set, BNAS-A+ (Table 11)"),
}
#: The paper's CIFAR-10 accuracies of BNAS-A (Table 8); the others are not in our facts.
PAPER_TOP1 = {"full": 92.70, "no_skip": 61.23, "no_zeroise": 89.47, "no_diversity": 90.95}

TOY: dict[str, Any] = dict(
    dataset=TOY_DATASET,
    search=dict(cells=3, channels=4, batch_size=32, input_size=16, epochs=1, steps_per_epoch=4),
    train=dict(cells=4, channels=6, input_size=16, epochs=3, recipe="digits"),
)
PAPER: dict[str, Any] = dict(
    dataset="cifar10",
    search=dict(
        cells=8, channels=16, batch_size=64, input_size=32, epochs=50, steps_per_epoch=None
    ),
    train=dict(cells=20, channels=36, input_size=32, epochs=600, recipe="bnas-cifar"),
)

PAPER_COST = PaperCost(
    dataset="cifar10",
    units="4 searches (full, no diversity, no dilated, with sep) and 6 trainings of BNAS-A "
    "(full, no skip, no zeroise, no diversity, no dilated, with sep)",
    schedule="searches: 50 epochs, 8 cells, C = 16, batch 64; trainings: 20 cells, C = 36, "
    "600 epochs, recipe bnas-cifar, batch 256",
    gpu_hours="searches about 10 hours each on one RTX 2080 Ti (the paper's search cost), "
    "so about 40 GPU-hours; the trainings' time is not stated in the papers",
)

COLUMNS = [
    "variant",
    "description",
    "search",
    "layer_set",
    "diversity_lambda",
    "inter_cell_skip",
    "zeroise_kept",
    "normal",
    "reduce",
    "test_top1",
    "paper_top1",
    "ops",
    "size_mib",
]


def _cell(pairs: list[list[Any]]) -> str:
    return " ".join(f"{op}:{src}" for op, src in pairs)


def run(ctx: StudyContext) -> StudyResult:
    from larq_bnas._io import write_json
    from larq_bnas.models.bnas.genotypes import Genotype
    from larq_bnas.search import derive_from_file, run_search

    s = TOY if ctx.toy else PAPER
    epochs = ctx.epochs_or(s["train"]["epochs"])
    ctx.total = len(SEARCHES) + len(VARIANTS)

    searches: dict[str, dict[str, Any]] = {}
    for key, options in SEARCHES.items():

        def search_fn(unit_dir: Path, options: dict = options) -> dict[str, Any]:
            result = run_search(
                unit_dir,
                dataset=s["dataset"],
                gammas=(1.0,),
                resume=ctx.resume,
                data_dir=ctx.data_dir,
                tensorboard=False,
                verbose=0,
                **s["search"],
                **options,
            )
            return {
                "genotype": result["genotypes"]["1"],
                "alpha_entropy": result["alpha_entropy"],
                "options": options,
            }

        searches[key] = ctx.unit(
            f"search_{key}",
            f"search {key}",
            search_fn,
            summary=lambda r: f"alpha entropy {r['alpha_entropy']:.3f}",
        )

    rows = []
    for variant, (search, discard_zeroise, skip, description) in VARIANTS.items():

        def train_fn(
            unit_dir: Path,
            variant: str = variant,
            search: str = search,
            discard_zeroise: bool = discard_zeroise,
            skip: bool = skip,
        ) -> dict[str, Any]:
            if discard_zeroise:
                alphas = ctx.unit_dir(f"search_{search}") / "alphas_final.json"
                genotype = derive_from_file(alphas, gamma=1.0, discard_zeroise=True)
            else:
                genotype = Genotype.from_dict(searches[search]["genotype"])
            path = write_json(ctx.dir / "genotypes" / f"{variant}.json", genotype.to_dict())
            t = s["train"]
            results = train_unit(
                ctx,
                unit_dir,
                str(path),
                dataset=s["dataset"],
                recipe=t["recipe"],
                epochs=epochs,
                input_size=t["input_size"],
                options={"cells": t["cells"], "channels": t["channels"], "inter_cell_skip": skip},
            )
            return {
                "test_top1": results["test_top1"],
                "ops": results["ops"],
                "size_mib": results["size_mib"],
                "genotype": genotype.to_dict(),
            }

        result = ctx.unit(f"train_{variant}", f"train {variant}", train_fn)
        genotype = result["genotype"]
        ops = [op for op, _ in genotype["normal"] + genotype["reduce"]]
        options = SEARCHES[search]
        rows.append(
            {
                "variant": variant,
                "description": description,
                "search": search,
                "layer_set": options["layer_set"],
                "diversity_lambda": options["diversity_lambda"],
                "inter_cell_skip": skip,
                "zeroise_kept": ops.count("none"),
                "normal": _cell(genotype["normal"]),
                "reduce": _cell(genotype["reduce"]),
                "test_top1": result["test_top1"],
                "paper_top1": PAPER_TOP1.get(variant),
                "ops": result["ops"],
                "size_mib": result["size_mib"],
            }
        )

    def figure(path: Path) -> None:
        import numpy as np

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(8, 4.5))
        xs = np.arange(len(rows))
        label = "toy test top-1 (digits)" if ctx.toy else "test top-1"
        ax.bar(xs, [r["test_top1"] for r in rows], 0.6, label=label)
        paper = [(i, r["paper_top1"] / 100) for i, r in enumerate(rows) if r["paper_top1"]]
        ax.scatter(
            [i for i, _ in paper],
            [v for _, v in paper],
            marker="D",
            color="black",
            zorder=3,
            label="paper: BNAS-A on CIFAR-10 (Table 8)",
        )
        ax.set_xticks(xs, [r["variant"] for r in rows], rotation=15)
        ax.set_ylabel("top-1 accuracy")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title(scale_title(ctx, "Ablations: search -> derive -> train"), fontsize=10)
        fig.tight_layout()
        save_figure(fig, path)

    return ctx.finish(
        COLUMNS,
        rows,
        figure,
        extras={
            "dataset": s["dataset"],
            "search": s["search"],
            "train": {**s["train"], "epochs": epochs},
            "epochs": epochs,
            "gamma": 1.0,
            "source": SOURCE,
        },
    )
