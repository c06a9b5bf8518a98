"""The main job's report: what a person wants to see after ``larq_bnas run``.

``build_report(output_dir)`` is a pure function of what the stages saved there
(``<stage>.json`` and the run's options in ``state.json``): it builds no model, imports
no TensorFlow and not ``larq_bnas.pipeline.stages``.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from larq_bnas._io import read_json
from larq_bnas.document import Report, Section, Table, fmt
from larq_bnas.pipeline.options import STAGES, PipelineOptions


def load_results(output_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Every stage's saved result in ``output_dir`` (stages that did not run are absent)."""
    out = Path(output_dir)
    return {s: read_json(out / f"{s}.json") for s in STAGES if (out / f"{s}.json").exists()}


def _options(out: Path, options: dict[str, Any] | None) -> Any:
    if options is None:
        state = out / "state.json"
        options = read_json(state).get("options", {}) if state.exists() else {}
    known = {k: v for k, v in options.items() if k in PipelineOptions.__dataclass_fields__}
    defaults = {k: f.default for k, f in PipelineOptions.__dataclass_fields__.items()}
    return SimpleNamespace(**{**defaults, **known})


def _decisiveness_section(search: dict[str, Any]) -> Section | None:
    decisive = search.get("decisiveness") or {}
    if not decisive:
        return None
    rows = []
    notes = [
        "Per derived edge, the chosen op's softmax weight, the runner-up's and the margin "
        "(in the scores the derivation compared: Zeroise's weight divided by gamma). "
        "Uniform weights are 1/K; the initialisation is 1e-3 * N(0, 1)."
    ]
    for g, report in decisive.items():
        for kind in ("normal", "reduce"):
            d = report[kind]
            notes.append(
                f"gamma {g}, {kind} cell: chosen_weight_mean {d['chosen_weight_mean']:.3f} "
                f"(uniform {report['uniform_weight']:.3f}), mean entropy {d['entropy']:.4f}, "
                f"median ln-margin {d['log_margin_median']:.4f}"
            )
            for e in d["edges"]:
                rows.append(
                    [
                        g,
                        kind,
                        f"{e['input']} -> {e['node']}",
                        e["op"],
                        e["weight"],
                        e["runner_up"],
                        e["runner_up_weight"],
                        e["margin"],
                    ]
                )
        if report.get("warning"):
            notes.append(f"WARNING (gamma {g}): {report['warning']}")
    return Section(
        "How decisive the search was",
        notes,
        Table(
            ["gamma", "cell", "edge", "chosen", "weight", "runner-up", "weight", "margin"],
            rows,
        ),
    )


def _half_range(cell: dict[str, Any]) -> float:
    """The seed spread shown as mean ± spread: half the range of the seeds' top-1."""
    return (cell["test_top1_max"] - cell["test_top1_min"]) / 2


def _top1(cell: dict[str, Any]) -> str:
    mean = fmt(cell["test_top1_mean"], 4)
    if len(cell.get("runs", [])) > 1:
        return f"{mean} ± {_half_range(cell):.4f} ({len(cell['runs'])} seeds)"
    return mean


def _cells_section(cells: dict[str, Any], o: Any) -> Section:
    rows = []
    for name, c in cells.items():
        spread = (
            f"{c['test_top1_min']:.4f} - {c['test_top1_max']:.4f} (± {_half_range(c):.4f})"
            if len(c["runs"]) > 1
            else "-"
        )
        rows.append(
            [
                name,
                c["description"],
                c["test_top1_mean"],
                spread,
                len(c["runs"]),
                c["ops"],
                c["size_mib"],
                ", ".join(f"{op}({i})" for op, i in c["genotype"]["normal"]),
            ]
        )
    return Section(
        "Searched vs random vs BNAS-A cells",
        [
            f"Each cell stacked to {o.cells} cells, C = {o.channels}, input "
            f"{o.input_size}x{o.input_size}, trained {o.train_epochs} epochs with the same "
            f"recipe ({o.recipe or 'the dataset default'}) and batch {o.batch_size}; test top-1 "
            f"is the mean over {o.cell_seeds} seed(s), the seed spread min - max "
            "(± half the range). Random cells: 2 inputs per node from "
            "earlier states, ops drawn uniformly from the layer set."
        ],
        Table(
            ["cell", "what", "test top-1", "seed spread", "seeds", "OPs", "size MiB", "normal"],
            rows,
        ),
    )


def _ms(latency: dict[str, Any] | None) -> tuple[Any, Any, Any, Any]:
    if not latency:
        return None, None, None, None
    float_ms = latency.get("float", {}).get("median_ms")
    return (
        latency.get("best_kernel"),
        latency.get("best_median_ms"),
        float_ms,
        latency.get("binary_to_float_ratio"),
    )


