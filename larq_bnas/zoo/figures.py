"""Our own cost figures of every zoo model, computed once and shipped, and the README's
zoo table rendered from them.

``larq_bnas list`` shows the figures without building every model (building and tracing
all of them takes minutes). After changing a model, regenerate both with one command::

    python -m larq_bnas.zoo.figures            # every model; or name some models
    python -m larq_bnas.zoo.figures --check    # only say whether anything is stale

Each entry stores a fingerprint of the model's configuration (``config``), so a fast test
sees at once when a spec changed without regenerating; it also recomputes the cheap
models' figures and compares the README table with ``render_zoo_table()``. A slow test
recomputes every model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from larq_bnas._io import write_json, write_text

FIGURES_PATH = Path(__file__).with_name("figures.json")
README_PATH = Path(__file__).resolve().parents[2] / "README.md"
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
TABLE_START, TABLE_END = "<!-- zoo-table -->", "<!-- /zoo-table -->"


def load_figures() -> dict[str, dict[str, Any]]:
    """Model name -> our figures at its default configuration (may be empty)."""
    if not FIGURES_PATH.exists():
        return {}
    return json.loads(FIGURES_PATH.read_text())


def config_fingerprint(name: str) -> str:
    """A short hash of everything in the spec that the figures depend on."""
    from larq_bnas.zoo.registry import get_spec

    spec = get_spec(name)
    blob = json.dumps(
        [spec.family, spec.config.to_dict(), list(spec.input_shape), spec.num_classes],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: 224 px models are costed at 64 px: 224 / 64 = 3.5 divides every stage of their stems
#: and reductions (112/56/28/14/7 px against 32/16/8/4/2 px), so every convolution's
#: multiply-accumulates at 224 px are exactly 3.5 ** 2 times those at 64 px, and the
#: parameters do not depend on the input size. Building at 64 px is several times faster.
#: Dense layers do not scale with the input size: their multiply-accumulates (counted in
#: the ``*_paper`` figures) are taken out before scaling and added back.
COST_SIZE = {224: (64, 3.5**2)}
_SCALED = ("bops", "flops", "ops", "ops_paper", "bops_paper", "flops_paper")


def cost_figures(name: str, **options: Any) -> dict[str, Any]:
    """``model_cost_report(name, **options).to_dict()`` at the model's default input
    size, computed at a smaller size where that is exact (``COST_SIZE``)."""
    from larq_bnas.zoo.registry import get_spec, model_cost_report

    height, width, channels = get_spec(name).input_shape
    small, factor = COST_SIZE.get(height, (height, 1.0)) if height == width else (height, 1.0)
    cost_report = model_cost_report(name, input_shape=(small, small, channels), **options)
    report = cost_report.to_dict()
    if factor != 1.0:
        dense = sum(layer.macs for layer in cost_report.layers if layer.kind == "Dense")
        for key in _SCALED:
            if key not in report:
                continue
            fixed = dense if key in ("ops_paper", "flops_paper") else 0
            if key in ("bops", "flops") and cost_report.count_dense:
                fixed = dense
            if key == "ops" and cost_report.count_dense:
                fixed = dense
            value = (report[key] - fixed) * factor + fixed
            report[key] = round(value) if key in ("bops", "flops") else value
    return report


def compute_figures(name: str) -> dict[str, Any]:
    """The figures that ``list`` shows of ``name`` at its defaults."""
    report = cost_figures(name)
    figures: dict[str, Any] = {key: report[key] for key in KEYS if key in report}
    figures["config"] = config_fingerprint(name)
    return figures


def _top1(paper: dict[str, Any]) -> str:
    top1, top5 = paper.get("top1"), paper.get("top5")
    if top1 is None:
        return "-"
    return f"{top1:.2f}" + (f" / {top5:.2f}" if top5 is not None else "")


def _e8(value: float | None, approx: bool = False) -> str:
    return "-" if value is None else f"{'~' if approx else ''}{value / 1e8:.2f}"


def render_zoo_table(figures: dict[str, dict[str, Any]] | None = None) -> str:
    """The README's zoo table (every fixed BNAS model) from ``figures``."""
    from larq_bnas.zoo.registry import list_specs

    figures = load_figures() if figures is None else figures
    lines = [
        "| model | constructor | paper dataset | cells / C | paper top-1 (/ top-5) "
        "| paper OPs (1e8) | our OPs, paper's way (1e8) | our OPs (1e8) | size (MiB) | params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in list_specs():
        if spec.family != "bnas":
            continue
        ours = figures.get(spec.name, {})
        config = spec.config
        cells_c = f"{getattr(config, 'cells', '-')} / {getattr(config, 'channels', '-')}"
        params = ours.get("trainable_params")
        lines.append(
            f"| `{spec.name}` | `{spec.constructor}` | {spec.dataset} | {cells_c} "
            f"| {_top1(spec.paper)} "
            f"| {_e8(spec.paper.get('ops'), approx=spec.dataset == 'cifar10')} "
            f"| {_e8(ours.get('ops_paper'))} | {_e8(ours.get('ops'))} "
            f"| {'-' if ours.get('size_mib') is None else format(ours['size_mib'], '.2f')} "
            f"| {'-' if params is None else format(params, ',')} |"
        )
    return "\n".join(lines)


def readme_table(readme: str) -> str:
    """The table between the zoo-table markers of ``readme``'s text."""
    match = re.search(re.escape(TABLE_START) + r"\n(.*?)\n" + re.escape(TABLE_END), readme, re.S)
    if match is None:
        raise ValueError(f"README has no {TABLE_START} ... {TABLE_END} markers")
    return match.group(1)


def update_readme(
    path: Path = README_PATH, figures: dict[str, dict[str, Any]] | None = None
) -> bool:
    """Rewrite the zoo table in ``path``; True if it changed."""
    text = path.read_text()
    old = readme_table(text)
    new = render_zoo_table(figures)
    if old == new:
        return False
    write_text(
        path,
        text.replace(f"{TABLE_START}\n{old}\n{TABLE_END}", f"{TABLE_START}\n{new}\n{TABLE_END}"),
    )
    return True


def stale_models(figures: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Models with no shipped figures or whose configuration changed since."""
    from larq_bnas.zoo.registry import model_names

    figures = load_figures() if figures is None else figures
    return [
        name
        for name in model_names()
        if figures.get(name, {}).get("config") != config_fingerprint(name)
    ]


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for key, value in a.items():
        if isinstance(value, float) or isinstance(b[key], float):
            if abs(value - b[key]) > 1e-6 * max(1.0, abs(value)):
                return False
        elif value != b[key]:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    from larq_bnas.zoo.registry import model_names

    parser = argparse.ArgumentParser(
        prog="python -m larq_bnas.zoo.figures",
        description="Regenerate larq_bnas/zoo/figures.json and the README zoo table.",
    )
    parser.add_argument("names", nargs="*", help="models to recompute (default: every model)")
    parser.add_argument("--check", action="store_true", help="only report what is stale")
    parser.add_argument(
        "--recompute", action="store_true", help="with --check: also recompute every model"
    )
    parser.add_argument("--readme", type=Path, default=README_PATH)
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_models()
        if args.recompute:
            shipped = load_figures()
            for name in model_names():
                fresh = compute_figures(name)
                if name not in stale and not _same(fresh, shipped.get(name, {})):
                    stale.append(name)
        table_ok = readme_table(args.readme.read_text()) == render_zoo_table()
        print(f"stale figures: {', '.join(stale) or 'none'}; README table current: {table_ok}")
        return 1 if stale or not table_ok else 0
    figures = load_figures()
    for name in args.names or model_names():
        print(f"computing {name} ...", file=sys.stderr, flush=True)
        figures[name] = compute_figures(name)
    ordered = {n: figures[n] for n in model_names() if n in figures}
    write_json(FIGURES_PATH, ordered)
    print(f"wrote {FIGURES_PATH}", file=sys.stderr)
    if args.readme.exists() and update_readme(args.readme, ordered):
        print(f"updated the zoo table in {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
