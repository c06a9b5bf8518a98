import json

import pytest
from click.testing import CliRunner

from larq_bnas.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    assert "list" in result.output and "summary" in result.output


def test_list_shows_every_model_with_paper_accuracy_and_our_figures():
    result = run("list")
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if row.startswith("bnas-d "))
    assert "57.69" in line and "1.48e8" in line and "28,407,560" in line
    rows = json.loads(run("list", "--json").output)
    by_name = {r["name"]: r for r in rows}
    assert by_name["bnas-a"]["paper_top1"] == 92.70
    assert by_name["bnas-a"]["our_trainable_params"] > 5_000_000


def test_summary_json_has_the_documented_keys():
    result = run(
        "summary", "bnas-mini", "--json", "--cells", "3", "--channels", "8", "--input-size", "16"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in (
        "name",
        "trainable_params",
        "binary_params",
        "float_params",
        "size_mib",
        "bops",
        "flops",
        "ops",
        "ops_paper",
    ):
        assert key in report
    assert report["input_shape"] == [16, 16, 3]
    assert report["ops"] == pytest.approx(report["bops"] / 64 + report["flops"])


def test_summary_table_and_per_layer():
    result = run(
        "summary",
        "bnas-mini",
        "--set",
        "cells=3",
        "--set",
        "channels=4",
        "--input-size",
        "16",
        "--per-layer",
    )
    assert result.exit_code == 0, result.output
    assert "cell0/preprocess0/conv" in result.output and "trainable params" in result.output


def test_summary_of_a_genotype_file(tmp_path):
    from larq_bnas.models.bnas.genotypes import BNAS_IMAGENET

    path = BNAS_IMAGENET.save(tmp_path / "g.json")
    result = run(
        "summary", str(path), "--cells", "3", "--channels", "4", "--input-size", "16", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["binary_convs"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "bnas-x"], "Unknown model 'bnas-x'; valid models are: bnas-mini"),
        (["summary", "bnas-mini", "--set", "depth=3"], "Unknown option 'depth'"),
        (["summary", "bnas-mini", "--set", "stem=round"], "Bad value 'round' for 'stem'"),
        (["summary", "bnas-mini", "--set", "cells"], "is not KEY=VALUE"),
        (["summary", "missing.json"], "does not exist"),
        (["summary", "lqz:NoSuchNet"], "Unknown larq-zoo model 'NoSuchNet'"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