def _search_schedule(so: dict[str, Any]) -> str:
    if not so:
        return ""
    return (
        f"Schedule: batch {so.get('batch_size')} per half, "
        f"{so.get('steps_per_epoch') or 'one pass'} steps per epoch, architecture Adam lr "
        f"{fmt(so.get('arch_learning_rate'))} with weight decay "
        f"{fmt(so.get('arch_weight_decay'))} (paper: 3e-4 and 1e-3), diversity lambda "
        f"{fmt(so.get('diversity_lambda'))}, tau {fmt(so.get('diversity_tau'))} epochs "
        f"({so.get('diversity_tau_source', 'given')})."
    )


def build_report(output_dir: str | os.PathLike, options: dict[str, Any] | None = None) -> Report:
    """The report of the run in ``output_dir`` from its saved stage results.

    Args:
        output_dir: the run directory.
        options: the run's options (``PipelineOptions`` fields); default: those recorded
            in ``state.json``.
    """
    out = Path(output_dir)
    o = _options(out, options)
    results = load_results(out)
    search = results.get("search") or {}
    train = results.get("train") or {}
    deploy = results.get("convert") or {}
    latency = results.get("benchmark") or {}
    compare = (results.get("compare") or {}).get("models", {})
    cells = (results.get("compare") or {}).get("cells", {})
    size = f"{o.input_size}x{o.input_size}"

    key = [("dataset", f"{o.dataset} (input {size})")]
    if train:
        key += [
            ("test accuracy (top-1)", fmt(train.get("test_top1"), 4)),
            (
                "model",
                f"{o.cells} cells, C = {o.channels}, genotype "
                f"{Path(train.get('genotype_path') or o.genotype or '?').name}",
            ),
            ("size", f"{train['size_mib']:.3f} MiB"),
            ("OPs", fmt(float(train["ops"]))),
        ]
    if deploy:
        key.append(
            (
                "binary convs accelerated by LCE",
                f"{deploy['accelerated_convs']}/"
                f"{deploy['binary_convs'] - deploy.get('removed_convs', 0)} "
                f"({100 * deploy['accelerated_bops_share']:.0f} % of BOPs)",
            )
        )
    kernel, best, float_ms, ratio = _ms(latency)
    if best is not None:
        key.append(
            (
                "latency, batch 1, 2 threads",
                f"{best:.2f} ms binary ({kernel}) vs {fmt(float_ms)} ms float (ratio {fmt(ratio)})",
            )
        )
    for name, c in cells.items():
        if name != "searched" or len(c.get("runs", [])) > 1:
            key.append((f"test top-1, {name} cell (same training)", _top1(c)))
    report = Report(title="larq_bnas run: search, train, deploy", key_figures=key)

    # --- search -----------------------------------------------------------------------
    if search and not search.get("skipped"):
        section = Section(
            "Searched cells",
            [
                f"Supernet of {o.search_cells} cells, C = {o.search_channels}, "
                f"{o.search_epochs} epochs on {o.dataset} at "
                f"{o.search_input_size}x{o.search_input_size}; genotypes derived with gamma "
                + ", ".join(f"{g:g}" for g in o.gammas)
                + " (Zeroise's weight divided by gamma).",
                _search_schedule(search.get("options", {})),
            ],
        )
        for picture in sorted((out / "search").glob("cells*.png")):
            section.images.append((f"derived cells ({picture.stem})", picture))
        genotypes = search.get("genotypes", {})
        if genotypes:
            section.table = Table(
                ["gamma", "file", "normal cell", "reduction cell"],
                [
                    [
                        g,
                        f"search/genotype_gamma{g}.json",
                        ", ".join(f"{op}({i})" for op, i in gt["normal"]),
                        ", ".join(f"{op}({i})" for op, i in gt["reduce"]),
                    ]
                    for g, gt in genotypes.items()
                ],
            )
        report.sections.append(section)
        decisive = _decisiveness_section(search)
        if decisive is not None:
            report.sections.append(decisive)
        alphas = sorted((out / "search").glob("alpha*.png"))
        if alphas:
            report.sections.append(
                Section(
                    "Architecture parameters during the search",
                    ["softmax(alpha) per edge and operation over the search epochs."],
                    images=[(p.stem, p) for p in alphas],
                )
            )
    elif search.get("skipped"):
        report.sections.append(Section("Cell", [f"Given genotype: {o.genotype} (no search)."]))

    # --- training ------------------------------------------------------------------------
    if train:
        curves = out / "train" / "curves.png"
        report.sections.append(
            Section(
                "Training",
                [
                    f"{train['epochs']} epochs, recipe {train['recipe']}, batch {train['batch_size']}."
                ],
                Table(
                    ["test top-1", "test top-5", "best epoch top-1", "test loss"],
                    [
                        [
                            train["test_top1"],
                            train["test_top5"],
                            train["best_test_top1"],
                            train["test_loss"],
                        ]
                    ],
                ),
                [("learning curves and learning rate", curves)] if curves.exists() else [],
            )
        )

    if cells:
        report.sections.append(_cells_section(cells, o))

    # --- costs -----------------------------------------------------------------------
    rows = []
    if train and "costs" in train:
        ours = train["costs"]
        rows.append(
            [
                "this run (searched)",
                ours["trainable_params"],
                ours["binary_params"],
                ours["size_mib"],
                ours["bops"],
                ours["flops"],
                ours["ops"],
                train.get("test_top1"),
            ]
        )
    for name, item in compare.items():
        c = item["costs"]
        rows.append(
            [
                f"{name} (random weights)",
                c["trainable_params"],
                c["binary_params"],
                c["size_mib"],
                c["bops"],
                c["flops"],
                c["ops"],
                None,
            ]
        )
    if rows:
        report.sections.append(
            Section(
                f"Cost report at {size}",
                [
                    "Size: binary weights at 1 bit, other trainable parameters at 32 bits. "
                    "OPs = BOPs / 64 + FLOPs (MeliusNet convention). The comparison models are "
                    "built at the same input size and not trained here, so they have no accuracy."
                ],
                Table(
                    [
                        "model",
                        "params",
                        "binary params",
                        "size MiB",
                        "BOPs",
                        "FLOPs",
                        "OPs",
                        "test top-1",
                    ],
                    rows,
                ),
            )
        )

    # --- deployment -----------------------------------------------------------------------
    rows = []
    if deploy:
        rows.append(
            [
                "this run",
                deploy["binary_convs"],
                deploy.get("removed_convs", 0),
                deploy["accelerated_convs"],
                deploy["accelerated_bops_share"],
                deploy["size_bytes"],
                deploy["predicted_size_bytes"],
                deploy.get("max_abs_diff"),
                deploy.get("top1_agreement"),
            ]
        )
    for name, item in compare.items():
        d = item["deploy"]
        rows.append(
            [
                name,
                d["binary_convs"],
                d.get("removed_convs", 0),
                d["accelerated_convs"],
                d["accelerated_bops_share"],
                d["size_bytes"],
                d["predicted_size_bytes"],
                d.get("max_abs_diff"),
                d.get("top1_agreement"),
            ]
        )
    if rows:
        notes = [f"LCE flatbuffers (target arm) checked against Keras on {o.verify_inputs} inputs."]
        for item in deploy.get("not_accelerated", []):
            notes.append(f"NOT ACCELERATED: {item['layer']}: {item['reason']}")
        report.sections.append(
            Section(
                "Conversion to Larq Compute Engine",
                notes,
                Table(
                    [
                        "model",
                        "binary convs",
                        "removed (unused)",
                        "LceBconv2d",
                        "BOPs share",
                        "file bytes",
                        "predicted bytes",
                        "max abs diff",
                        "top-1 agreement",
                    ],
                    rows,
                ),
            )
        )

    rows = []
    if latency:
        rows.append(["this run", *_ms(latency)])
    for name, item in compare.items():
        rows.append([name, *_ms(item["latency"])])
    if rows:
        report.sections.append(
            Section(
                "Latency (batch 1, this machine)",
                [
                    f"Median of {o.benchmark_repeats} runs with {o.threads} threads: the LCE "
                    "flatbuffer with the fastest kernel choice (native: larq_bnas's x86 kernels "
                    "for LCE's ops; otherwise one of LCE's own) against TensorFlow Lite's float "
                    "model. LCE's own kernels are tuned for ARM devices (see the README's device "
                    "guide)."
                ],
                Table(["model", "kernel", "binary ms", "float ms", "binary / float"], rows),
            )
        )
    timing = _timing_section(results, cells, compare)
    if timing is not None:
        report.sections.append(timing)
    return report


