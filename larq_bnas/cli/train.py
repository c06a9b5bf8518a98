"""`larq_bnas train` and `larq_bnas evaluate`."""

from __future__ import annotations

import click

from larq_bnas._digits import DIGITS
from larq_bnas.cli._common import (
    COUNT,
    ModelOptions,
    data_dir_option,
    dataset_option,
    echo_json,
    json_option,
    model_options,
    output_option,
    resume_option,
    seed_option,
    trust_model_code,
    weights_option,
    xla_option,
)


@click.command()
@click.argument("model")
@dataset_option("digits (embedded), a tfds name (cifar10, imagenet2012, ...) or folder:PATH.")
@click.option(
    "--recipe",
    default=None,
    help="Training recipe: digits, bnas-cifar, bnas-imagenet, meliusnet-imagenet, "
    f"meliusnet-40, adam, radam, sgd (default: {DIGITS.recipe} on the digits, else "
    "bnas-cifar).",
)
@click.option(
    "--epochs",
    type=COUNT,
    default=None,
    help=f"Epochs (default: {DIGITS.epochs} on digits, else the recipe's).",
)
@click.option(
    "--batch-size",
    type=COUNT,
    default=None,
    help="Global batch size over all replicas (default: "
    f"{DIGITS.batch_size} on digits, else the recipe's).",
)
@output_option("Output directory (checkpoints, weights, history, curves, results).")
@resume_option(
    "Continue the run found in --output from its last committed epoch (the options "
    "that change results must be the recorded ones)."
)
@weights_option("Initial weights file.")
@data_dir_option()
@click.option(
    "--strategy",
    type=click.Choice(["auto", "none", "mirrored", "multiworker"]),
    default="auto",
    show_default=True,
    help="tf.distribute strategy; multiworker reads TF_CONFIG.",
)
@click.option(
    "--flip-stats",
    is_flag=True,
    help="Log binary-weight sign-flip percentiles per epoch (flips.json/.csv).",
)
@xla_option("train", "slower for these models on CPU")
@click.option(
    "--lean-memory/--no-lean-memory",
    default=True,
    show_default=True,
    help="Recompute binary ops in the backward pass: about half the memory.",
)
@seed_option()
@model_options
def train(
    model: str,
    dataset: str,
    recipe: str | None,
    epochs: int | None,
    batch_size: int | None,
    output: str,
    resume: bool,
    weights: str | None,
    data_dir: str | None,
    strategy: str,
    flip_stats: bool,
    xla: bool,
    lean_memory: bool,
    seed: int,
    model_opts: ModelOptions,
) -> None:
    """Train MODEL on a dataset with one of the papers' recipes.

    MODEL is a zoo name, a genotype JSON file (with --cells/--channels), a saved Keras
    model, or lqz:NAME. Writes checkpoints each epoch, best/final weights, history.json,
    train.log, curves.png and results.json into --output; --resume continues there.

    \b
    Examples:
      larq_bnas train bnas-mini --output runs/mini
      larq_bnas train search/genotype_gamma1.json --cells 8 --channels 16 -o runs/searched
      larq_bnas train bnas-a --dataset cifar10 --recipe bnas-cifar --epochs 600 -o runs/a
    """
    from larq_bnas.training import train as train_job

    model_opts.refuse_num_classes()
    results = train_job(
        model,
        output_dir=output,
        dataset=dataset,
        recipe=recipe,
        epochs=epochs,
        batch_size=batch_size,
        input_size=model_opts.input_size,
        weights=weights,
        resume=resume,
        data_dir=data_dir,
        options=model_opts.options(),
        strategy=strategy,
        flip_stats=flip_stats,
        jit_compile=xla,
        lean_memory=lean_memory,
        seed=seed,
        trust_model_code=trust_model_code(),
    )
    click.echo(
        f"test top-1 {results['test_top1']:.4f}  top-5 {results['test_top5']:.4f}  "
        f"({results['size_mib']:.2f} MiB, {results['ops'] / 1e6:.1f} M OPs) -> {output}"
    )


@click.command()
@click.argument("model")
@weights_option("Weights file to load.")
@dataset_option()
@click.option("--split", default=None, help="Split to score (default: test / validation).")
@click.option("--batch-size", type=COUNT, default=DIGITS.batch_size, show_default=True)
@data_dir_option(help=None)
@json_option("result")
@model_options
def evaluate(
    model: str,
    weights: str | None,
    dataset: str,
    split: str | None,
    batch_size: int,
    data_dir: str | None,
    as_json: bool,
    model_opts: ModelOptions,
) -> None:
    """Top-1 / top-5 accuracy of MODEL (with --weights) on a dataset.

    \b
    Examples:
      larq_bnas evaluate bnas-mini --weights runs/mini/best.weights.h5
      larq_bnas evaluate runs/mini/model.h5 --json
      larq_bnas evaluate bnas-d --weights bnas_d.pth.tar --dataset folder:ILSVRC2012/val

    With a BNAS authors' PyTorch checkpoint (.pth.tar) as --weights, MODEL is built as the
    reference computes it and --dataset folder:PATH|imagenet2012|cifar10 gets the
    reference's evaluation transforms (ImageNet: resize 256, centre crop 224).
    """
    from larq_bnas.training import evaluate as evaluate_job
    from larq_bnas.zoo.published import evaluate_checkpoint, is_torch_checkpoint

    model_opts.refuse_num_classes()
    job = evaluate_job
    if weights is not None and is_torch_checkpoint(weights):
        job = evaluate_checkpoint  # the reference's model and evaluation transforms
    result = job(
        model,
        dataset=dataset,
        split=split,
        weights=weights,
        input_size=model_opts.input_size,
        batch_size=batch_size,
        data_dir=data_dir,
        options=model_opts.options(),
        trust_model_code=trust_model_code(),
    )
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  "
            f"loss {result['loss']:.4f}  ({result['examples']} images)"
        )
