"""Batch-1 latency on this machine: LCE (fastest kernel) against the float TFLite model.

For BNAS-A (CIFAR, 32x32), BNAS-D (ImageNet, 224x224), our MeliusNet22 and larq-zoo's
QuickNet (both 224x224; larq-zoo's MeliusNet22 with ``--models +lqz:MeliusNet22``), with
random weights and random BatchNorm statistics (as a trained model has; see
``larq_bnas.converters.randomize_batchnorm``):

1. convert to an LCE flatbuffer and to TensorFlow's float TFLite (cached in ``--out``:
   a conversion of an ImageNet model takes about a minute),
2. time every kernel choice (native, LCE's default, indirect_bgemm, reference, xnnpack,
   indirect_bgemm+xnnpack) and the float file in tf.lite's interpreter, ``--threads``
   threads, ``--warmup`` untimed runs then ``--repeats`` timed runs (median, p10, p90),
   each on a fresh interpreter,
3. print binary (fastest kernel) / float latency. Target: at most 0.6 on this x86
   machine (lce.md: QuickNet 34 ms with the indirect BGEMM kernel against 63 ms float).
   Measured here (2 threads): 0.14-0.40 with the native kernels, 0.83-1.35 with LCE's
   best kernel (README, "Fast binary inference on x86").

The machine is shared, so timings are noisy: the script prints ``uptime`` before and
after, and writes everything to ``--out/latency.json`` after each model.

    python benchmarks/latency.py                       # the four models, 2 threads
    python benchmarks/latency.py --models bnas-a lqz:QuickNet --repeats 50
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: name -> (model reference, options for load_model)
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "bnas-a": ("bnas-a", {}),
    "bnas-d": ("bnas-d", {}),
    "meliusnet22": ("meliusnet22", {}),
    "lqz:QuickNet": ("lqz:QuickNet", {}),
    "lqz:MeliusNet22": ("lqz:MeliusNet22", {}),
}
DEFAULT_MODELS = ("bnas-a", "bnas-d", "meliusnet22", "lqz:QuickNet")
#: native (best ISA here: AVX-512), native forced to AVX2, and LCE's choices (the reference
#: kernel runs in the agreement check only)
TABLE_KERNELS = (
    "native",
    "native-avx2",
    "default",
    "indirect_bgemm",
    "indirect_bgemm+xnnpack",
    "xnnpack",
)
TARGET_RATIO = 0.6


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def convert_cached(name: str, out: Path, reconvert: bool) -> dict[str, Any]:
    """The model's LCE and float files in ``out`` (converted now if missing)."""
    from larq_bnas import converters

    stem = name.replace(":", "_")
    lce_path, float_path = out / f"{stem}.tflite", out / f"{stem}_float.tflite"
    info: dict[str, Any] = {"lce": lce_path, "float": float_path, "convert_s": None}
    if lce_path.exists() and float_path.exists() and not reconvert:
        return info
    from larq_bnas.zoo.references import load_model

    ref, options = MODELS.get(name, (name, {}))
    model = converters.randomize_batchnorm(load_model(ref, **options))
    start = time.perf_counter()
    converters.save(converters.convert(model), lce_path)
    info["convert_s"] = time.perf_counter() - start
    converters.save(converters.convert_float(model), float_path)
    report = converters.acceleration_report(model, converters.read(lce_path))
    info["acceleration"] = {
        k: report[k]
        for k in (
            "binary_convs",
            "accelerated_convs",
            "accelerated_bops_share",
            "size_bytes",
            "predicted_size_bytes",
            "size_ratio",
        )
    }
    return info


