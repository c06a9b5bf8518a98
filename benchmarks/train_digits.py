"""`larq_bnas train bnas-mini --dataset digits` with the defaults: test accuracy and wall
time on this machine (target: >= 90 % within 10 minutes on 2 cores).

    python benchmarks/train_digits.py [--output runs/bench_digits]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", default="runs/bench_digits")
    args = parser.parse_args()
    shutil.rmtree(args.output, ignore_errors=True)
    start = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "larq_bnas",
            "train",
            "bnas-mini",
            "--dataset",
            "digits",
            "-o",
            args.output,
        ],
        check=True,
    )
    wall = time.time() - start
    import json

    results = json.load(open(f"{args.output}/results.json"))
    print(
        f"bnas-mini on digits: test top-1 {results['test_top1']:.4f} "
        f"(best epoch {results['best_test_top1']:.4f}) in {wall / 60:.1f} min wall time "
        f"(target >= 0.90 within 10 min)"
    )


if __name__ == "__main__":
    main()
