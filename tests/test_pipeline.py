"""The main job end to end on tiny settings (the defaults are exercised by the README),
and its report as a pure function of the saved stage results."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from larq_bnas.cli import main
from larq_bnas.models.bnas.genotypes import BNAS_IMAGENET
from larq_bnas.pipeline import PipelineOptions, parse_model_entry

TINY_RUN = [
    "--search-epochs",
    "1",
    "--search-cells",
    "3",
    "--search-channels",
    "4",
    "--search-input-size",
    "8",
    "--search-batch-size",
    "32",
    "--cells",
    "3",
    "--channels",
    "4",
    "--epochs",
    "1",
    "--input-size",
    "16",
    "--compare",
    "bnas-mini cells=3 channels=4",
]


def test_options_are_validated():
    with pytest.raises(ValueError, match="Unknown stage"):
        PipelineOptions(stages=("search", "deploy"))
    with pytest.raises(ValueError, match="gamma must be positive"):
        PipelineOptions(gammas=(0.0,))
    with pytest.raises(ValueError, match="train_gamma 2 is not one of"):
        PipelineOptions(gammas=(1.0, 3.0), train_gamma=2)
    assert parse_model_entry("meliusnet cells=3 blocks=4,5,4,4") == (
        "meliusnet",
        {"cells": "3", "blocks": "4,5,4,4"},
    )
    with pytest.raises(ValueError, match="'cells' is not KEY=VALUE"):
        parse_model_entry("bnas-a cells")


@pytest.mark.slow
def test_run_with_a_given_genotype_resumes_stage_by_stage(tmp_path):
    genotype = BNAS_IMAGENET.save(tmp_path / "cell.json")
    out = tmp_path / "run"
    runner = CliRunner()
    args = ["run", "-o", str(out), "--genotype", str(genotype), *TINY_RUN]
    first = runner.invoke(main, [*args, "--stages", "train"])
    assert first.exit_code == 0, first.output
    assert (out / "train.json").exists() and not (out / "convert.json").exists()
    again = runner.invoke(main, args)
    assert again.exit_code == 2 and "pass --resume" in again.output
    result = runner.invoke(main, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert "[train] done already, skipped" in result.output
    deploy = json.loads((out / "convert.json").read_text())
    assert deploy["binary_convs"] > 0
    assert deploy["accelerated_convs"] == deploy["binary_convs"] - deploy["removed_convs"]
    assert deploy["top1_agreement"] == 1.0
    assert (out / "deploy" / "model.tflite").stat().st_size > 0
    latency = json.loads((out / "benchmark.json").read_text())
    timed = {k: v for k, v in latency["kernels"].items() if "median_ms" in v}
    assert set(latency["kernels"]) == {
        "native",
        "default",
        "indirect_bgemm",
        "indirect_bgemm+xnnpack",
    }
    assert "default" in timed  # LCE's own kernels always run
    for stats in timed.values():
        assert stats["repeats"] == 20 and stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    correct = {k: v for k, v in timed.items() if v.get("agrees", True)}
    fastest = min(correct, key=lambda k: correct[k]["median_ms"])
    assert latency["best_kernel"] == fastest
    assert latency["best_median_ms"] == correct[fastest]["median_ms"]
    assert latency["float"]["repeats"] == 20
    assert latency["binary_to_float_ratio"] == pytest.approx(
        latency["best_median_ms"] / latency["float"]["median_ms"]
    )
    page = (out / "report.html").read_text()
    for title in (
        "Training",
        "Cost report at 16x16",
        "Conversion to Larq Compute Engine",
        "Latency",
    ):
        assert title in page
    assert "bnas-mini cells=3 channels=4" in page
    assert page.count("data:image/png;base64,") >= 1
    md = (out / "report.md").read_text()
    assert "Given genotype" in md
    # the given cell against 2 random cells and the BNAS-A cell, trained the same way
    cells = json.loads((out / "compare.json").read_text())["cells"]
    assert list(cells) == ["given", "random0", "random1", "bnas-a cell"]
    train = json.loads((out / "train.json").read_text())
    assert cells["given"]["test_top1_mean"] == train["test_top1"]
    assert cells["given"]["ops"] == train["costs"]["ops"] == train["ops"]
    for name in ("random0", "random1", "bnas-a cell"):
        r = json.loads(
            (out / "compare" / "cells" / name.replace(" ", "_") / "s0" / "results.json").read_text()
        )
        assert cells[name]["test_top1_mean"] == r["test_top1"]
        assert f"{r['test_top1']:.4g}" in md
    assert "Searched vs random vs BNAS-A cells" in md


def test_report_is_a_pure_function_of_the_saved_results(tmp_path):
    """No model is built: the report is rendered from hand-written stage results, and
    importing it pulls in neither TensorFlow nor the stages."""
    code = (
        "import sys, larq_bnas.pipeline.report; "
        "bad = [m for m in ('tensorflow', 'larq_bnas.pipeline.stages') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

    from larq_bnas.models.bnas.genotypes import BNAS_CIFAR
    from larq_bnas.pipeline.report import build_report
    from larq_bnas.search.derive import decisiveness, random_genotype

    a = np.zeros((14, 7))
    a[:, 5] = 1.0  # bin_conv_3x3 everywhere: weight e / (e + 6) = 0.312
    d = decisiveness(a, a)
    costs = {k: 1 for k in ("trainable_params", "binary_params", "size_mib", "bops", "flops")}
    results = {
        "search": {"genotypes": {"1": BNAS_CIFAR.to_dict()}, "decisiveness": {"1": d}},
        "train": {
            "epochs": 1,
            "recipe": "digits",
            "batch_size": 8,
            "test_top1": 0.8123,
            "test_top5": 1.0,
            "best_test_top1": 0.8123,
            "test_loss": 0.5,
            "size_mib": 0.1,
            "ops": 1234.0,
            "costs": {**costs, "ops": 1234.0},
            "genotype_path": "x/genotype_gamma1.json",
        },
        "compare": {
            "models": {},
            "cells": {
                name: {
                    "description": name,
                    "genotype": g.to_dict(),
                    "runs": [{"seed": 0, "test_top1": top1}, {"seed": 1, "test_top1": top1 - 0.1}],
                    "test_top1_mean": top1 - 0.05,
                    "test_top1_min": top1 - 0.1,
                    "test_top1_max": top1,
                    "ops": 1000.0,
                    "size_mib": 0.1,
                }
                for name, g, top1 in (
                    ("searched", BNAS_CIFAR, 0.8123),
                    ("random0", random_genotype(0), 0.7011),
                    ("bnas-a cell", BNAS_CIFAR, 0.6522),
                )
            },
        },
    }
    for stage, result in results.items():
        (tmp_path / f"{stage}.json").write_text(json.dumps(result))
    report = build_report(tmp_path, {"cells": 3, "channels": 4, "cell_seeds": 2})
    sections = {s.title: s for s in report.sections}
    table = sections["Searched vs random vs BNAS-A cells"].table
    assert [row[0] for row in table.rows] == ["searched", "random0", "bnas-a cell"]
    assert [row[2] for row in table.rows] == pytest.approx([0.7623, 0.6511, 0.6022])
    assert table.rows[1][3] == "0.6011 - 0.7011"  # the seed spread
    edges = sections["How decisive the search was"].table.rows
    assert len(edges) == 16 and {row[3] for row in edges} == {"bin_conv_3x3"}
    assert edges[0][4] == pytest.approx(np.e / (np.e + 6))
    assert dict(report.key_figures)["OPs"] == "1,234"
