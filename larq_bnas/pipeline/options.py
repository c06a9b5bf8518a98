"""Options of the main job (``larq_bnas run``): each default is stated here once, and the
command line takes its defaults from ``PipelineOptions``. Imports no TensorFlow."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from typing import Any

from larq_bnas._digits import DIGITS
from larq_bnas.config import parse_model_ref

STAGES = ("search", "train", "convert", "benchmark", "compare", "report")


@dataclass(frozen=True)
class PipelineOptions:
    """Options of ``larq_bnas run`` (defaults finish in minutes on 2 CPU cores)."""

    dataset: str = DIGITS.name
    # 16x16 (DIGITS.input_size): the digits are 8x8 images (upsampled), and a training
    # step costs about a quarter of one at 32x32 (docs/readme/search.md has the run times).
    input_size: int = DIGITS.input_size
    search_input_size: int = DIGITS.input_size
    # The search's budget on the digits (see docs/readme/search.md): 6 epochs of 44 steps
    # (batch 16 per half) with the architecture's Adam at 5e-2 (paper 3e-4) and no weight
    # decay on the alphas (paper 1e-3); tau scaled to the length (None: 6 * 7.7 / 50).
    search_epochs: int = 6
    search_cells: int = 5
    search_channels: int = 8
    search_batch_size: int = 16
    search_arch_lr: float = 5e-2
    search_arch_weight_decay: float = 0.0
    search_tau: float | None = None
    gammas: tuple[float, ...] = (1.0, 3.0)
    train_gamma: float | None = None  # default: the first of gammas
    cells: int = 5
    channels: int = 12
    train_epochs: int = 8
    batch_size: int = 64
    recipe: str | None = None
    verify_inputs: int = 10
    threads: int = 2
    benchmark_repeats: int = 20
    # Zoo models converted and benchmarked at the same input size (untrained): none by
    # default, since the paper-size BNAS-A alone costs about 200 s of CPU (``--compare bnas-a``).
    compare_models: tuple[str, ...] = ()
    # Cells trained against the searched one at the same size, recipe and epochs.
    random_cells: int = 2
    compare_bnas_a_cell: bool = True
    cell_seeds: int = 1  # trainings per cell (seeds seed, seed+1, ...): the seed spread
    genotype: str | None = None  # skip the search and use this genotype
    seed: int = 0
    data_dir: str | None = None
    stages: tuple[str, ...] = field(default=STAGES)

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"Unknown stage(s) {unknown}; valid stages are: {', '.join(STAGES)}")
        if not self.gammas or any(g <= 0 for g in self.gammas):
            raise ValueError(f"gamma must be positive, got {list(self.gammas)}")
        if self.random_cells < 0:
            raise ValueError(f"random_cells must be >= 0, got {self.random_cells}")
        if self.cell_seeds < 1:
            raise ValueError(f"cell_seeds must be >= 1, got {self.cell_seeds}")
        if not self.search_arch_lr > 0:
            raise ValueError(f"search_arch_lr must be > 0, got {self.search_arch_lr}")
        if self.search_tau is not None and not self.search_tau > 0:
            raise ValueError(f"search_tau must be > 0, got {self.search_tau}")
        if self.train_gamma is not None and self.train_gamma not in self.gammas:
            raise ValueError(
                f"train_gamma {self.train_gamma} is not one of the gammas {list(self.gammas)}"
            )


def parse_model_entry(entry: str) -> tuple[str, dict[str, str]]:
    """``"bnas-mini cells=3 channels=4"`` -> ``("bnas-mini", {"cells": "3", ...})``: the
    one ``KEY=VALUE`` option syntax of ``--set`` (``larq_bnas.config.parse_model_ref``)."""
    return parse_model_ref(entry)


def default(name: str) -> Any:
    """The default of option ``name`` (the ``run`` CLI takes its defaults from here)."""
    f = PipelineOptions.__dataclass_fields__[name]
    return f.default_factory() if f.default_factory is not MISSING else f.default
