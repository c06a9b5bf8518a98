"""Training throughput of BNAS-A (CIFAR size 32x32, batch 64, 10 classes) on this CPU.

Prints images per second (median over timed steps after warm-up) and peak memory, with
and without XLA. Reference: the authors' PyTorch code on the same machine kind, 2 threads:
8.3 images/s (7.8 s per step of 64), 4.9 GB peak.

    python benchmarks/train_step.py [--steps 6] [--xla both|on|off]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import tensorflow as tf

import larq_bnas.zoo as zoo

REFERENCE_IMAGES_PER_S = 8.3
REFERENCE_PEAK_GB = 4.9


def measure(jit: bool, steps: int, batch: int = 64) -> float:
    tf.keras.backend.clear_session()
    model = zoo.BNASA()
    model.compile(tf.keras.optimizers.SGD(0.05, momentum=0.9),
                  "sparse_categorical_crossentropy", jit_compile=jit)
    rng = np.random.RandomState(0)
    x = tf.constant(rng.randn(batch, 32, 32, 3).astype("float32"))
    y = tf.constant(rng.randint(0, 10, batch))
    model.train_on_batch(x, y)  # trace / compile
    model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--xla", choices=["both", "on", "off"], default="both")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    modes = {"both": [False, True], "on": [True], "off": [False]}[args.xla]
    for jit in modes:
        step = measure(jit, args.steps)
        ips = 64 / step
        print(f"BNAS-A train step, batch 64, 32x32, XLA {'on ' if jit else 'off'}: "
              f"{step:.2f} s/step, {ips:.1f} images/s, "
              f"{ips / REFERENCE_IMAGES_PER_S:.2f}x the PyTorch reference")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"peak memory (whole process, both modes): {peak_gb:.2f} GB "
          f"({peak_gb / REFERENCE_PEAK_GB:.2f}x the reference's {REFERENCE_PEAK_GB} GB)")


if __name__ == "__main__":
    main()
