"""The main job end to end on tiny settings (the defaults are exercised by the README)."""

import json

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
    assert latency["best_median_ms"] > 0 and latency["float"]["median_ms"] > 0
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
    assert "Given genotype" in (out / "report.md").read_text()
