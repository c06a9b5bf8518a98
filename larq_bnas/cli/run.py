"""`larq_bnas run`: the main job, search -> train -> convert -> verify -> benchmark -> report."""

from __future__ import annotations

from typing import Any

import click

from larq_bnas.cli._common import (
    CELLS,
    CHANNELS,
    COUNT,
    Decorator,
    data_dir_option,
    dataset_option,
    output_option,
    resume_option,
    seed_option,
    threads_option,
)
from larq_bnas.pipeline.options import STAGES
from larq_bnas.pipeline.options import default as _d


def _stages(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(s.strip() for s in value.split(",") if s.strip())


def _option(*decls: str, **kwargs: Any) -> Decorator:
    """An option of ``run`` whose default is ``PipelineOptions``' (shown in --help)."""
    name = str(click.Option(list(decls)).name)
    return click.option(*decls, default=_d(name), show_default=True, **kwargs)


_POSITIVE = click.FloatRange(min=0, min_open=True)


@click.command()
@output_option(
    "Output directory of the whole run.", required=False, default="runs/main", short_first=True
)
@resume_option("Skip finished stages and resume the unfinished one.")
@dataset_option("digits (embedded), a tfds name or folder:PATH.", default=_d("dataset"))
@data_dir_option(help=None)
@_option(
    "--input-size",
    type=click.IntRange(min=16),
    help="Input size of the trained network and the comparisons.",
)
@_option("--search-epochs", type=COUNT)
@_option("--search-cells", type=CELLS)
@_option("--search-channels", type=CHANNELS)
@_option("--search-input-size", type=click.IntRange(min=8))
@_option(
    "--search-batch-size",
    type=COUNT,
    help="Images per half-batch of the search (more steps per epoch when smaller).",
)
@_option(
    "--search-arch-lr",
    type=_POSITIVE,
    help="Adam learning rate of the architecture parameters (paper: 3e-4).",
)
@_option(
    "--search-arch-weight-decay",
    type=click.FloatRange(min=0),
    help="L2 on the architecture parameters (paper: 1e-3).",
)
@_option(
    "--tau",
    "search_tau",
    type=_POSITIVE,
    help="Diversity regularizer decay in epochs (default: search epochs * 7.7 / 50).",
)
@_option(
    "--random-cells",
    type=click.IntRange(min=0),
    help="Random cells trained against the searched one (same size, recipe, epochs).",
)
@_option(
    "--cell-seeds",
    type=COUNT,
    help="Trainings per compared cell (seeds SEED, SEED+1, ...): the seed spread.",
)
@_option(
    "--gamma",
    "gammas",
    type=float,
    multiple=True,
    help="Zeroise transferability gamma(s) to derive with.",
)
@_option(
    "--train-gamma",
    type=float,
    help="Which derived genotype to train (default: the first --gamma).",
)
@_option(
    "--genotype",
    type=click.Path(exists=True, dir_okay=False),
    help="Train this genotype instead of searching one.",
)
@_option("--cells", type=CELLS, help="Cells of the trained network (the budget).")
@_option(
    "--channels", type=CHANNELS, help="Initial channels C of the trained network (the budget)."
)
@_option("--epochs", "train_epochs", type=COUNT, help="Training epochs.")
@_option("--batch-size", type=COUNT)
@_option("--recipe", help="Training recipe (default: digits / bnas-cifar).")
@_option(
    "--compare",
    "compare_models",
    multiple=True,
    help="Zoo model to compare at the same input size (repeatable), with options as "
    'in --set: "NAME KEY=VALUE ...".',
)
@click.option("--stages", default=None, help=f"Comma-separated stages to run: {','.join(STAGES)}.")
@threads_option(default=_d("threads"))
@seed_option(default=_d("seed"))
def run(output: str, resume: bool, stages: str | None, **options: Any) -> None:
    """Search a cell, train the stacked network, convert it to LCE, verify, benchmark,
    compare it with random cells and the BNAS-A cell trained the same way, and write
    report.html / report.md into the output directory.

    With the defaults this runs offline on the embedded digits in about 5 minutes on 2
    CPU cores. Every stage's result is saved as it finishes; --resume skips finished
    stages.

    \b
    Examples:
      larq_bnas run
      larq_bnas run -o runs/big --search-epochs 10 --cells 8 --channels 16 --epochs 20
      larq_bnas run -o runs/cell --genotype my_cell.json --stages train,convert,benchmark,report
      larq_bnas run --resume
    """
    from larq_bnas.pipeline.stages import run_pipeline

    if _stages(stages) is not None:
        options["stages"] = _stages(stages)
    run_pipeline(output, resume=resume, log=lambda line: click.echo(line, err=False), **options)
    click.echo(f"report: {output}/report.html (and report.md)")
