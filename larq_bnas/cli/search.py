"""`larq_bnas search` (BNAS cell search) and `larq_bnas derive` (genotype from alphas)."""

from __future__ import annotations

import click

from larq_bnas.cli._common import echo_json

_POSITIVE = click.FloatRange(min=0, min_open=True)


@click.command()
@click.option(
    "--dataset",
    default="digits",
    show_default=True,
    help="digits (embedded), a tfds name (cifar10, ...) or folder:PATH.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Search epochs (the cosine schedule spans them).",
)
@click.option(
    "--cells",
    type=click.IntRange(min=3),
    default=8,
    show_default=True,
    help="Cells of the supernet (reductions at cells//3 and 2*cells//3).",
)
@click.option(
    "--channels",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Initial channels C of the supernet.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Images per batch of each half (weights / architecture).",
)
@click.option(
    "--input-size",
    type=click.IntRange(min=4),
    default=None,
    help="Square input size (default: 16 for digits, else 32).",
)
@click.option(
    "--gamma",
    "gammas",
    type=_POSITIVE,
    multiple=True,
    help="Transferability gamma to derive a genotype for (repeatable; default: 1 and 3).",
)
@click.option(
    "--diversity-lambda",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Diversity regularizer weight (0 turns it off).",
)
@click.option(
    "--diversity-tau",
    type=_POSITIVE,
    default=7.7,
    show_default=True,
    help="Diversity regularizer decay in epochs.",
)
@click.option(
    "--layer-set",
    default="bnas",
    show_default=True,
    help="Candidate operations: a preset (bnas, no_dilated, with_sep) or "
    "comma-separated operation names.",
)
@click.option(
    "--discard-zeroise",
    is_flag=True,
    help="Derive the genotypes without Zeroise (ablation No Zeroise).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    required=True,
    help="Output directory (genotypes, alphas, pictures, checkpoints).",
)
@click.option("--resume", is_flag=True, help="Continue the search found in --output.")
@click.option(
    "--steps-per-epoch",
    type=click.IntRange(min=1),
    default=None,
    help="Cap the steps of an epoch (default: one pass over a half).",
)
@click.option(
    "--data-dir",
    type=click.Path(),
    default=None,
    help="Where tfds datasets are prepared (default $TFDS_DATA_DIR).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--xla/--no-xla",
    default=False,
    show_default=True,
    help="Compile the search step with XLA (slower on CPU, see the docs).",
)
def search(
    dataset: str,
    epochs: int,
    cells: int,
    channels: int,
    batch_size: int,
    input_size: int | None,
    gammas: tuple[float, ...],
    diversity_lambda: float,
    diversity_tau: float,
    layer_set: str,
    discard_zeroise: bool,
    output: str,
    resume: bool,
    steps_per_epoch: int | None,
    data_dir: str | None,
    seed: int,
    xla: bool,
) -> None:
    """Search BNAS cells with a differentiable supernet (paper 4.3).

    Each step updates the architecture parameters on a batch of one half of the training
    split (Adam, with the diversity regularizer) and then the weights on a batch of the
    other half (SGD). Writes genotype_gamma{G}.json per gamma, alphas.json (history),
    alphas_final.json, cells_gamma{G}.png, alphas.png, results.json and a checkpoint
    each epoch into --output; --resume continues a stopped search (also with more epochs).

    \b
    Examples:
      larq_bnas search --epochs 2 --cells 5 --channels 8 -o runs/search
      larq_bnas search --dataset cifar10 --epochs 50 --gamma 1 --gamma 3 -o runs/cifar
      larq_bnas train runs/search/genotype_gamma1.json --cells 8 --channels 16 -o runs/t
    """
    from larq_bnas.search import run_search

    results = run_search(
        output,
        dataset=dataset,
        epochs=epochs,
        cells=cells,
        channels=channels,
        batch_size=batch_size,
        input_size=input_size,
        layer_set=layer_set,
        gammas=gammas or (1.0, 3.0),
        diversity_lambda=diversity_lambda,
        diversity_tau=diversity_tau,
        discard_zeroise=discard_zeroise,
        seed=seed,
        jit_compile=xla,
        resume=resume,
        data_dir=data_dir,
        steps_per_epoch=steps_per_epoch,
    )
    click.echo(
        f"searched {results['epochs_done']} epochs, alpha entropy "
        f"{results['alpha_entropy']:.4f} -> {output}"
    )
    for gamma, genotype in results["genotypes"].items():
        click.echo(f"gamma {gamma}: normal {[tuple(p) for p in genotype['normal']]}")
        click.echo(f"{'':>{len(gamma) + 8}}reduce {[tuple(p) for p in genotype['reduce']]}")


@click.command()
@click.argument("alphas_file", type=click.Path(dir_okay=False))
@click.option(
    "--gamma",
    type=_POSITIVE,
    default=1.0,
    show_default=True,
    help="Transferability gamma: Zeroise's weight is divided by it.",
)
@click.option("--discard-zeroise", is_flag=True, help="Never keep Zeroise (No Zeroise).")
@click.option(
    "--epoch",
    type=click.IntRange(min=0),
    default=None,
    help="Epoch of an alphas.json history (default: the last).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the genotype JSON here (default: print it).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also draw the cells into this PNG.",
)
def derive(
    alphas_file: str,
    gamma: float,
    discard_zeroise: bool,
    epoch: int | None,
    output: str | None,
    plot: str | None,
) -> None:
    """Derive a genotype from saved architecture parameters (paper eq. 4).

    ALPHAS_FILE is a search's alphas_final.json or alphas.json.

    \b
    Examples:
      larq_bnas derive runs/search/alphas_final.json --gamma 3 -o imagenet_cell.json
      larq_bnas derive runs/search/alphas.json --epoch 1 --discard-zeroise
    """
    from larq_bnas.search import derive_from_file

    genotype = derive_from_file(alphas_file, gamma, discard_zeroise, epoch)
    if plot:
        from larq_bnas.search.plots import plot_genotype

        plot_genotype(genotype, plot)
    if output:
        genotype.save(output)
        click.echo(f"gamma {gamma:g}: {genotype.name} -> {output}")
    else:
        echo_json(genotype.to_dict())
