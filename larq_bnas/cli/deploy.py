"""`larq_bnas convert`, `larq_bnas inspect` and `larq_bnas benchmark`."""

from __future__ import annotations

import sys

import click

from larq_bnas.cli._common import (
    COUNT,
    ModelOptions,
    check_flatbuffer,
    echo_json,
    file_option,
    json_option,
    load_cli_model,
    model_options,
    output_option,
    threads_option,
    weights_option,
)


@click.command()
@click.argument("model")
@output_option("The LCE flatbuffer to write (.tflite).", file=True, short_first=True)
@weights_option(
    "Weights to load into MODEL first: a .h5 file, a TF checkpoint, or the "
    "name of published weights."
)
@click.option(
    "--target",
    type=click.Choice(["arm", "xcore"]),
    default="arm",
    show_default=True,
    help="arm: phones, Raspberry Pi (and x86 for testing); xcore: XMOS xcore.ai.",
)
@click.option(
    "--int8-io",
    is_flag=True,
    help="int8 model input and output (needs an int8-quantized model or --default-int8-range).",
)
@click.option(
    "--default-int8-range",
    nargs=2,
    type=float,
    default=None,
    metavar="MIN MAX",
    help="Range for tensors without int8 statistics (LCE's dummy quantization, "
    "for latency tests only).",
)
@file_option(
    "--float", "float_output", help="Also write a plain float TFLite of the model, for comparison."
)
@click.option(
    "--verify",
    "verify_n",
    type=click.IntRange(min=0),
    default=0,
    help="Compare N random inputs through Keras and each LCE kernel (reference, default, "
    "indirect_bgemm, native); exit 1 if the reference kernel disagrees with Keras.",
)
@file_option("--report", "report_path", help="Write the acceleration report as JSON.")
@click.option(
    "--random-batchnorm",
    is_flag=True,
    help="Give the BatchNorms random statistics before converting (latency tests "
    "of untrained models, whose identical BatchNorms TensorFlow merges).",
)
@click.option("--strict", is_flag=True, help="Exit with code 1 if any binary layer stayed float.")
@model_options
def convert(
    model: str,
    output: str,
    weights: str | None,
    target: str,
    int8_io: bool,
    default_int8_range: tuple[float, float] | None,
    float_output: str | None,
    verify_n: int,
    report_path: str | None,
    random_batchnorm: bool,
    strict: bool,
    model_opts: ModelOptions,
) -> None:
    """Convert MODEL to an LCE flatbuffer and report what became binary ops.

    MODEL is a zoo name, a genotype JSON file (with --cells/--channels), a saved Keras
    model, or lqz:NAME for a larq-zoo model.

    The report lists the op census, how many binary convs became LceBconv2d and which
    did not and why, the share of BOPs accelerated, and the file size against the
    predicted one. Anything binary that stayed float is also printed to stderr as a
    WARNING line.

    \b
    Examples:
      larq_bnas convert bnas-a -o bnas_a.tflite --verify 10 --report bnas_a.json
      larq_bnas convert runs/mini/model.h5 -o mini.tflite --float mini_float.tflite
      larq_bnas convert lqz:QuickNet -o quicknet.tflite
      larq_bnas convert bnas-d --input-size 64 --cells 4 -o d.tflite --random-batchnorm
    """
    import os

    from larq_bnas import converters
    from larq_bnas._io import check_writable, write_json

    for path in (output, float_output, report_path):  # before minutes of conversion
        if path:
            check_writable(path)
    looks_like_path = weights is not None and (
        os.sep in weights or weights.endswith((".h5", ".keras", ".ckpt", ".index"))
    )
    if (
        weights is not None
        and looks_like_path
        and not (os.path.exists(weights) or os.path.exists(weights + ".index"))
    ):
        raise FileNotFoundError(f"Weights file {weights!r} does not exist")
    keras_model = load_cli_model(model, weights=weights, **model_opts.kwargs())
    if random_batchnorm:
        converters.randomize_batchnorm(keras_model)
    flatbuffer = converters.convert(
        keras_model, target=target, int8_io=int8_io, default_int8_range=default_int8_range
    )
    converters.save(flatbuffer, output)
    report = converters.acceleration_report(keras_model, converters.read(flatbuffer), target=target)
    if verify_n:
        report.update(converters.verify(keras_model, flatbuffer, n=verify_n))
    if float_output:
        converters.save(converters.convert_float(keras_model), float_output)
    if report_path:
        write_json(report_path, report)
    click.echo(converters.format_report(report))
    if verify_n:
        for name, entry in report["kernels"].items():
            if "error" in entry:
                click.echo(f"  kernel {name:<16} could not run: {entry['error']}")
                continue
            top1 = entry.get("top1_agreement")
            click.echo(
                f"  kernel {name:<16} max abs diff {entry['max_abs_diff']:.3g}"
                + (f", top-1 agreement {top1:.2f}" if top1 is not None else "")
                + ("" if entry["agrees"] else "  <- DISAGREES with Keras")
            )
        click.echo(f"verdict               {report['verdict']}")
    click.echo(f"wrote {output}" + (f" and {float_output}" if float_output else ""))
    for warning in report["warnings"]:
        click.secho(f"WARNING: binary layer not accelerated: {warning}", fg="red", err=True)
    if verify_n and report["flatbuffer_ok"] is False:
        click.secho(f"Error: verification failed: {report['verdict']}", fg="red", err=True)
        sys.exit(1)
    if strict and report["not_accelerated"]:
        sys.exit(1)


