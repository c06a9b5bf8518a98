"""`larq_bnas search` (BNAS cell search) and `larq_bnas derive` (genotype from alphas)."""

from __future__ import annotations

import click

from larq_bnas._digits import DIGITS
from larq_bnas.cli._common import (
    CELLS,
    CHANNELS,
    COUNT,
    data_dir_option,
    dataset_option,
    echo_json,
    file_option,
    output_option,
    resume_option,
    seed_option,
    xla_option,
)
from larq_bnas.search.scales import SEARCH_SCALES

_POSITIVE = click.FloatRange(min=0, min_open=True)


class _Gamma(click.ParamType):
    """A transferability gamma: a number > 0 (the error names it and what is valid)."""

    name = "gamma"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            gamma = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            self.fail(f"gamma {value!r} is not a number; gamma must be a number > 0", param, ctx)
        if not gamma > 0:
            self.fail(
                f"gamma {value} is not valid: gamma (Zeroise's weight is divided by it) must "
                "be > 0, e.g. 1 (CIFAR cell) or 3 (ImageNet cell)",
                param,
                ctx,
            )
        return gamma


@click.command()
@click.option(
    "--scale",
    type=click.Choice(list(SEARCH_SCALES)),
    default="toy",
    show_default=True,
    help="Preset: toy (digits, 5 cells, C 8, batch 16, 6 epochs, arch lr 5e-2, no alpha "
    "decay: minutes, moves the alphas) or paper (cifar10, 8 cells, C 16, batch 64, 50 "
    "epochs, arch lr 3e-4, alpha decay 1e-3: the paper's settings). Options given "
    "explicitly override the preset.",
)
@dataset_option(
    "digits (embedded), a tfds name (cifar10, ...) or folder:PATH [preset].", default=None
)
@click.option(
    "--epochs",
    type=COUNT,
    default=None,
    help="Search epochs (the cosine schedule and tau scale with them) [preset].",
)
@click.option(
    "--cells",
    type=CELLS,
    default=None,
    help="Cells of the supernet (reductions at cells//3 and 2*cells//3) [preset].",
)
@click.option(
    "--channels", type=CHANNELS, default=None, help="Initial channels C of the supernet [preset]."
)
@click.option(
    "--batch-size",
    type=COUNT,
    default=None,
    help="Images per batch of each half (weights / architecture) [preset].",
)
@click.option(
    "--arch-lr",
    type=_POSITIVE,
    default=None,
    help="Adam learning rate of the architecture parameters [preset; paper 3e-4].",
)
@click.option(
    "--arch-weight-decay",
    type=click.FloatRange(min=0),
    default=None,
    help="L2 on the architecture parameters [preset; paper 1e-3].",
)
@click.option(
    "--input-size",
    type=click.IntRange(min=4),
    default=None,
    help=f"Square input size (default: {DIGITS.input_size} for digits, else 32).",
)
@click.option(
    "--gamma",
    "gammas",
    type=_Gamma(),
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
    "--tau",
    "--diversity-tau",
    "diversity_tau",
    type=_POSITIVE,
    default=None,
    help="Diversity regularizer decay in epochs (default: epochs * 7.7 / 50, the paper's "
    "7.7 of 50 epochs scaled to the search).",
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
@output_option("Output directory (genotypes, alphas, pictures, checkpoints).")
@resume_option("Continue the search found in --output.")
@click.option(
    "--steps-per-epoch",
    type=COUNT,
    default=None,
    help="Cap the steps of an epoch (default: one pass over a half).",
)
@data_dir_option()
@seed_option()
@xla_option("search", "slower on CPU, see the docs")
def search(
    scale: str,
    dataset: str | None,
    epochs: int | None,
    cells: int | None,
    channels: int | None,
    batch_size: int | None,
    arch_lr: float | None,
    arch_weight_decay: float | None,
    input_size: int | None,
    gammas: tuple[float, ...],
    diversity_lambda: float,
    diversity_tau: float | None,
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

    Prints, per gamma and cell type, how decisive the search was: the chosen ops' mean
    softmax weight (uniform 1/7), the entropy, and a warning when the margins are within
    the initialisation noise.

    \b
    Examples:
      larq_bnas search -o runs/search                       # toy: digits, minutes
      larq_bnas search --scale paper --data-dir DIR -o runs/cifar
      larq_bnas search --epochs 2 --tau 7.7 --diversity-lambda 0 -o runs/nodiv
      larq_bnas train runs/search/genotype_gamma1.json --cells 8 --channels 16 -o runs/t
    """
    from larq_bnas.search import run_search
    from larq_bnas.search.derive import format_decisiveness

    preset = SEARCH_SCALES[scale]
    results = run_search(
        output,
        dataset=dataset if dataset is not None else preset["dataset"],
        epochs=epochs if epochs is not None else preset["epochs"],
        cells=cells if cells is not None else preset["cells"],
        channels=channels if channels is not None else preset["channels"],
        batch_size=batch_size if batch_size is not None else preset["batch_size"],
        arch_learning_rate=arch_lr if arch_lr is not None else preset["arch_learning_rate"],
        arch_weight_decay=(
            arch_weight_decay if arch_weight_decay is not None else preset["arch_weight_decay"]
        ),
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
    for report in results["decisiveness"].values():
        for line in format_decisiveness(report):
            click.echo(line, err=line.startswith("WARNING"))


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
@output_option("Write the genotype JSON here (default: print it).", file=True, required=False)
@file_option("--plot", help="Also draw the cells into this PNG.")
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
    from larq_bnas.search import derive_from_file, load_alphas
    from larq_bnas.search.derive import decisiveness

    genotype = derive_from_file(alphas_file, gamma, discard_zeroise, epoch)
    alphas = load_alphas(alphas_file, epoch)
    report = decisiveness(
        alphas["alpha_normal"], alphas["alpha_reduce"], gamma, alphas["layer_set"], discard_zeroise
    )
    click.echo(
        f"chosen_weight_mean normal {report['normal']['chosen_weight_mean']:.3f}, reduce "
        f"{report['reduce']['chosen_weight_mean']:.3f} (uniform {report['uniform_weight']:.3f})",
        err=True,
    )
    if report["warning"]:
        click.echo(f"WARNING: {report['warning']}", err=True)
    if plot:
        from larq_bnas.search.plots import plot_genotype

        plot_genotype(genotype, plot)
    if output:
        genotype.save(output)
        click.echo(f"gamma {gamma:g}: {genotype.name} -> {output}")
    else:
        echo_json(genotype.to_dict())
