"""Convert every zoo model at its full size and check the acceleration report.

For each registered model (``larq_bnas.zoo.model_names()``; BNAS, MeliusNet and the
XNOR-Net baselines, whichever are registered), with random weights and random BatchNorm
statistics (as a trained model has):

- convert to an LCE flatbuffer (default options: target arm, float I/O),
- acceleration report: binary convs that became ``LceBconv2d`` (target: 100 %),
  accelerated BOPs share, file size against the predicted size (target: within 10 %),
- verification on ``--verify`` random inputs (target: max abs diff < 1e-3, or top-1
  agreement 100 % where sign ties make the difference larger).

A full ImageNet model takes about a minute to convert here, so results are written to
``--out/convert_zoo.json`` after every model and a rerun skips the models already done
(``--force`` redoes them).

    python benchmarks/convert_zoo.py                    # every zoo model
    python benchmarks/convert_zoo.py --models bnas-a meliusnet22 --verify 3
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Any


def check(name: str, verify_n: int, keep: Path | None) -> dict[str, Any]:
    from larq_bnas import converters
    from larq_bnas.zoo.registry import build

    model = converters.randomize_batchnorm(build(name))
    start = time.perf_counter()
    flatbuffer = converters.convert(model)
    seconds = time.perf_counter() - start
    if keep is not None:
        converters.save(flatbuffer, keep / f"{name}.tflite")
    report = converters.acceleration_report(model, converters.read(flatbuffer))
    report.update(converters.verify(model, flatbuffer, n=verify_n))
    ok = (
        report["accelerated_convs"] == report["binary_convs"]
        and not report["not_accelerated"]
        and (report["max_abs_diff"] < 1e-3 or report.get("top1_agreement") == 1.0)
        and abs(report["size_ratio"] - 1) <= 0.10
    )
    return {
        "model": name,
        "input_shape": list(model.input_shape[1:]),
        "convert_s": round(seconds, 1),
        "ok": ok,
        **{
            k: report[k]
            for k in (
                "binary_convs",
                "accelerated_convs",
                "removed_convs",
                "accelerated_bops_share",
                "not_accelerated",
                "size_bytes",
                "predicted_size_bytes",
                "size_ratio",
                "cost_report_size_bytes",
                "max_abs_diff",
                "mean_abs_diff",
                "top1_agreement",
                "kernel",
                "op_counts",
            )
            if k in report
        },
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="default: the whole zoo")
    parser.add_argument("--verify", type=int, default=3, help="random inputs to compare")
    parser.add_argument("--out", default="out/convert_zoo")
    parser.add_argument("--keep", action="store_true", help="keep the .tflite files")
    parser.add_argument("--force", action="store_true", help="redo models already done")
    args = parser.parse_args(argv)

    import larq_bnas  # noqa: F401
    from larq_bnas._io import read_json, write_json
    from larq_bnas.zoo import model_names

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "convert_zoo.json"
    done = {
        r["model"]: r
        for r in (
            read_json(state_path)["results"] if state_path.exists() and not args.force else []
        )
    }
    names = args.models or model_names()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{len(names)} models; {load}", flush=True)
    for i, name in enumerate(names, 1):
        if name in done:
            print(f"[{i}/{len(names)}] {name}: done before, skipped", flush=True)
            continue
        print(f"[{i}/{len(names)}] {name}: converting ...", flush=True)
        done[name] = check(name, args.verify, out if args.keep else None)
        r = done[name]
        print(
            f"    {r['accelerated_convs']}/{r['binary_convs']} LceBconv2d, BOPs "
            f"{100 * r['accelerated_bops_share']:.1f} %, size {r['size_bytes']:,} B "
            f"(ratio {r['size_ratio']:.3f}), max diff {r['max_abs_diff']:.2e}, top-1 "
            f"{r.get('top1_agreement', float('nan')):.2f}, {r['convert_s']} s "
            f"{'ok' if r['ok'] else 'CHECK'}",
            flush=True,
        )
        write_json(state_path, {"results": list(done.values())})
    results = [done[n] for n in names if n in done]
    print(
        f"\n{'model':<17} {'input':<12} {'bconv':>7} {'BOPs %':>7} {'size MiB':>9} "
        f"{'ratio':>6} {'max diff':>9} {'top-1':>6}"
    )
    for r in results:
        print(
            f"{r['model']:<17} {'x'.join(map(str, r['input_shape'])):<12} "
            f"{r['accelerated_convs']:>3}/{r['binary_convs']:<3} "
            f"{100 * r['accelerated_bops_share']:>7.1f} {r['size_bytes'] / 2**20:>9.2f} "
            f"{r['size_ratio']:>6.3f} {r['max_abs_diff']:>9.1e} "
            f"{r.get('top1_agreement', float('nan')):>6.2f}"
        )
    bad = [r["model"] for r in results if not r["ok"]]
    print("all models pass" if not bad else f"check: {', '.join(bad)}")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return results


if __name__ == "__main__":
    main()
