"""File size and batch-1 latency of an imported BNAS-D (the reference's function).

The published checkpoints cannot be downloaded here, so this builds a reference
state_dict of BNAS-D's exact architecture (12 cells, C 64, 1000 classes; the names and
shapes the authors' code writes) with random weights and random BatchNorm statistics,
imports it as ``larq_bnas import-weights`` does (``import_checkpoint``), converts it with
LCE and times it at batch 1. Size and speed depend on the architecture only, not on the
values, so the figures are those of the published BNAS-D. Also prints our trainable
parameters against the reference's for every published checkpoint.

    python benchmarks/published_weights.py                # BNAS-D, 2 threads
    python benchmarks/published_weights.py --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

import numpy as np


def random_reference_state(model_name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """A state_dict with the reference's names and PyTorch shapes for ``model_name``."""
    from larq_bnas.models.bnas.network import bnas_network
    from larq_bnas.zoo import published
    from larq_bnas.zoo.registry import get_spec

    spec = get_spec(model_name)
    config = published.reference_config(spec.config)
    model = bnas_network(config, num_classes=spec.num_classes)
    rs = np.random.RandomState(seed)
    state: dict[str, np.ndarray] = {}
    for module in published._layout(model, config):
        for name, shape in published._expected(module):
            if name.endswith("running_var"):
                value = rs.uniform(0.5, 2.0, shape)
            elif name.endswith("running_mean") or name.endswith("bias"):
                value = rs.normal(0.0, 0.3, shape)
            elif module.kind.startswith("bn"):
                value = rs.normal(1.0, 0.3, shape)
            else:
                value = rs.normal(0.0, 0.05, shape)
            state[name] = value.astype(np.float32)
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bnas-d")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--kernels", nargs="*", default=["default", "indirect_bgemm"])
    args = parser.parse_args()

    import larq_bnas  # noqa: F401
    from larq_bnas.converters.lce import convert, convert_float
    from larq_bnas.runtime.interpreters import benchmark
    from larq_bnas.zoo import published
    from larq_bnas.zoo.registry import get_spec

    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("parameters (trainable): ours vs the reference's (its named_parameters)")
    for entry in published.PUBLISHED:
        spec = get_spec(entry.zoo_name)
        ours = published.reference_config(spec.config)
        from larq_bnas.models.bnas.network import bnas_network

        model = bnas_network(ours, num_classes=entry.num_classes)
        trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
        ref = published.reference_parameter_count(spec.config, entry.num_classes)
        print(
            f"  ref {entry.reference_name} -> {entry.zoo_name}: ours {trainable:,}, "
            f"reference {ref:,}"
        )

    start = time.time()
    state = random_reference_state(args.model)
    model, report = published.import_checkpoint(state, args.model)
    print(
        f"imported {args.model}: {report.cells} cells, C {report.channels}, "
        f"{len(report.tensors)} tensors, {len(report.binarized)} binarized kernels, "
        f"{len(report.float_convs)} float convs ({time.time() - start:.0f} s)"
    )
    flatbuffer = convert(model)
    float_fb = convert_float(model)
    print(
        f"LCE flatbuffer {len(flatbuffer):,} bytes ({len(flatbuffer) / 2**20:.2f} MiB); "
        f"float TFLite {len(float_fb):,} bytes ({len(float_fb) / 2**20:.2f} MiB)"
    )
    results = benchmark(
        flatbuffer,
        threads=args.threads,
        repeats=args.repeats,
        kernels=args.kernels,
        float_source=float_fb,
        remember=False,
    )
    for name, figures in results["kernels"].items():
        print(
            f"  kernel {name:<16} "
            + (
                f"median {figures['median_ms']:.1f} ms"
                if "median_ms" in figures
                else figures.get("error", "")
            )
        )
    print(f"  float TFLite       median {results['float']['median_ms']:.1f} ms")
    print(
        f"best kernel {results['best_kernel']}: binary / float = {results.get('binary_to_float_ratio', float('nan')):.2f}"
    )
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    os.makedirs("/tmp/larq_bnas_bench", exist_ok=True)
    with open("/tmp/larq_bnas_bench/published_weights.json", "w") as f:
        json.dump(
            {"size": len(flatbuffer), "float_size": len(float_fb), "timing": results},
            f,
            indent=1,
            default=str,
        )


if __name__ == "__main__":
    main()
