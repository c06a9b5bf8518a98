"""Batch-1 latency on this machine, one table: native kernels (AVX-512, AVX2 forced),
LCE's best kernel and the float model, at 1 and 2 threads.

For BNAS-A (CIFAR, 32x32), BNAS-D (ImageNet, 224x224), our MeliusNet22 and larq-zoo's
QuickNet (both 224x224; larq-zoo's MeliusNet22 with ``--models +lqz:MeliusNet22``), with
random weights and random BatchNorm statistics (as a trained model has; see
``larq_bnas.converters.randomize_batchnorm``):

1. convert to an LCE flatbuffer and to TensorFlow's float TFLite, once: the files are
   cached in ``--out`` (an ImageNet model takes one to two minutes) and reused by the
   next run (``--reconvert`` to redo them, ``--convert-only`` to only make them);
2. per thread count (``--threads``, default 1 and 2): check every kernel choice against
   LCE's reference kernel on 4 inputs (``larq_bnas.runtime.compare_outputs``: "k/n"
   inputs match; a choice agrees when at least half do), then time it and the float
   file (tf.lite's interpreter with XNNPACK), ``--warmup`` untimed runs then
   ``--repeats`` timed runs (median), each block on a fresh interpreter, in two rounds
   (all choices, then in reverse order);
3. print one markdown table: each kernel's median with its agreement beside it, the
   best LCE kernel that agrees, native AVX2 / float at 2 threads (target: at most 0.6),
   and 2-thread / 1-thread for the native kernels (below 1: the second thread helps).

The machine is shared, so timings are noisy: the script prints ``uptime`` before and
after, and writes everything to ``--out/latency.json`` after each model. With the files
cached, the default run (4 models, 1 and 2 threads, 10 repeats) takes a few minutes;
converting them first adds about 8 minutes here.

    python benchmarks/latency.py                       # the table for the README
    python benchmarks/latency.py --models bnas-a --repeats 3
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


#: row labels of the table
LABELS = {
    "bnas-a": "BNAS-A (32 px)",
    "bnas-d": "BNAS-D",
    "meliusnet22": "MeliusNet22",
    "lqz:QuickNet": "QuickNet (larq-zoo)",
    "lqz:MeliusNet22": "MeliusNet22 (larq-zoo)",
}


def _ms(v: float | None) -> str:
    return f"{v:.2f}" if v is not None else "-"


def _cell(entry: dict[str, Any] | None) -> str:
    """A kernel's median and its agreement with the reference kernel ("k/n" inputs)."""
    if not entry:
        return "-"
    if "median_ms" not in entry:
        return "fails"
    mark = "" if entry.get("agrees", True) else " DISAGREES"
    return f"{entry['median_ms']:.2f} ({entry.get('matching', '?')}{mark})"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def table(results: list[dict[str, Any]], threads: list[int]) -> list[str]:
    """One markdown table: a row per model, each kernel at each thread count."""
    by = {(r["model"], r["threads"]): r for r in results}
    models = list(dict.fromkeys(r["model"] for r in results))
    lo, hi = min(threads), max(threads)
    header = ["model"]
    for label in ("native AVX-512", "native AVX2", "best LCE kernel", "float"):
        header += [f"{label}, {t} thr" for t in threads]
    header += [f"AVX2 / float, {hi} thr"]
    if hi != lo:
        header += [f"{hi} thr / {lo} thr, AVX-512", f"{hi} thr / {lo} thr, AVX2"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in models:
        row = [LABELS.get(model, model)]
        for key in ("native", "native-avx2"):
            row += [
                _cell(by[(model, t)]["kernels"].get(key)) if (model, t) in by else "-"
                for t in threads
            ]
        for t in threads:
            r = by.get((model, t))
            best = r and r["best_lce_kernel"]
            row.append(f"{_cell(r['kernels'][best])} {best}" if r and best else "none agrees")
        row += [_ms(by[(model, t)]["float_ms"]) if (model, t) in by else "-" for t in threads]

        top, low = by.get((model, hi), {}), by.get((model, lo), {})
        row.append(_ratio(top.get("native_avx2_ms"), top.get("float_ms")))
        if hi != lo:
            row.append(_ratio(top.get("native_ms"), low.get("native_ms")))
            row.append(_ratio(top.get("native_avx2_ms"), low.get("native_avx2_ms")))
        lines.append("| " + " | ".join(row) + " |")
    return lines


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
        default=[1, 2],
        help="thread counts to time (default: 1 2)",
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
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
    print(
        f"\nbatch 1, median of {args.repeats} runs after {args.warmup} warm-up runs, in ms; "
        "(k/n): inputs of n on which the kernel matches LCE's reference kernel\n"
    )
    print("\n".join(table(results, sorted(set(args.threads)))))
    for r in results:
        if r["disagreeing"]:
            print(
                f"{r['model']} at {r['threads']} threads: disagree with the reference kernel: "
                + ", ".join(r["disagreeing"])
            )
    print(f"\n{command}\n{after}\n(shared machine: timings are noisy; see {out / 'latency.json'})")
    return results


if __name__ == "__main__":
    main()
