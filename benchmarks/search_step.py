"""Speed of one BNAS search step (architecture step + weight step) on this CPU.

The paper's search configuration: supernet of 8 cells, C = 16, batch 64, 32 x 32 inputs,
10 classes. Prints the median time per step over timed steps after warm-up, images per
second (64 training images per step, as the reference counts), the peak memory of the
process (``ru_maxrss``) and the ratio to the authors' PyTorch reference on the same
machine kind (2 threads: 1.6 images/s, 40 s per step, 8.1 GB peak).

    python benchmarks/search_step.py [--steps 5] [--xla off|on] [--unfused] [--threads 2]

Measured here (quiet 2-core machine, XLA off, fused): 6.15 s per step = 10.4 images/s
(6.5x the reference), peak 4.04 GB (0.50x).

Run one mode per process: peak memory is per process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np
import tensorflow as tf

import larq_bnas  # noqa: F401  (legacy Keras before TensorFlow)
from larq_bnas.search import SearchModel, SupernetConfig

REFERENCE_IMAGES_PER_S = 1.6
REFERENCE_STEP_S = 40.0
REFERENCE_PEAK_GB = 8.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up)")
    parser.add_argument(
        "--xla",
        choices=["on", "off"],
        default="off",
        help="compile the step with XLA (slower to compile and to run here)",
    )
    parser.add_argument(
        "--unfused",
        action="store_true",
        help="one Keras layer per edge and op (the reference's structure)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.keras.utils.set_random_seed(0)

    config = SupernetConfig(
        cells=args.cells,
        channels=args.channels,
        input_size=args.size,
        num_classes=10,
        fused=not args.unfused,
    )
    start = time.perf_counter()
    model = SearchModel(config)
    model.compile(jit_compile=args.xla == "on")
    built = time.perf_counter() - start
    rng = np.random.RandomState(0)

    def batch() -> tuple[tf.Tensor, tf.Tensor]:
        return (
            tf.constant(rng.randn(args.batch, args.size, args.size, 3).astype("float32")),
            tf.constant(rng.randint(0, 10, args.batch).astype("int32")),
        )

    pair = (batch(), batch())
    model.search_epoch.assign(0.0)
    step = model.make_train_function()
    iterator = iter(tf.data.Dataset.from_tensors(pair).repeat())
    start = time.perf_counter()
    step(iterator)  # trace + compile
    first = time.perf_counter() - start
    step(iterator)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        logs = step(iterator)
        float(logs["loss"])  # wait for the step
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    ips = args.batch / median
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    mode = f"XLA {args.xla}, {'unfused' if args.unfused else 'fused'}"
    print(
        f"search step: {args.cells} cells, C={args.channels}, batch {args.batch}, "
        f"{args.size}x{args.size}, {args.threads} threads, {mode}"
    )
    print(f"  model build {built:.1f} s, first step (trace/compile) {first:.1f} s")
    print(f"  step times (s): {', '.join(f'{t:.2f}' for t in times)}")
    print(
        f"  median {median:.2f} s/step, {ips:.2f} images/s = "
        f"{ips / REFERENCE_IMAGES_PER_S:.2f}x the PyTorch reference "
        f"({REFERENCE_IMAGES_PER_S} images/s, {REFERENCE_STEP_S:.0f} s/step)"
    )
    print(
        f"  peak memory {peak_gb:.2f} GB = {peak_gb / REFERENCE_PEAK_GB:.2f}x the "
        f"reference's {REFERENCE_PEAK_GB} GB"
    )
    print(f"  load average {os.getloadavg()[0]:.2f} (machine shared with other jobs)")


if __name__ == "__main__":
    main()
