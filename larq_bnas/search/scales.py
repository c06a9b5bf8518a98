"""Search presets by scale (no TensorFlow import: the CLI reads them for --help).

- ``paper``: the paper's search, untouched (CIFAR-10, 8 cells, C = 16, batch 64 per
  half, 50 epochs, architecture Adam 3e-4 with weight decay 1e-3; tau = 50 * 7.7 / 50 =
  7.7). About 19,500 architecture steps.
- ``toy``: the digits in minutes (5 cells, C = 8, 16 x 16, batch 16 per half: 44 steps
  per epoch, 6 epochs: 264 architecture steps; Adam 5e-2 without weight decay on the
  alphas; tau = 6 * 7.7 / 50 = 0.92 epochs). The deviations, and why, are in
  docs/readme/search.md: at the paper's 3e-4, 264 Adam steps move an alpha by at most
  0.08, and the derived cells stay at the initialisation noise.
"""

from __future__ import annotations

from typing import Any

from larq_bnas._digits import DIGITS

SEARCH_SCALES: dict[str, dict[str, Any]] = {
    "toy": dict(
        dataset=DIGITS.name,
        epochs=6,
        cells=5,
        channels=8,
        batch_size=16,
        arch_learning_rate=5e-2,
        arch_weight_decay=0.0,
    ),
    "paper": dict(
        dataset="cifar10",
        epochs=50,
        cells=8,
        channels=16,
        batch_size=64,
        arch_learning_rate=3e-4,
        arch_weight_decay=1e-3,
    ),
}
