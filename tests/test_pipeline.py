"""The main job end to end on tiny settings (the defaults are exercised by the README),
and its report as a pure function of the saved stage results.

One tiny run (module-scoped fixture) serves every assertion on the outputs: the CLI runs
the search and train stages, refuses to overwrite them without --resume, then the
Python API resumes with other convert/benchmark options, which re-runs convert and every
stage after it while search and train are skipped."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from larq_bnas.cli import main
from larq_bnas.document import fmt
from larq_bnas.models.bnas.genotypes import BNAS_CIFAR, BNAS_IMAGENET
from larq_bnas.pipeline import PipelineOptions, parse_model_entry

TINY = dict(
    search_epochs=1,
    search_cells=3,
    search_channels=4,
    search_input_size=8,
    search_batch_size=64,
    cells=3,
    channels=4,
    train_epochs=1,
    input_size=16,  # the smallest the `run` command takes
    batch_size=256,
    # one cell trained besides the searched one (a training each): the BNAS-A cell and
    # more random cells take the same path (test_compare_draws_another_random_cell_for_each)
    random_cells=1,
    compare_bnas_a_cell=False,
    # not in the zoo: logged and skipped (a zoo model's conversion and benchmark cost
    # about 25 s of CPU; the report's rows for one are checked on hand-written results)
    compare_models=("no-such-model",),
)
TINY_CLI = [
    "--search-epochs",
    "1",
    "--search-cells",
    "3",
    "--search-channels",
    "4",
    "--search-input-size",
    "8",
    "--search-batch-size",
    "64",
    "--cells",
    "3",
    "--channels",
    "4",
    "--epochs",
    "1",
    "--input-size",
    "16",
    "--batch-size",
    "256",
    "--random-cells",
    "1",
    "--compare",
    "no-such-model",
]
REPEATS = 3  # benchmark repeats of the resumed run (the default is 20)


def _json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from larq_bnas.pipeline.stages import run_pipeline

    out = tmp_path_factory.mktemp("pipeline") / "run"
    runner = CliRunner()
    first = runner.invoke(main, ["run", "-o", str(out), *TINY_CLI, "--stages", "search,train"])
    assert first.exit_code == 0, first.output
    stages_after_first = sorted(p.name for p in out.glob("*.json"))
    again = runner.invoke(main, ["run", "-o", str(out), *TINY_CLI])
    logs: list[str] = []
    run_pipeline(
        out,
        resume=True,
        log=logs.append,
        verify_inputs=4,
        benchmark_repeats=REPEATS,
        **TINY,
    )
    return SimpleNamespace(
        out=out, first=first, after_first=stages_after_first, again=again, logs=logs
    )


def test_options_are_validated():
    with pytest.raises(ValueError, match="Unknown stage"):
        PipelineOptions(stages=("search", "deploy"))
    with pytest.raises(ValueError, match="gamma must be positive"):
        PipelineOptions(gammas=(0.0,))
    with pytest.raises(ValueError, match="train_gamma 2 is not one of"):
        PipelineOptions(gammas=(1.0, 3.0), train_gamma=2)
    with pytest.raises(ValueError, match="random_cells must be >= 0"):
        PipelineOptions(random_cells=-1)
    with pytest.raises(ValueError, match="cell_seeds must be >= 1"):
        PipelineOptions(cell_seeds=0)
    assert parse_model_entry("meliusnet cells=3 blocks=4,5,4,4") == (
        "meliusnet",
        {"cells": "3", "blocks": "4,5,4,4"},
    )
    with pytest.raises(ValueError, match="'cells' is not KEY=VALUE"):
        parse_model_entry("bnas-a cells")


def test_given_genotype_skips_the_search_and_train_needs_a_genotype(tmp_path):
    from larq_bnas.pipeline.stages import run_pipeline

    genotype = BNAS_IMAGENET.save(tmp_path / "cell.json")
    done = run_pipeline(
        tmp_path / "given", genotype=str(genotype), stages=("search",), log=lambda _: None
    )
    assert done["search"]["skipped"] is True
    assert done["search"]["genotypes"] == {"given": str(genotype)}
    with pytest.raises(ValueError, match="The train stage needs a genotype"):
        run_pipeline(tmp_path / "none", stages=("train",), log=lambda _: None)
    assert not (tmp_path / "none" / "train").exists()


def test_compare_draws_another_random_cell_for_each(tmp_path, monkeypatch):
    """The tiny run compares one random cell; here three and the BNAS-A cell, with the
    training faked: each random cell is drawn with its own seed (the cells differ), and
    every cell is trained the same way."""
    from larq_bnas.pipeline.stages import Pipeline

    genotype = BNAS_IMAGENET.save(tmp_path / "cell.json")
    options = PipelineOptions(genotype=str(genotype), random_cells=3)
    pipeline = Pipeline(tmp_path / "run", options, log=lambda _: None)
    trained = []

    def fake_train(self, path, directory, seed):
        trained.append((Path(path).name, directory.relative_to(tmp_path / "run"), seed))
        return {"test_top1": 0.5, "ops": 10.0, "size_mib": 0.1}

    monkeypatch.setattr(Pipeline, "_train_cell", fake_train)
    rows = pipeline.compare_cells()
    assert list(rows) == ["given", "random0", "random1", "random2", "bnas-a cell"]
    assert len({json.dumps(row["genotype"]) for row in rows.values()}) == 5
    assert rows["bnas-a cell"]["genotype"] == BNAS_CIFAR.to_dict()
    assert [t[0] for t in trained] == [
        "cell.json",
        "random0.json",
        "random1.json",
        "random2.json",
        "bnas-a-cell.json",
    ]
    assert {t[2] for t in trained} == {0}
    assert [str(t[1]) for t in trained[1:]] == [
        *(f"compare/cells/random{i}/s0" for i in range(3)),
        "compare/cells/bnas-a_cell/s0",
    ]
    assert rows["random1"]["test_top1_mean"] == 0.5 and rows["random1"]["ops"] == 10.0


@pytest.mark.slow
def test_stages_resume_and_rerun_after_changed_options(tiny_run):
    out = tiny_run.out
    assert tiny_run.after_first == ["search.json", "state.json", "train.json"]
    assert "[search] running ..." in tiny_run.first.output
    assert "[train] done in" in tiny_run.first.output
    # the same directory without --resume: refused, nothing overwritten
    assert tiny_run.again.exit_code == 2 and "pass --resume" in tiny_run.again.output
    logs = "\n".join(tiny_run.logs)
    assert "[search] done already, skipped" in logs
    assert "[train] done already, skipped" in logs
    assert "re-running convert and every stage after it" in logs
    assert "verify_inputs: 10 -> 4" in logs and f"benchmark_repeats: 20 -> {REPEATS}" in logs
    state = _json(out / "state.json")
    assert state["finished"] is True
    assert state["options"]["benchmark_repeats"] == REPEATS
    for stage in ("search", "train", "convert", "benchmark", "compare", "report"):
        timing = state["stages"][stage]
        assert timing["done"] and timing["seconds"] > 0 and timing["cpu_seconds"] > 0, stage
        assert _json(out / f"{stage}.json")["seconds"] == timing["seconds"]


@pytest.mark.slow
def test_search_stage_reports_decisiveness_and_feeds_train(tiny_run):
    out = tiny_run.out
    search = _json(out / "search.json")
    assert search["options"]["epochs"] == 1 and search["options"]["cells"] == 3
    assert search["options"]["diversity_tau"] == pytest.approx(7.7 / 50)  # scaled
    for g in ("1", "3"):
        for kind in ("normal", "reduce"):
            weight = search["chosen_weight_mean"][g][kind]
            assert weight == search["decisiveness"][g][kind]["chosen_weight_mean"]
            assert 1 / 7 - 0.01 < weight <= 1.0
            assert len(search["decisiveness"][g][kind]["edges"]) == 8
        assert (out / "search" / f"genotype_gamma{g}.json").exists()
    assert "chosen_weight_mean" in tiny_run.first.output  # logged per gamma
    train = _json(out / "train.json")
    assert train["genotype_path"] == str(out / "search" / "genotype_gamma1.json")
    assert (train["epochs"], train["input_size"], train["options"]) == (
        1,
        16,
        {"cells": 3, "channels": 4},
    )
    assert train["costs"]["ops"] == train["ops"] > 0


@pytest.mark.slow
def test_convert_and_benchmark_stages(tiny_run):
    out = tiny_run.out
    deploy = _json(out / "convert.json")
    assert deploy["binary_convs"] > 0
    assert deploy["accelerated_convs"] == deploy["binary_convs"] - deploy["removed_convs"]
    assert deploy["top1_agreement"] == 1.0
    assert (out / "deploy" / "model.tflite").stat().st_size > 0
    latency = _json(out / "benchmark.json")
    timed = {k: v for k, v in latency["kernels"].items() if "median_ms" in v}
    assert set(latency["kernels"]) == {
        "native",
        "default",
        "indirect_bgemm",
        "indirect_bgemm+xnnpack",
    }
    assert "default" in timed  # LCE's own kernels always run
    for stats in timed.values():
        assert stats["repeats"] == REPEATS
        assert stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    correct = {k: v for k, v in timed.items() if v.get("agrees", True)}
    fastest = min(correct, key=lambda k: correct[k]["median_ms"])
    assert latency["best_kernel"] == fastest
    assert latency["best_median_ms"] == correct[fastest]["median_ms"]
    assert latency["float"]["repeats"] == REPEATS
    assert latency["binary_to_float_ratio"] == pytest.approx(
        latency["best_median_ms"] / latency["float"]["median_ms"]
    )


@pytest.mark.slow
def test_compare_trains_every_cell_the_same_way(tiny_run):
    out = tiny_run.out
    compare = _json(out / "compare.json")
    cells = compare["cells"]
    assert list(cells) == ["searched", "random0"]
    train = _json(out / "train.json")
    assert cells["searched"]["test_top1_mean"] == train["test_top1"]
    assert cells["searched"]["ops"] == train["costs"]["ops"] == train["ops"]
    # the searched cell's seed 0 is the train stage's training, with its time
    assert cells["searched"]["runs"][0]["seconds"] == train["seconds"]
    same = ("epochs", "input_size", "options", "batch_size", "recipe", "seed", "dataset")
    genotypes = set()
    for name in ("random0",):
        r = _json(out / "compare" / "cells" / name.replace(" ", "_") / "s0" / "results.json")
        assert {k: r[k] for k in same} == {k: train[k] for k in same}, name
        row = cells[name]
        assert row["test_top1_mean"] == row["test_top1_min"] == r["test_top1"]
        assert row["ops"] == r["ops"] and row["size_mib"] == r["size_mib"]
        assert row["runs"][0]["seconds"] > 0 and row["runs"][0]["cpu_seconds"] > 0
        genotypes.add(json.dumps(row["genotype"]["normal"]))
    genotypes.add(json.dumps(cells["searched"]["genotype"]["normal"]))
    assert len(genotypes) == 2  # two different cells
    assert compare["models"] == {}
    assert "[compare] no-such-model is not in the zoo; skipped" in tiny_run.logs


@pytest.mark.slow
def test_report_shows_every_stage_and_the_cell_table(tiny_run):
    out = tiny_run.out
    page = (out / "report.html").read_text()
    for title in (
        "Searched cells",
        "How decisive the search was",
        "Training",
        "Searched vs random vs BNAS-A cells",
        "Cost report at 16x16",
        "Conversion to Larq Compute Engine",
        "Latency",
        "Run time",
    ):
        assert title in page, title
    assert page.count("data:image/png;base64,") >= 3  # cells, alphas, curves
    md = (out / "report.md").read_text()
    cells = _json(out / "compare.json")["cells"]
    for row in cells.values():
        assert f"{row['test_top1_mean']:.4g}" in md
    compare = _json(out / "compare.json")
    assert f"| compare | {fmt(compare['seconds'])} |" in md  # the compare stage's wall time


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
        "search": {
            "genotypes": {"1": BNAS_CIFAR.to_dict()},
            "decisiveness": {"1": d},
            "seconds": 100.0,
            "cpu_seconds": 150.0,
        },
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
            "seconds": 50.0,
            "cpu_seconds": 60.0,
        },
        "compare": {
            "seconds": 30.0,
            "cpu_seconds": 40.0,
            "models": {
                "bnas-mini cells=3": {
                    "costs": {**costs, "ops": 99.0},
                    "deploy": {
                        "binary_convs": 6,
                        "removed_convs": 1,
                        "accelerated_convs": 5,
                        "accelerated_bops_share": 1.0,
                        "size_bytes": 5000,
                        "predicted_size_bytes": 4900,
                    },
                    "latency": {
                        "best_kernel": "native",
                        "best_median_ms": 0.5,
                        "float": {"median_ms": 2.0},
                        "binary_to_float_ratio": 0.25,
                    },
                    "seconds": 4.0,
                    "cpu_seconds": 5.0,
                }
            },
            "cells": {
                name: {
                    "description": name,
                    "genotype": g.to_dict(),
                    "runs": [
                        {"seed": 0, "test_top1": top1, "seconds": 7.0, "cpu_seconds": 9.0},
                        {"seed": 1, "test_top1": top1 - 0.1, "seconds": 8.0, "cpu_seconds": 9.5},
                    ],
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
    assert table.rows[1][3] == "0.6011 - 0.7011 (± 0.0500)"  # the seed spread
    edges = sections["How decisive the search was"].table.rows
    assert len(edges) == 16 and {row[3] for row in edges} == {"bin_conv_3x3"}
    assert edges[0][4] == pytest.approx(np.e / (np.e + 6))
    assert dict(report.key_figures)["OPs"] == "1,234"
    timing = sections["Run time"].table.rows
    assert timing[:3] == [["search", 100.0, 150.0], ["train", 50.0, 60.0], ["compare", 30.0, 40.0]]
    assert timing[3] == ["  compare: searched, seed 0", 7.0, 9.0]
    assert timing[-2] == ["  compare: bnas-mini cells=3", 4.0, 5.0]
    assert len(timing) == 3 + 6 + 1 + 1
    costs_rows = sections["Cost report at 16x16"].table.rows
    assert [r[0] for r in costs_rows] == [
        "this run (searched)",
        "bnas-mini cells=3 (random weights)",
    ]
    assert costs_rows[1][6] == 99.0 and costs_rows[1][7] is None  # untrained: no accuracy
    conversion = sections["Conversion to Larq Compute Engine"].table.rows
    assert conversion == [["bnas-mini cells=3", 6, 1, 5, 1.0, 5000, 4900, None, None]]
    latency = sections["Latency (batch 1, this machine)"].table.rows
    assert latency == [["bnas-mini cells=3", "native", 0.5, 2.0, 0.25]]
    assert timing[-1] == ["total", 180.0, 250.0]