def _timing_section(
    results: dict[str, dict[str, Any]], cells: dict[str, Any], models: dict[str, Any]
) -> Section | None:
    """Wall and CPU seconds per stage, and inside the compare stage per training and per
    zoo model (CPU: every thread of the process; on 2 cores it can exceed the wall time)."""
    rows: list[list[Any]] = []
    for stage in STAGES:
        r = results.get(stage)
        if r is not None and "seconds" in r:
            rows.append([stage, r["seconds"], r.get("cpu_seconds")])
    for name, c in cells.items():
        for run in c.get("runs", []):
            if run.get("seconds") is not None:
                rows.append(
                    [
                        f"  compare: {name}, seed {run['seed']}",
                        run["seconds"],
                        run["cpu_seconds"],
                    ]
                )
    for name, item in models.items():
        if item.get("seconds") is not None:
            rows.append([f"  compare: {name}", item["seconds"], item.get("cpu_seconds")])
    if not rows:
        return None
    total = [r for r in rows if not str(r[0]).startswith(" ")]
    rows.append(
        [
            "total",
            sum(r[1] for r in total),
            sum(r[2] for r in total) if all(r[2] is not None for r in total) else None,
        ]
    )
    return Section(
        "Run time",
        [
            "Seconds per stage this session (wall and CPU; a stage skipped on --resume keeps "
            "its first session's figures). The compare stage's trainings and zoo models are "
            "broken down below it."
        ],
        Table(["stage", "wall s", "CPU s"], rows),
    )
