"""Does a short search move the architecture? One search on the digits per call, then the
decisiveness of its derived cells (``larq_bnas.search.decisiveness``).

    python benchmarks/search_schedule.py --epochs 6 --batch-size 16 --arch-lr 3e-3

Prints the wall time, the steps made, and per gamma and cell type the chosen ops' mean
softmax weight (uniform 1/7 = 0.143), the mean entropy (uniform ln 7 = 1.946) and whether
the margins are beyond the initialisation noise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import larq_bnas  # noqa: F401  (legacy Keras before TensorFlow)
from larq_bnas.search import run_search
from larq_bnas.search.derive import decisiveness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--arch-lr", type=float, default=3e-3)
    parser.add_argument("--arch-wd", type=float, default=1e-3)
    parser.add_argument("--lambda", dest="lam", type=float, default=1.0)
    parser.add_argument("--tau", type=float, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.time()
        r = run_search(
            out,
            epochs=args.epochs,
            cells=args.cells,
            channels=args.channels,
            input_size=args.input_size,
            batch_size=args.batch_size,
            arch_learning_rate=args.arch_lr,
            arch_weight_decay=args.arch_wd,
            diversity_lambda=args.lam,
            diversity_tau=args.tau,
            steps_per_epoch=args.steps_per_epoch,
            seed=args.seed,
            tensorboard=False,
            verbose=0,
        )
        seconds = time.time() - start
        history = json.loads((Path(out) / "alphas.json").read_text())
    trajectory = []
    for epoch, normal, reduce in zip(
        history["epochs"], history["alpha_normal"], history["alpha_reduce"], strict=True
    ):
        d = decisiveness(normal, reduce, 1.0, history["layer_set"])
        trajectory.append(
            f"{epoch}:{d['normal']['chosen_weight_mean']:.3f}/{d['reduce']['chosen_weight_mean']:.3f}"
        )
    o = r["options"]
    print(
        f"epochs {o['epochs']} batch {o['batch_size']} arch_lr {o['arch_learning_rate']:g} "
        f"wd {o['arch_weight_decay']:g} lambda {o['diversity_lambda']:g} tau {o['diversity_tau']:.3g} seed {o['seed']}: "
        f"{seconds:.0f} s"
    )
    for g, d in r["decisiveness"].items():
        print(
            f"  gamma {g}: chosen_weight_mean normal {d['normal']['chosen_weight_mean']:.3f} "
            f"reduce {d['reduce']['chosen_weight_mean']:.3f}; entropy normal "
            f"{d['normal']['entropy']:.3f} reduce {d['reduce']['entropy']:.3f}; moved "
            f"{d['moved']}; normal {[tuple(p) for p in r['genotypes'][g]['normal']]}"
        )
    print(f"  gamma-1 chosen_weight_mean normal/reduce per epoch: {' '.join(trajectory)}")
    print(f"  last epoch: {r['last_epoch']}")


if __name__ == "__main__":
    main()
