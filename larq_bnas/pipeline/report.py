"""The main job's report: what a person wants to see after ``larq_bnas run``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from larq_bnas.document import Report, Section, Table, fmt

if TYPE_CHECKING:
    from larq_bnas.pipeline import Pipeline


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


def build_report(pipeline: Pipeline) -> Report:
    out: Path = pipeline.out
    o = pipeline.options
    search = pipeline.result("search") or {}
    train = pipeline.result("train") or {}
    deploy = pipeline.result("convert") or {}
    latency = pipeline.result("benchmark") or {}
    compare = (pipeline.result("compare") or {}).get("models", {})
    size = f"{o.input_size}x{o.input_size}"

    key = [("dataset", f"{o.dataset} (input {size})")]
    if train:
        key += [
            ("test accuracy (top-1)", fmt(train.get("test_top1"), 4)),
            (
                "model",
                f"{o.cells} cells, C = {o.channels}, genotype "
                f"{Path(pipeline.genotype_path()).name}",
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

    # --- costs -----------------------------------------------------------------------
    rows = []
    if train:
        from larq_bnas.costs import model_costs

        ours = model_costs(pipeline._trained_model()).to_dict()  # noqa: SLF001
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
    return report
