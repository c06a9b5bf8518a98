"""Training throughput and peak memory of BNAS-A (CIFAR size 32x32, batch 64, 10 classes).

Each mode runs in its own process (so the peak memory, ``ru_maxrss``, belongs to that
mode) and prints the median (and minimum) wall seconds per training step after two
warm-up steps that trace or compile, the CPU seconds per step (less sensitive to other
processes on a shared machine), images per second from the median, and the peak memory.
Modes:

- ``plain``: ``model.compile`` + ``train_on_batch``, nothing else;
- ``lean``: what ``larq_bnas.training.train`` does by default: binary operations
  recompute their intermediates in the backward pass and grappler's constant folding is
  off (``larq_bnas.training.memory``);
- ``xla`` / ``xla-lean``: the same with ``jit_compile=True``.

Reference: the authors' PyTorch code on the same machine kind, 2 threads: 7.8 s per step
of 64 = 8.3 images/s, 4.9 GB peak. Targets: >= 1.5x the speed (>= 12.5 images/s) and
<= half the memory (<= 2.45 GB).

    python benchmarks/train_step.py [--modes plain,lean,xla] [--steps 6] [--batch 64]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time

REFERENCE_IMAGES_PER_S = 8.3
REFERENCE_PEAK_GB = 4.9
MODES = ("plain", "lean", "xla", "xla-lean")


def measure(mode: str, steps: int, batch: int) -> dict[str, float | str]:
    import numpy as np
    import tensorflow as tf

    import larq_bnas.zoo as zoo
    from larq_bnas.training.memory import lean_graphs, recompute_binary_ops

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    model = zoo.BNASA()
    lean = mode.endswith("lean")
    if lean:
        recompute_binary_ops(model)
    model.compile(
        tf.keras.optimizers.legacy.SGD(0.05, momentum=0.9),
        "sparse_categorical_crossentropy",
        jit_compile=mode.startswith("xla"),
    )
    rng = np.random.RandomState(0)
    x = tf.constant(rng.randn(batch, 32, 32, 3).astype("float32"))
    y = tf.constant(rng.randint(0, 10, batch))
    with lean_graphs() if lean else contextlib.nullcontext():
        start = time.perf_counter()
        model.train_on_batch(x, y)  # trace (and compile)
        first = time.perf_counter() - start
        model.train_on_batch(x, y)
        times, cpu = [], []
        for _ in range(steps):
            start, start_cpu = time.perf_counter(), time.process_time()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    step = statistics.median(times)
    return {
        "mode": mode,
        "batch": batch,
        "first_step_s": first,
        "step_s": step,
        "min_step_s": min(times),
        "images_per_s": batch / step,
        "cpu_s_per_step": statistics.median(cpu),
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--modes", default="plain,lean,xla", help=f"comma-separated, of: {', '.join(MODES)}"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line (internal)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in modes):
        parser.error(f"modes must be of: {', '.join(MODES)}")
    if args.json:
        print(json.dumps(measure(modes[0], args.steps, args.batch)))
        return
    for mode in modes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--steps",
                str(args.steps),
                "--batch",
                str(args.batch),
                "--modes",
                mode,
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"BNAS-A train step, batch {r['batch']}, 32x32, {r['mode']:8s}: "
            f"{r['step_s']:.2f} s/step (min {r['min_step_s']:.2f}, first {r['first_step_s']:.0f} s, "
            f"CPU {r['cpu_s_per_step']:.2f} s/step)"
            f", {r['images_per_s']:.1f} images/s = "
            f"{r['images_per_s'] / REFERENCE_IMAGES_PER_S:.2f}x the PyTorch reference; "
            f"peak {r['peak_gb']:.2f} GB = {r['peak_gb'] / REFERENCE_PEAK_GB:.2f}x its "
            f"{REFERENCE_PEAK_GB} GB",
            flush=True,
        )


if __name__ == "__main__":
    main()
