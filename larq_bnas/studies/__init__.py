"""The papers' experiments as runnable, resumable studies.

    from larq_bnas.studies import run_study
    result = run_study("layer-types", scale="toy", output_dir="studies/layer-types")

Every study writes a CSV and a JSON table and a PNG figure into its output directory.
``scale="toy"`` runs on the embedded digits in minutes (its numbers are NOT the papers');
``scale="paper"`` uses the papers' datasets and schedules (``paper_cost(name)`` says what
that costs) and fails at once, before training, when the dataset is not prepared.

Studies (``STUDIES``):

- ``layer-types``: BNAS Table 1 and 12, layer types in float and binary;
- ``baselines``: BNAS Table 6 and Figure 1, XNOR-Net-binarized ResNet18/34 and WRN40
  against the BNAS models, accuracy vs OPs;
- ``ablations``: BNAS Table 8, 10 and 11, full / no skip / no zeroise / no diversity /
  no dilated convs / with separable convs, from search through training;
- ``naive-vs-melius``: MeliusNet supplement section 2, the naive Dense + Residual network
  against MeliusNet at matched OPs;
- ``optimizers``: MeliusNet supplement section 3, Adam / RAdam / SGD and the sign flips of
  the binary weights per epoch;
- ``search-dynamics``: BNAS eq. 4 and 5, the search with lambda 1 vs 0 (entropy and
  alphas over the epochs) and its cells derived with gamma 1 vs 3 (share of Zeroise).

This package does not import TensorFlow until a study runs.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType

from larq_bnas.studies.common import (
    SCALES,
    PaperCost,
    StudyContext,
    StudyResult,
    check_dataset,
    check_scale,
    lean_autograph,
)

#: study name -> module (each has NAME, TITLE, SOURCE, PAPER_COST and run(ctx)).
STUDIES: dict[str, str] = {
    "layer-types": "larq_bnas.studies.layer_types",
    "baselines": "larq_bnas.studies.baselines",
    "ablations": "larq_bnas.studies.ablations",
    "naive-vs-melius": "larq_bnas.studies.naive_vs_melius",
    "optimizers": "larq_bnas.studies.optimizers",
    "search-dynamics": "larq_bnas.studies.search_dynamics",
}


def study_names() -> list[str]:
    return list(STUDIES)


def get_study(name: str) -> ModuleType:
    """The module of study ``name``; a ValueError lists the valid names."""
    if name not in STUDIES:
        raise ValueError(f"Unknown study {name!r}; valid studies are: {', '.join(STUDIES)}")
    return importlib.import_module(STUDIES[name])


def paper_cost(name: str) -> PaperCost:
    """What running study ``name`` at paper scale costs (dataset, units, schedule, GPU time)."""
    return get_study(name).PAPER_COST


def run_study(
    name: str,
    scale: str = "toy",
    output_dir: str | os.PathLike = "studies",
    resume: bool = False,
    *,
    epochs: int | None = None,
    data_dir: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> StudyResult:
    """Run study ``name`` at ``scale`` ("toy" or "paper") into ``output_dir``.

    Args:
        name: one of ``study_names()``.
        scale: "toy" (embedded digits, minutes) or "paper" (the papers' data and schedule).
        output_dir: where the units, the table (CSV, JSON) and the figure (PNG) go.
        resume: continue a study in ``output_dir``: finished units are skipped and an
            interrupted training continues from its last epoch.
        epochs: override every unit's training epochs.
        data_dir: where tfds datasets are prepared (paper scale).
        echo: receives the progress lines (one per unit); default ``print``.

    Raises:
        ValueError: unknown study or scale; at paper scale a dataset that is not prepared
            here (raised before anything is trained or written).
    """
    module = get_study(name)
    check_scale(scale)
    say = echo or (lambda line: print(line, flush=True))
    if scale == "paper":
        say(f"[{name}] {module.TITLE}: paper scale, expected cost:")
        for line in module.PAPER_COST.lines():
            say(f"  {line}")
        check_dataset(module.PAPER_COST.dataset, data_dir)
    ctx = StudyContext(name, scale, output_dir, resume, epochs=epochs, data_dir=data_dir, echo=say)
    with lean_autograph():
        return module.run(ctx)


__all__ = [
    "SCALES",
    "STUDIES",
    "PaperCost",
    "StudyContext",
    "StudyResult",
    "get_study",
    "paper_cost",
    "run_study",
    "study_names",
]
