"""Convert a larq-zoo model to an LCE flatbuffer, check it and time it.

    python examples/convert_larq_zoo.py QuickNet --out lqz_out
    python examples/convert_larq_zoo.py MeliusNet22 --out lqz_out --verify 5 --repeats 10
    python examples/convert_larq_zoo.py QuickNetSmall --tiny --out /tmp/lqz_tiny

Writes ``NAME.tflite`` (LCE), ``NAME_float.tflite`` (TensorFlow's float TFLite of the
same Keras model) and ``NAME_report.json`` (acceleration report, verification and
latencies) to ``--out``, and prints the human-readable report.

Without ``--weights`` the model has random weights (larq-zoo's pretrained ones need a
download); its BatchNorms then get random statistics, as a trained model's would, so the
conversion is representative (see ``larq_bnas.converters.randomize_batchnorm``).
``--tiny`` converts at 32x32 with 10 classes (seconds instead of a minute): the mode the
tests run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import larq_bnas  # noqa: F401  (selects legacy Keras before TensorFlow loads)
from larq_bnas import converters, runtime
from larq_bnas._io import write_json
from larq_bnas.zoo.references import load_model


def run(
    name: str,
    out: str | Path,
    *,
    input_size: int = 224,
    num_classes: int = 1000,
    weights: str | None = None,
    verify_n: int = 5,
    threads: int = 2,
    repeats: int = 10,
    target: str = "arm",
) -> dict[str, Any]:
    """Convert ``lqz:name``; write the two flatbuffers and the report; return the report."""
    out = Path(out)
    model = load_model(
        f"lqz:{name}",
        input_shape=(input_size, input_size, 3),
        num_classes=num_classes,
        weights=weights,
    )
    if weights is None:
        converters.randomize_batchnorm(model)
    lce_path = converters.save(converters.convert(model, target=target), out / f"{name}.tflite")
    float_path = converters.save(converters.convert_float(model), out / f"{name}_float.tflite")
    report = converters.acceleration_report(model, converters.read(lce_path), target=target)
    if verify_n:
        report.update(converters.verify(model, lce_path.read_bytes(), n=verify_n, threads=threads))
    if repeats:
        timing = runtime.benchmark(
            lce_path,
            threads=threads,
            warmup=2,
            repeats=repeats,
            kernels=["default", "indirect_bgemm"],
            float_source=float_path,
        )
        report["latency"] = {
            "threads": threads,
            "best_kernel": timing["best_kernel"],
            "lce_ms": timing["best_median_ms"],
            "float_ms": timing["float"]["median_ms"],
            "binary_to_float_ratio": timing["binary_to_float_ratio"],
            "kernels": {k: v.get("median_ms") for k, v in timing["kernels"].items()},
        }
    report["model"] = f"lqz:{name}"
    report["input_size"] = input_size
    write_json(out / f"{name}_report.json", report)
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a larq-zoo model, e.g. QuickNet, MeliusNet22, BiRealNet")
    parser.add_argument("--out", default="lqz_out", help="output directory")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument(
        "--weights", default=None, help="larq-zoo weights name (e.g. imagenet; downloads) or a file"
    )
    parser.add_argument("--target", choices=converters.TARGETS, default="arm")
    parser.add_argument("--verify", type=int, default=5, help="random inputs to compare")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (0: no timing)")
    parser.add_argument(
        "--tiny", action="store_true", help="32x32 input, 10 classes, 2 verify inputs, 3 timed runs"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.input_size, args.num_classes = 32, 10
        args.verify, args.repeats = min(args.verify, 2), min(args.repeats, 3)
    report = run(
        args.name,
        args.out,
        input_size=args.input_size,
        num_classes=args.num_classes,
        weights=args.weights,
        verify_n=args.verify,
        threads=args.threads,
        repeats=args.repeats,
        target=args.target,
    )
    print(converters.format_report(report))
    if "latency" in report:
        lat = report["latency"]
        print(
            f"latency               LCE ({lat['best_kernel']}) {lat['lce_ms']:.2f} ms, "
            f"float TFLite {lat['float_ms']:.2f} ms, ratio "
            f"{lat['binary_to_float_ratio']:.2f} ({lat['threads']} threads)"
        )
    for warning in report["warnings"]:
        print(f"WARNING: binary layer not accelerated: {warning}", file=sys.stderr)
    print(f"wrote {args.out}/{args.name}.tflite, {args.name}_float.tflite, {args.name}_report.json")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