def _is_tflite_file(path: str) -> bool:
    """A .tflite file, or any existing file that starts like a TFLite flatbuffer."""
    import os

    if not os.path.isfile(path):
        return False
    if path.endswith(".tflite"):
        return True
    with open(path, "rb") as f:
        return f.read(8)[4:8] == b"TFL3"


@click.command()
@click.argument("flatbuffer", type=click.Path())
@json_option("census")
def inspect(flatbuffer: str, as_json: bool) -> None:
    """Op census, tensor shapes and sizes of a .tflite file (no Keras model needed).

    Lists every operator with its count (LCE's custom ops included), the input and
    output tensors, how many bytes are constants and how many graph, and each
    LceBconv2d with its channels, kernel, strides, dilation, padding and whether it
    writes bitpacked output.

    \b
    Example:
      larq_bnas inspect bnas_a.tflite
    """
    from larq_bnas.converters import read

    check_flatbuffer(flatbuffer)
    info = read(flatbuffer)
    if as_json:
        echo_json(info.to_dict())
    else:
        click.echo(info.table())


@click.command()
@click.argument("flatbuffer", type=click.Path())
@threads_option()
@click.option("--repeats", type=COUNT, default=20, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True)
@click.option(
    "--kernel",
    "kernels",
    multiple=True,
    help="Kernel choice(s) to time (default: all). Repeatable.",
)
@click.option(
    "--compare-float",
    default=None,
    metavar="FLOAT.tflite|MODEL",
    help="Also time the float TFLite of the same model: a .tflite file, or a "
    "MODEL reference to convert with TensorFlow's converter first (model "
    "options below apply to it).",
)
@json_option("timings")
@model_options
def benchmark(
    flatbuffer: str,
    threads: int,
    repeats: int,
    warmup: int,
    kernels: tuple[str, ...],
    compare_float: str | None,
    as_json: bool,
    model_opts: ModelOptions,
) -> None:
    """Time batch-1 inference of an LCE flatbuffer with each kernel choice.

    Each kernel choice (native: larq_bnas's own kernels for LCE's ops, compiled for
    this CPU; LCE's default, indirect_bgemm, reference, xnnpack and
    indirect_bgemm+xnnpack) runs WARMUP times, then REPEATS timed runs; the median,
    p10 and p90 are shown. Each choice's outputs are first compared with LCE's
    reference kernel ("agrees" / "DISAGREES" beside its time); only a choice that
    agrees can be the fastest, and that one is remembered for this file (the
    library's Predictor uses it).

    \b
    Examples:
      larq_bnas benchmark bnas_a.tflite --threads 2 --compare-float bnas_a_float.tflite
      larq_bnas benchmark quicknet.tflite --compare-float lqz:QuickNet --json
      larq_bnas benchmark bnas_a.tflite --kernel native --kernel indirect_bgemm
    """
    from larq_bnas.runtime import KERNELS
    from larq_bnas.runtime import benchmark as run_benchmark

    for name in kernels:
        if name not in KERNELS:
            raise click.BadParameter(
                f"{name!r}; valid kernels are: {', '.join(KERNELS)}", param_hint="--kernel"
            )
    check_flatbuffer(flatbuffer)
    float_source: bytes | str | None = compare_float
    if compare_float is not None and not _is_tflite_file(compare_float):
        if compare_float.endswith(".tflite"):
            raise FileNotFoundError(f"Float flatbuffer {compare_float!r} does not exist")
        from larq_bnas.converters import convert_float

        float_source = convert_float(load_cli_model(compare_float, **model_opts.kwargs()))
    result = run_benchmark(
        flatbuffer,
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        kernels=list(kernels) or None,
        float_source=float_source,
    )
    if as_json:
        echo_json(result)
        return
    click.echo(f"batch 1, {threads} threads, median of {repeats} after {warmup} warm-up runs")
    if "check_error" in result:
        click.echo(f"  agreement not checked: {result['check_error']}")
    for name, timing in result["kernels"].items():
        if "median_ms" in timing:
            mark = "  <- fastest" if name == result["best_kernel"] else ""
            if "agrees" in timing:
                verdict = "agrees" if timing["agrees"] else "DISAGREES"
                check = f" {verdict} with reference (max diff {timing['max_abs_diff']:.2g})"
            else:
                check = ""
            click.echo(
                f"  LCE {name:<24} {timing['median_ms']:8.2f} ms "
                f"(p10 {timing['p10_ms']:.2f}, p90 {timing['p90_ms']:.2f}){check}{mark}"
            )
        else:
            click.echo(f"  LCE {name:<24} failed: {timing['error']}")
    if result["disagreeing"]:
        click.echo(
            "  not eligible as fastest (outputs differ from LCE's reference kernel): "
            + ", ".join(result["disagreeing"])
        )
    if result.get("cache_note"):
        click.echo(f"  fastest choice not remembered: {result['cache_note']}")
    if "float" in result and result["best_kernel"] is not None:
        f = result["float"]
        click.echo(
            f"  float TFLite (tf.lite)       {f['median_ms']:8.2f} ms "
            f"(p10 {f['p10_ms']:.2f}, p90 {f['p90_ms']:.2f})"
        )
        click.echo(
            f"binary ({result['best_kernel']}) / float latency: "
            f"{result['binary_to_float_ratio']:.2f}"
        )
    sys.stdout.flush()
