"""`larq_bnas import-weights`: a BNAS authors' PyTorch checkpoint as a Keras model file."""

from __future__ import annotations

import click

from larq_bnas.cli._common import output_option, size_options


@click.command("import-weights")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option(
    "--model",
    "model",
    default="bnas-d",
    show_default=True,
    help="Zoo model: bnas-a (the CIFAR network) or bnas-d/e/f/g, bnas-ref-f/g (the "
    "ImageNet network); the reference's config names (ref:bnas-h, ...) work too.",
)
@size_options(
    cells="Cells (default: from the checkpoint).",
    channels="Initial channels C (default: from the checkpoint).",
    num_classes="Classes (default: from the checkpoint).",
    input_size="Square input size (default: 32 CIFAR, 224 ImageNet).",
)
@output_option("Keras model file to write (.h5).", file=True, short_first=True)
@click.option("--quiet", is_flag=True, help="Print only the summary, not every tensor.")
def import_weights(
    checkpoint: str,
    model: str,
    cells: int | None,
    channels: int | None,
    num_classes: int | None,
    input_size: int | None,
    output: str,
    quiet: bool,
) -> None:
    """Load CHECKPOINT, written by the BNAS authors' PyTorch code (torch.save, legacy or
    zip format), into the zoo network and save a complete Keras model file.

    The model computes what the reference's test.py / test_imagenet.py compute (BinOp's
    binarization, zero padding); it takes the reference's normalized input
    (larq_bnas.zoo.preprocess_input). Nothing in the file is executed: only tensors,
    OrderedDict and plain containers are accepted. Errors exit with code 2 and leave
    nothing at OUTPUT.

    \b
    Examples:
      larq_bnas import-weights bnas_d.pth.tar --model bnas-d -o bnas_d.h5
      larq_bnas import-weights bnas_a.pth.tar --model bnas-a -o bnas_a.h5
      larq_bnas import-weights bnas_h.pth.tar --model ref:bnas-h -o bnas_g.h5
    """
    from larq_bnas._io import atomic_path
    from larq_bnas.zoo.published import import_checkpoint

    keras_model, report = import_checkpoint(
        checkpoint,
        model,
        cells=cells,
        channels=channels,
        num_classes=num_classes,
        input_size=input_size,
    )
    lines = report.lines()
    if quiet:
        lines = [line for line in lines if not line.startswith("  ") or "kept float" in line]
    for line in lines:
        click.echo(line)
    with atomic_path(output) as tmp:
        keras_model.save(str(tmp))
    click.echo(f"wrote {output}")