def measure(
    name: str, out: Path, threads: int, warmup: int, repeats: int, reconvert: bool
) -> dict[str, Any]:
    from larq_bnas import converters, runtime

    files = convert_cached(name, out, reconvert)
    timing = runtime.benchmark(
        files["lce"],
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        float_source=files["float"],
        kernels=list(TABLE_KERNELS),
        remember=False,
    )
    lce = {
        k: v
        for k, v in timing["kernels"].items()
        if not k.startswith("native") and v.get("agrees") and "median_ms" in v
    }
    best_lce = min(lce, key=lambda k: lce[k]["median_ms"]) if lce else None
    info = converters.read(files["lce"])
    return {
        "model": name,
        "lce_file": str(files["lce"]),
        "lce_bytes": info.size_bytes,
        "float_bytes": files["float"].stat().st_size,
        "bconv_ops": info.op_counts.get("LceBconv2d", 0),
        "convert_s": files["convert_s"],
        **({"acceleration": files["acceleration"]} if "acceleration" in files else {}),
        "kernels": timing["kernels"],
        "best_kernel": timing["best_kernel"],
        "lce_ms": timing["best_median_ms"],
        "float_ms": timing["float"]["median_ms"],
        "float": timing["float"],
        "ratio": timing.get("binary_to_float_ratio"),
        "best_lce_kernel": best_lce,
        "best_lce_ms": lce[best_lce]["median_ms"] if best_lce else None,
        "native_ms": timing["kernels"].get("native", {}).get("median_ms"),
        "native_avx2_ms": timing["kernels"].get("native-avx2", {}).get("median_ms"),
        "disagreeing": timing["disagreeing"],
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        help="model references (zoo names, lqz:NAME); '+NAME' adds to the default list",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[2],
        help="thread counts to time (e.g. --threads 1 2)",
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="out/latency", help="cache and results directory")
    parser.add_argument("--reconvert", action="store_true", help="ignore cached files")
    parser.add_argument("--convert-only", action="store_true", help="only convert (cache)")
    args = parser.parse_args(argv)
    models = [m for m in args.models if not m.startswith("+")]
    extra = [m[1:] for m in args.models if m.startswith("+")]
    models = (models or list(DEFAULT_MODELS)) + extra

    import larq_bnas  # noqa: F401  (legacy Keras before TensorFlow)
    from larq_bnas._io import write_json

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/latency.py " + " ".join(argv if argv is not None else sys.argv[1:])
    before = uptime()
    print(f"{command}\nmachine {platform.machine()}, {os.cpu_count()} CPUs; {before}", flush=True)
    results: list[dict[str, Any]] = []
    if args.convert_only:
        for name in models:
            convert_cached(name, out, args.reconvert)
            print(f"[{name}] converted", flush=True)
        return results
    for name in models:
        for threads in args.threads:
            print(
                f"[{name}] converting (cached in {out}) and timing, {threads} threads ...",
                flush=True,
            )
            result = measure(name, out, threads, args.warmup, args.repeats, args.reconvert)
            result["threads"] = threads
            results.append(result)
            kernels = ", ".join(
                f"{k} {v['median_ms']:.1f}" if "median_ms" in v else f"{k} failed"
                for k, v in result["kernels"].items()
            )
            print(
                f"[{name}] LCE kernels (ms): {kernels}; float {result['float_ms']:.1f} ms",
                flush=True,
            )
        write_json(
            out / "latency.json",
            {
                "command": command,
                "uptime_before": before,
                "threads": args.threads,
                "repeats": args.repeats,
                "warmup": args.warmup,
                "results": results,
            },
        )
    after = uptime()
    write_json(
        out / "latency.json",
        {
            "command": command,
            "uptime_before": before,
            "uptime_after": after,
            "threads": args.threads,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "results": results,
        },
    )
    print(f"\nbatch 1, median of {args.repeats} runs after {args.warmup} warm-up runs (ms)")
    header = (
        f"{'model':<14} {'thr':>3} {'native AVX-512':>14} {'native AVX2':>11} "
        f"{'best LCE (kernel)':>30} {'float':>8} {'AVX2/float':>10} {'512/float':>9}"
    )
    print(header)
    print("-" * len(header))

    def ms(v: float | None) -> str:
        return f"{v:.2f}" if v is not None else "-"

    for r in results:
        lce = f"{ms(r['best_lce_ms'])} ({r['best_lce_kernel'] or 'none agrees'})"
        avx2 = r["native_avx2_ms"] / r["float_ms"] if r["native_avx2_ms"] else None
        avx512 = r["native_ms"] / r["float_ms"] if r["native_ms"] else None
        print(
            f"{r['model']:<14} {r['threads']:>3} {ms(r['native_ms']):>14} "
            f"{ms(r['native_avx2_ms']):>11} {lce:>30} {ms(r['float_ms']):>8} "
            f"{ms(avx2):>10} {ms(avx512):>9}"
        )
        if r["disagreeing"]:
            print(f"{'':<19}disagree with the reference kernel: {', '.join(r['disagreeing'])}")
    print(f"{after}\n(shared machine: timings are noisy; see {out / 'latency.json'})")
    return results


if __name__ == "__main__":
    main()
