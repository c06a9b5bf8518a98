"""Bad input at the command line: every case exits 2 (wrong input) or 1 (failed job)
with one line and no traceback (issue 15). Run in-process with click's CliRunner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from larq_bnas.cli import main

TINY = ["--cells", "3", "--channels", "4", "--input-size", "8"]
PAIRS = [["bin_conv_3x3", 0], ["bin_conv_3x3", 1], ["max_pool_3x3", 0], ["bin_conv_5x5", 2]] * 2
GOOD_GENOTYPE = {
    "normal": PAIRS,
    "normal_concat": [2, 3, 4, 5],
    "reduce": PAIRS,
    "reduce_concat": [2, 3, 4, 5],
}

#: (id, arguments, expected exit code, a piece of the one line printed). In arguments,
#: "F/" stands for the fixture directory (the files made by ``files``).
CASES: list[tuple[str, list[str], int, str]] = [
    # malformed genotypes
    ("genotype-not-json", ["summary", "F/not_json.json"], 2, "not_json.json"),
    ("genotype-empty", ["summary", "F/empty.json"], 2, "empty.json"),
    ("genotype-list", ["summary", "F/list.json"], 2, "list.json"),
    ("genotype-unknown-op", ["summary", "F/unknown_op.json"], 2, "teleport"),
    ("genotype-bad-input-index", ["summary", "F/bad_index.json"], 2, "bad_index.json"),
    ("genotype-missing-key", ["summary", "F/no_reduce.json"], 2, "no_reduce.json"),
    ("genotype-missing-file", ["summary", "F/nothere.json"], 2, "does not exist"),
    ("genotype-to-train", ["train", "F/unknown_op.json", "-o", "F/out-g"], 2, "teleport"),
    # corrupt or mismatched weights
    (
        "evaluate-truncated-weights",
        ["evaluate", "bnas-mini", "--weights", "F/trunc.h5"],
        2,
        "truncated or corrupt",
    ),
    (
        "convert-truncated-weights",
        ["convert", "bnas-mini", "--weights", "F/trunc.h5", "-o", "F/x.tflite"],
        2,
        "truncated or corrupt",
    ),
    (
        "train-truncated-weights",
        ["train", "bnas-mini", "--weights", "F/trunc.h5", "-o", "F/out-w"],
        2,
        "truncated or corrupt",
    ),
    (
        "weights-random-bytes",
        ["evaluate", "bnas-mini", "--weights", "F/garbage.h5"],
        2,
        "not a readable HDF5",
    ),
    ("weights-empty-file", ["summary", "bnas-mini", *TINY[:4]], 0, ""),  # replaced below
    (
        "weights-mismatched",
        ["evaluate", "bnas-mini", "--weights", "F/tiny.weights.h5"],
        2,
        "same model built with the same options",
    ),
    (
        "weights-missing",
        ["evaluate", "bnas-mini", "--weights", "F/nothere.h5"],
        2,
        "does not exist",
    ),
    (
        "weights-directory",
        ["convert", "bnas-mini", "--weights", "F/", "-o", "F/y.tflite"],
        2,
        "directory",
    ),
    # model files
    ("model-lambda-h5-evaluate", ["evaluate", "F/lambda.h5"], 2, "--trust-model-code"),
    ("model-lambda-h5-summary", ["summary", "F/lambda.h5"], 2, "carry code"),
    (
        "model-lambda-h5-convert",
        ["convert", "F/lambda.h5", "-o", "F/l.tflite"],
        2,
        "--trust-model-code",
    ),
    ("model-weights-only-h5", ["summary", "F/tiny.weights.h5"], 2, "weights only"),
    ("model-truncated-h5", ["summary", "F/trunc_model.h5"], 2, "trunc_model.h5"),
    ("model-unknown-name", ["summary", "bnas-zzz"], 2, "bnas-zzz"),
    ("model-unknown-larq-zoo", ["summary", "lqz:NoSuchNet"], 2, "NoSuchNet"),
    ("model-tflite-as-model", ["summary", "F/float.tflite"], 2, "float.tflite"),
    # datasets
    (
        "dataset-unknown",
        ["evaluate", "bnas-mini", "--dataset", "nosuchset", "--data-dir", "F/nodata"],
        2,
        "Unknown dataset 'nosuchset'",
    ),
    (
        "dataset-unprepared",
        ["train", "bnas-mini", "--dataset", "cifar10", "--data-dir", "F/nodata", "-o", "F/out-d"],
        2,
        "not prepared",
    ),
    (
        "dataset-bad-version",
        ["evaluate", "bnas-mini", "--dataset", "cifar10:99.0.0", "--data-dir", "F/nodata"],
        2,
        "99.0.0",
    ),
    (
        "dataset-folder-missing",
        ["train", "bnas-mini", "--dataset", "folder:F/nofolder", "-o", "F/out-f"],
        2,
        "does not exist",
    ),
    (
        "dataset-folder-empty",
        ["evaluate", "bnas-mini", "--dataset", "folder:F/emptydir"],
        2,
        "emptydir",
    ),
    (
        "search-dataset-unknown",
        ["search", "--dataset", "nosuchset", "--data-dir", "F/nodata", "-o", "F/out-s"],
        2,
        "Unknown dataset",
    ),
    # option values
    ("epochs-zero", ["train", "bnas-mini", "--epochs", "0", "-o", "F/o1"], 2, "--epochs"),
    ("batch-negative", ["evaluate", "bnas-mini", "--batch-size", "-1"], 2, "--batch-size"),
    (
        "batch-too-large",
        ["train", "bnas-mini", "--batch-size", "5000", "-o", "F/o2"],
        2,
        "larger than the 1438 training examples",
    ),
    ("cells-too-few", ["summary", "bnas-mini", "--cells", "2"], 2, "--cells"),
    ("set-not-key-value", ["summary", "bnas-mini", "--set", "nonsense"], 2, "KEY=VALUE"),
    ("set-unknown-key", ["summary", "bnas-mini", "--set", "wings=3"], 2, "wings"),
    (
        "strategy-unknown",
        ["train", "bnas-mini", "--strategy", "ring", "-o", "F/o3"],
        2,
        "'ring' is not one of",
    ),
    (
        "recipe-unknown",
        ["train", "bnas-mini", "--recipe", "foo", "-o", "F/o4"],
        2,
        "Unknown recipe 'foo'",
    ),
    ("gamma-zero", ["search", "--gamma", "0", "-o", "F/o5"], 2, "--gamma"),
    ("layer-set-unknown", ["search", "--layer-set", "nosuchop", "-o", "F/o6"], 2, "nosuchop"),
    ("threads-zero", ["benchmark", "F/float.tflite", "--threads", "0"], 2, "--threads"),
    ("stages-unknown", ["run", "--stages", "fly", "-o", "F/o7"], 2, "fly"),
    ("study-unknown", ["study", "nosuchstudy", "-o", "F/o8"], 2, "nosuchstudy"),
    ("study-scale-unknown", ["study", "layer-types", "--scale", "huge", "-o", "F/o9"], 2, "huge"),
    ("command-unknown", ["trian", "bnas-mini"], 2, "No such command 'trian'"),
    ("option-unknown", ["train", "bnas-mini", "--epoch", "3", "-o", "F/o10"], 2, "--epoch"),
    (
        "num-classes-for-train",
        ["train", "bnas-mini", "--num-classes", "3", "-o", "F/o11"],
        2,
        "the dataset sets the number of classes",
    ),
    ("derive-missing-alphas", ["derive", "F/nothere_alphas.json"], 2, "nothere_alphas.json"),
    # output paths
    ("output-under-a-file", ["convert", "bnas-mini", *TINY, "-o", "F/afile/x.tflite"], 2, "afile"),
    ("output-is-a-directory", ["convert", "bnas-mini", *TINY, "-o", "F/emptydir"], 2, "emptydir"),
    ("train-output-is-a-file", ["train", "bnas-mini", *TINY, "-o", "F/afile"], 2, "afile"),
    (
        "output-read-only-fs",
        ["convert", "bnas-mini", *TINY, "-o", "/proc/nope.tflite"],
        2,
        "/proc/nope.tflite",
    ),
    ("resume-nothing", ["train", "bnas-mini", "-o", "F/existing-run"], 2, "--resume"),
    ("resume-other-kind", ["search", "-o", "F/existing-run", "--resume"], 2, "not a 'search' run"),
    # .tflite files
    ("tflite-truncated-inspect", ["inspect", "F/trunc.tflite"], 2, "trunc.tflite"),
    (
        "tflite-truncated-benchmark",
        ["benchmark", "F/trunc.tflite", "--repeats", "1"],
        2,
        "trunc.tflite",
    ),
    ("tflite-text-inspect", ["inspect", "F/text.tflite"], 2, "text.tflite"),
    ("tflite-missing", ["inspect", "F/nothere.tflite"], 2, "nothere.tflite"),
    (
        "tflite-non-lce-native",
        ["benchmark", "F/float.tflite", "--kernel", "nosuchkernel"],
        2,
        "nosuchkernel",
    ),
]
CASES = [c for c in CASES if c[0] != "weights-empty-file"] + [
    (
        "weights-empty-file",
        ["evaluate", "bnas-mini", "--weights", "F/empty.h5"],
        2,
        "not a readable HDF5",
    ),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return make_bad_files(tmp_path_factory.mktemp("bad"))


def make_bad_files(root: Path) -> Path:
    """The bad files: truncated weights, a Lambda model, broken genotypes and .tflite."""
    import numpy as np
    import tensorflow as tf

    from larq_bnas.checkpointing import RunDirectory
    from larq_bnas.zoo.registry import build

    model = build("bnas-mini", input_shape=(8, 8, 3), num_classes=10, cells=3, channels=4)
    model.save_weights(str(root / "tiny.weights.h5"))
    whole = (root / "tiny.weights.h5").read_bytes()
    (root / "trunc.h5").write_bytes(whole[: len(whole) // 2])
    (root / "garbage.h5").write_bytes(np.random.RandomState(0).bytes(4096))
    (root / "empty.h5").write_bytes(b"")
    lam = tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 3)),
            tf.keras.layers.Lambda(lambda x: x * 2.0),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10),
        ]
    )
    lam.save(str(root / "lambda.h5"), save_format="h5")
    lam_bytes = (root / "lambda.h5").read_bytes()
    (root / "trunc_model.h5").write_bytes(lam_bytes[: len(lam_bytes) // 3])
    dense = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    flat = tf.lite.TFLiteConverter.from_keras_model(dense).convert()
    (root / "float.tflite").write_bytes(flat)
    (root / "trunc.tflite").write_bytes(flat[: len(flat) // 2])
    (root / "text.tflite").write_text("this is not a flatbuffer\n")
    (root / "not_json.json").write_text("{normal: [")
    (root / "empty.json").write_text("")
    (root / "list.json").write_text("[1, 2, 3]")
    bad = dict(GOOD_GENOTYPE, normal=[["teleport", 0], *GOOD_GENOTYPE["normal"][1:]])
    (root / "unknown_op.json").write_text(json.dumps(bad))
    bad = dict(GOOD_GENOTYPE, normal=[["conv_3x3", 7], *GOOD_GENOTYPE["normal"][1:]])
    (root / "bad_index.json").write_text(json.dumps(bad))
    (root / "good.json").write_text(json.dumps(GOOD_GENOTYPE))
    (root / "no_reduce.json").write_text(json.dumps({"normal": GOOD_GENOTYPE["normal"]}))
    (root / "emptydir").mkdir()
    (root / "afile").write_text("a file where a directory is expected")
    RunDirectory(root / "existing-run", "train", {"epochs": 1})
    return root


def _args(args: list[str], root: Path) -> list[str]:
    return [a.replace("F/", f"{root}{os.sep}") for a in args]


@pytest.mark.slow
@pytest.mark.parametrize("case, args, code, piece", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_an_honest_exit_code(files, case, args, code, piece):
    result = CliRunner().invoke(main, _args(args, files))
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    if code is not None:
        assert result.exit_code == code, result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith(("Error: ", "Failed: ")), lines[0]
    assert _args([piece], files)[0] in lines[0], lines[0]
    if result.exit_code == 1:  # a failed job names the log holding its traceback
        log = lines[0].rsplit("traceback in ", 1)[1].rstrip(")")
        assert "Traceback (most recent call last)" in Path(log).read_text()


@pytest.mark.slow
def test_the_same_commands_accept_good_files(files):
    """Controls: the failures above come from the bad files, not from the commands."""
    # (the genotype at TINY size: the default network costs a minute for no extra check)
    for args in (["summary", "F/good.json", *TINY], ["inspect", "F/float.tflite"]):
        result = CliRunner().invoke(main, _args(args, files))
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "flag, target",
    [("-o", "afile/x.tflite"), ("-o", "emptydir"), ("--float", "afile/f.tflite")],
)
def test_convert_checks_its_outputs_before_loading_the_model(tmp_path, monkeypatch, flag, target):
    from larq_bnas.cli import deploy

    (tmp_path / "afile").write_text("a file, not a directory")
    (tmp_path / "emptydir").mkdir()
    loaded = []
    monkeypatch.setattr(deploy, "load_cli_model", lambda *a, **k: loaded.append(a))
    args = ["convert", "bnas-mini", "-o", str(tmp_path / "ok.tflite")]
    args += [flag, str(tmp_path / target)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert str(tmp_path / target) in result.output
    assert loaded == []  # refused before any model was built
    assert not (tmp_path / "ok.tflite").exists()


def test_there_are_at_least_40_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 40


def test_run_takes_every_default_from_the_pipeline_options(monkeypatch):
    """`larq_bnas run` with no options runs exactly ``PipelineOptions()``."""
    from larq_bnas.pipeline import stages
    from larq_bnas.pipeline.options import PipelineOptions

    seen: dict = {}

    def fake_run_pipeline(output, resume=False, log=None, **options):
        seen.update(options, output=output, resume=resume)

    monkeypatch.setattr(stages, "run_pipeline", fake_run_pipeline)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    assert (seen.pop("output"), seen.pop("resume")) == ("runs/main", False)
    assert PipelineOptions(**seen) == PipelineOptions()
    assert len(seen) >= 20  # every option of the command reached the pipeline


def test_model_options_reach_the_command_as_one_value():
    from larq_bnas.cli._common import ModelOptions

    opts = ModelOptions(("stem=plain", "pad_values=0"), 3, 4, 8, 5)
    assert opts.options() == {"stem": "plain", "pad_values": "0", "cells": 3, "channels": 4}
    assert opts.kwargs(channels_in=1) == {
        **opts.options(),
        "input_shape": (8, 8, 1),
        "num_classes": 5,
    }
    assert ModelOptions().kwargs() == {}


@pytest.mark.parametrize(
    "args, piece",
    [
        (["train", "bnas-mini"], "'--output' / '-o'"),
        (["search"], "'--output' / '-o'"),
        (["study", "baselines"], "'--output' / '-o'"),
        (["convert", "bnas-mini"], "'-o' / '--output'"),
        (["import-weights", "x.pth.tar"], "'-o' / '--output'"),
    ],
)
def test_a_required_output_is_required(args, piece):
    """The shared ``output_option`` keeps --output required where it was."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"Missing option {piece}" in result.output
