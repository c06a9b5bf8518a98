"""`larq_bnas run`: the main job, search -> train -> convert -> verify -> benchmark -> report."""

from __future__ import annotations

from typing import Any

import click

from larq_bnas.pipeline.options import STAGES
from larq_bnas.pipeline.options import default as _d


def _stages(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(s.strip() for s in value.split(",") if s.strip())


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    default="runs/main",
    show_default=True,
    help="Output directory of the whole run.",
)
@click.option("--resume", is_flag=True, help="Skip finished stages and resume the unfinished one.")
@click.option(
    "--dataset",
    default=_d("dataset"),
    show_default=True,
    help="digits (embedded), a tfds name or folder:PATH.",
)
@click.option("--data-dir", type=click.Path(), default=None)
@click.option(
    "--input-size",
    type=click.IntRange(min=16),
    default=_d("input_size"),
    show_default=True,
    help="Input size of the trained network and the comparisons.",
)
@click.option(
    "--search-epochs", type=click.IntRange(min=1), default=_d("search_epochs"), show_default=True
)
@click.option(
    "--search-cells", type=click.IntRange(min=3), default=_d("search_cells"), show_default=True
)
@click.option(
    "--search-channels",
    type=click.IntRange(min=1),
    default=_d("search_channels"),
    show_default=True,
)
@click.option(
    "--search-input-size",
    type=click.IntRange(min=8),
    default=_d("search_input_size"),
    show_default=True,
)
@click.option(
    "--search-batch-size",
    type=click.IntRange(min=1),
    default=_d("search_batch_size"),
    show_default=True,
    help="Images per half-batch of the search (more steps per epoch when smaller).",
)
@click.option(
    "--search-arch-lr",
    type=click.FloatRange(min=0, min_open=True),
    default=_d("search_arch_lr"),
    show_default=True,
    help="Adam learning rate of the architecture parameters (paper: 3e-4).",
)
@click.option(
    "--search-arch-weight-decay",
    type=click.FloatRange(min=0),
    default=_d("search_arch_weight_decay"),
    show_default=True,
    help="L2 on the architecture parameters (paper: 1e-3).",
)
@click.option(
    "--tau",
    "search_tau",
    type=click.FloatRange(min=0, min_open=True),
    default=_d("search_tau"),
    help="Diversity regularizer decay in epochs (default: search epochs * 7.7 / 50).",
)
@click.option(
    "--random-cells",
    type=click.IntRange(min=0),
    default=_d("random_cells"),
    show_default=True,
    help="Random cells trained against the searched one (same size, recipe, epochs).",
)
@click.option(
    "--cell-seeds",
    type=click.IntRange(min=1),
    default=_d("cell_seeds"),
    show_default=True,
    help="Trainings per compared cell (seeds SEED, SEED+1, ...): the seed spread.",
)
@click.option(
    "--gamma",
    "gammas",
    type=float,
    multiple=True,
    default=_d("gammas"),
    show_default=True,
    help="Zeroise transferability gamma(s) to derive with.",
)
@click.option(
    "--train-gamma",
    type=float,
    default=None,
    help="Which derived genotype to train (default: the first --gamma).",
)
@click.option(
    "--genotype",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Train this genotype instead of searching one.",
)
@click.option(
    "--cells",
    type=click.IntRange(min=3),
    default=_d("cells"),
    show_default=True,
    help="Cells of the trained network (the budget).",
)
@click.option(
    "--channels",
    type=click.IntRange(min=1),
    default=_d("channels"),
    show_default=True,
    help="Initial channels C of the trained network (the budget).",
)
@click.option(
    "--epochs",
    "train_epochs",
    type=click.IntRange(min=1),
    default=_d("train_epochs"),
    show_default=True,
    help="Training epochs.",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=_d("batch_size"), show_default=True
)
@click.option("--recipe", default=None, help="Training recipe (default: digits / bnas-cifar).")
@click.option(
    "--compare",
    "compare_models",
    multiple=True,
    default=_d("compare_models"),
    show_default=True,
    help="Zoo model to compare at the same input size (repeatable), with options as "
    'in --set: "NAME KEY=VALUE ...".',
)
@click.option("--stages", default=None, help=f"Comma-separated stages to run: {','.join(STAGES)}.")
@click.option("--threads", type=click.IntRange(min=1), default=_d("threads"), show_default=True)
@click.option("--seed", type=int, default=_d("seed"), show_default=True)
def run(
    output: str,
    resume: bool,
    dataset: str,
    data_dir: str | None,
    input_size: int,
    search_epochs: int,
    search_cells: int,
    search_channels: int,
    search_input_size: int,
    search_batch_size: int,
    search_arch_lr: float,
    search_arch_weight_decay: float,
    search_tau: float | None,
    random_cells: int,
    cell_seeds: int,
    gammas: tuple[float, ...],
    train_gamma: float | None,
    genotype: str | None,
    cells: int,
    channels: int,
    train_epochs: int,
    batch_size: int,
    recipe: str | None,
    compare_models: tuple[str, ...],
    stages: str | None,
    threads: int,
    seed: int,
) -> None:
    """Search a cell, train the stacked network, convert it to LCE, verify, benchmark,
    compare it with random cells and the BNAS-A cell trained the same way, and write
    report.html / report.md into the output directory.

    With the defaults this runs offline on the embedded digits in about 10-15 minutes on
    2 CPU cores. Every stage's result is saved as it finishes; --resume skips finished
    stages.

    \b
    Examples:
      larq_bnas run
      larq_bnas run -o runs/big --search-epochs 10 --cells 8 --channels 16 --epochs 20
      larq_bnas run -o runs/cell --genotype my_cell.json --stages train,convert,benchmark,report
      larq_bnas run --resume
    """
    from larq_bnas.pipeline.stages import run_pipeline

    options: dict[str, Any] = {
        "dataset": dataset,
        "data_dir": data_dir,
        "input_size": input_size,
        "search_epochs": search_epochs,
        "search_cells": search_cells,
        "search_channels": search_channels,
        "search_input_size": search_input_size,
        "search_batch_size": search_batch_size,
        "search_arch_lr": search_arch_lr,
        "search_arch_weight_decay": search_arch_weight_decay,
        "search_tau": search_tau,
        "random_cells": random_cells,
        "cell_seeds": cell_seeds,
        "train_gamma": train_gamma,
        "genotype": genotype,
        "cells": cells,
        "channels": channels,
        "train_epochs": train_epochs,
        "batch_size": batch_size,
        "recipe": recipe,
        "threads": threads,
        "seed": seed,
        "gammas": gammas,
        "compare_models": compare_models,
    }
    if _stages(stages) is not None:
        options["stages"] = _stages(stages)
    run_pipeline(output, resume=resume, log=lambda line: click.echo(line, err=False), **options)
    click.echo(f"report: {output}/report.html (and report.md)")
