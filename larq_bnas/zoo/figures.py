"""Our own cost figures of every zoo model, computed once and shipped.

``larq_bnas list`` shows them without building every model (building and tracing all of
them takes minutes). Regenerate after changing a model with::

    python -m larq_bnas.zoo.figures

A test recomputes them and fails when the shipped file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from larq_bnas._io import write_json

FIGURES_PATH = Path(__file__).with_name("figures.json")
KEYS = (
    "trainable_params",
    "binary_params",
    "float_params",
    "size_mib",
    "bops",
    "flops",
    "ops",
    "ops_paper",
)


def load_figures() -> dict[str, dict[str, Any]]:
    """Model name -> our figures at its default configuration (may be empty)."""
    if not FIGURES_PATH.exists():
        return {}
    return json.loads(FIGURES_PATH.read_text())


def compute_figures(name: str) -> dict[str, Any]:
    """Build ``name`` at its defaults and return the figures that ``list`` shows."""
    from larq_bnas.zoo.registry import model_cost_report

    report = model_cost_report(name).to_dict()
    return {key: report[key] for key in KEYS if key in report}


def main(argv: list[str] | None = None) -> int:
    from larq_bnas.zoo.registry import model_names

    names = (argv if argv is not None else sys.argv[1:]) or model_names()
    figures = load_figures()
    for name in names:
        print(f"computing {name} ...", file=sys.stderr, flush=True)
        figures[name] = compute_figures(name)
    ordered = {n: figures[n] for n in model_names() if n in figures}
    write_json(FIGURES_PATH, ordered)
    print(f"wrote {FIGURES_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
