"""`larq_bnas run`: the main job, search -> train -> convert -> verify -> benchmark -> report."""

from __future__ import annotations

import click


def _stages(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(s.strip() for s in value.split(",") if s.strip())


@click.command()
@click.option("-o", "--output", type=click.Path(file_okay=False), default="runs/main",
              show_default=True, help="Output directory of the whole run.")
@click.option("--resume", is_flag=True, help="Skip finished stages and resume the unfinished one.")
@click.option("--dataset", default="digits", show_default=True,
              help="digits (embedded), a tfds name or folder:PATH.")
@click.option("--data-dir", type=click.Path(), default=None)
@click.option("--input-size", type=click.IntRange(min=16), default=32, show_default=True,
              help="Input size of the trained network and the comparisons.")
@click.option("--search-epochs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--search-cells", type=click.IntRange(min=3), default=5, show_default=True)
@click.option("--search-channels", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--search-input-size", type=click.IntRange(min=8), default=16, show_default=True)
@click.option("--gamma", "gammas", type=float, multiple=True,
              help="Zeroise transferability gamma(s) to derive with (default: 1 and 3).")
@click.option("--train-gamma", type=float, default=None,
              help="Which derived genotype to train (default: the first --gamma).")
@click.option("--genotype", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Train this genotype instead of searching one.")
@click.option("--cells", type=click.IntRange(min=3), default=5, show_default=True,
              help="Cells of the trained network (the budget).")
@click.option("--channels", type=click.IntRange(min=1), default=12, show_default=True,
              help="Initial channels C of the trained network (the budget).")
@click.option("--epochs", "train_epochs", type=click.IntRange(min=1), default=8,
              show_default=True, help="Training epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--recipe", default=None, help="Training recipe (default: digits / bnas-cifar).")
@click.option("--compare", "compare_models", multiple=True,
              help="Zoo models to compare at the same input size (default: bnas-a, meliusnet22); "
                   "options as NAME@key=value,key=value.")
@click.option("--stages", default=None,
              help="Comma-separated stages to run: search,train,convert,benchmark,compare,report.")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def run(output: str, resume: bool, dataset: str, data_dir: str | None, input_size: int,
        search_epochs: int, search_cells: int, search_channels: int, search_input_size: int,
        gammas: tuple[float, ...], train_gamma: float | None, genotype: str | None,
        cells: int, channels: int, train_epochs: int, batch_size: int, recipe: str | None,
        compare_models: tuple[str, ...], stages: str | None, threads: int, seed: int) -> None:
    """Search a cell, train the stacked network, convert it to LCE, verify, benchmark,
    and write report.html / report.md into the output directory.

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
    from larq_bnas.pipeline import run_pipeline

    options = {
        "dataset": dataset, "data_dir": data_dir, "input_size": input_size,
        "search_epochs": search_epochs, "search_cells": search_cells,
        "search_channels": search_channels, "search_input_size": search_input_size,
        "train_gamma": train_gamma, "genotype": genotype, "cells": cells,
        "channels": channels, "train_epochs": train_epochs, "batch_size": batch_size,
        "recipe": recipe, "threads": threads, "seed": seed,
    }
    if gammas:
        options["gammas"] = gammas
    if compare_models:
        options["compare_models"] = compare_models
    if _stages(stages) is not None:
        options["stages"] = _stages(stages)
    run_pipeline(output, resume=resume, log=lambda line: click.echo(line, err=False), **options)
    click.echo(f"report: {output}/report.html (and report.md)")
