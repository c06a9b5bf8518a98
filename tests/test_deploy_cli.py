"""`larq_bnas convert`, `inspect` and `benchmark`, and the deployment examples, on tiny
models: every option and every error path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from larq_bnas import converters, runtime
from larq_bnas.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ("bnas", "--cells", "3", "--channels", "8", "--input-size", "16")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _load_example(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _kernel_cache(kernel_cache):
    return kernel_cache


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """`larq_bnas convert` of a tiny BNAS network with --float, --verify and --report."""
    out = tmp_path_factory.mktemp("convert")
    paths = {
        "lce": out / "tiny.tflite",
        "float": out / "tiny_float.tflite",
        "report": out / "tiny.json",
    }
    result = run(
        "convert",
        *TINY,
        "--num-classes",
        5,
        "--set",
        "pad_values=1.0",
        "-o",
        paths["lce"],
        "--float",
        paths["float"],
        "--verify",
        3,
        "--report",
        paths["report"],
        "--random-batchnorm",
    )
    return {"result": result, **paths}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny zero-padded larq model saved as .h5, and other weights for it."""
    out = tmp_path_factory.mktemp("saved")
    x = inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="stem")(x)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    x = lq.layers.QuantConv2D(
        32,
        3,
        padding="same",
        pad_values=0.0,
        use_bias=False,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        name="bconv",
    )(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4, name="head")(x))
    model.save(out / "model.h5")
    converters.randomize_batchnorm(model, seed=5)
    model.save_weights(out / "other.weights.h5")
    return {
        "path": out / "model.h5",
        "weights": out / "other.weights.h5",
        "model": model,
        "dir": out,
    }


@pytest.fixture(scope="module")
def plain_lce(saved_model):
    """The saved model (its saved weights) converted by the library, once."""
    lce = saved_model["dir"] / "plain.tflite"
    converters.save(converters.convert(tf.keras.models.load_model(saved_model["path"])), lce)
    return lce


# ---------------------------------------------------------------- convert


def test_convert_writes_files_and_prints_the_report(converted):
    result = converted["result"]
    assert result.exit_code == 0, result.output
    assert "8/8 became LceBconv2d" in result.stdout
    assert "accelerated BOPs      100.0 %" in result.stdout
    assert "max_abs_diff" in result.stdout and "top1_agreement        1" in result.stdout
    assert f"wrote {converted['lce']} and {converted['float']}" in result.stdout
    assert "WARNING" not in result.stderr
    report = json.loads(converted["report"].read_text())
    for key in (
        "op_counts",
        "binary_convs",
        "accelerated_convs",
        "accelerated_bops_share",
        "not_accelerated",
        "size_bytes",
        "predicted_size_bytes",
        "max_abs_diff",
        "mean_abs_diff",
        "top1_agreement",
    ):
        assert key in report, key
    assert report["op_counts"]["LceBconv2d"] == report["binary_convs"] == 8
    assert report["accelerated_bops_share"] == 1.0 and report["not_accelerated"] == []
    assert report["size_bytes"] == converted["lce"].stat().st_size
    assert 0.9 < report["size_bytes"] / report["predicted_size_bytes"] < 1.1
    assert report["max_abs_diff"] < 1e-3 and report["top1_agreement"] == 1.0
    assert report["n"] == 3 and report["untrained_batchnorm"] is False
    # each kernel it ran, and the verdict
    assert report["flatbuffer_ok"] is True and report["wrong_kernels"] == []
    for name in ("reference", "default", "indirect_bgemm", "native"):
        assert f"kernel {name}" in result.stdout
    assert "verdict               every kernel run agrees with Keras" in result.stdout
    assert converters.read(converted["float"]).custom_ops == []


def test_convert_saved_model_with_weights_xcore_strict(saved_model, tmp_path):
    """A saved .h5 model plus --weights, converted for xcore: its zero-padded binary conv
    stays float, which is reported on stderr and, with --strict, fails the command."""
    out = tmp_path / "xcore.tflite"
    result = run(
        "convert",
        saved_model["path"],
        "--weights",
        saved_model["weights"],
        "-o",
        out,
        "--target",
        "xcore",
        "--strict",
        "--report",
        tmp_path / "r.json",
    )
    assert result.exit_code == 1, result.output
    assert out.exists()
    assert "NOT ACCELERATED       bconv: zero padding is not supported on xcore" in result.stdout
    assert "WARNING: binary layer not accelerated: 1 of 1 binary layers" in result.stderr
    assert "WARNING: binary layer not accelerated: bconv stayed float" in result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["target"] == "xcore" and report["accelerated_bops_share"] == 0.0
    assert report["untrained_batchnorm"] is False  # --weights were loaded
    # The file computes with the loaded weights, not the saved ones.
    x = np.random.RandomState(0).randn(2, 8, 8, 3).astype(np.float32)
    got = runtime.Predictor(out, kernel="reference").predict(x)
    np.testing.assert_allclose(got, saved_model["model"](x, training=False).numpy(), atol=1e-3)


def test_convert_int8_io(saved_model, tmp_path):
    result = run("convert", saved_model["path"], "-o", tmp_path / "no.tflite", "--int8-io")
    assert result.exit_code == 2
    assert "int8 input/output needs an int8-quantized model" in result.output
    assert "--default-int8-range" in result.output
    assert not (tmp_path / "no.tflite").exists()
    out = tmp_path / "int8.tflite"
    result = run(
        "convert",
        saved_model["path"],
        "-o",
        out,
        "--int8-io",
        "--default-int8-range",
        -3,
        3,
        "--verify",
        2,
    )
    assert result.exit_code == 0, result.output
    info = json.loads(run("inspect", out, "--json").stdout)
    assert info["inputs"] == [{"shape": [1, 8, 8, 3], "type": "int8"}]
    assert info["outputs"] == [{"shape": [1, 4], "type": "int8"}]


def test_convert_verify_fails_when_the_flatbuffer_disagrees(
    saved_model, plain_lce, tmp_path, monkeypatch
):
    """A flatbuffer that is not the Keras model (here: converted from other weights, the
    saved ones, while the command loads --weights): the reference kernel disagrees, and
    `convert --verify` exits 1 saying so."""
    from larq_bnas import converters as conv

    monkeypatch.setattr(conv, "convert", lambda model, **kwargs: plain_lce.read_bytes())
    out = tmp_path / "x.tflite"
    result = run(
        "convert",
        saved_model["path"],
        "--weights",
        saved_model["weights"],
        "-o",
        out,
        "--verify",
        2,
    )
    assert result.exit_code == 1, result.output
    assert "Error: verification failed: the flatbuffer is at fault" in result.stderr
    assert "kernel reference" in result.stdout and "DISAGREES with Keras" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("convert", *TINY, "-o", "x.tflite", "--target", "riscv"), "Invalid value for '--target'"),
        (("convert", "nosuchnet", "-o", "x.tflite"), "Unknown model 'nosuchnet'"),
        (
            ("convert", "missing_genotype.json", "-o", "x.tflite"),
            "Genotype file 'missing_genotype.json' does not exist",
        ),
        (("convert", *TINY, "-o", "x.tflite", "--set", "cells"), "is not KEY=VALUE"),
        (("convert", *TINY, "-o", "x.tflite", "--set", "colour=blue"), "colour"),
        (
            ("convert", *TINY, "-o", "x.tflite", "--weights", "no_such.weights.h5"),
            "no_such.weights.h5",
        ),
        (("convert", *TINY), "Missing option '-o'"),
        (("convert", *TINY, "-o", "x.tflite", "--verify", "-1"), "--verify"),
    ],
)
def test_convert_errors_exit_2(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.tflite").exists()


# ---------------------------------------------------------------- inspect


def test_inspect_text_and_json(converted):
    text = run("inspect", converted["lce"])
    assert text.exit_code == 0, text.output
    assert "LceBconv2d" in text.stdout and "LceBconv2d ops:" in text.stdout
    assert "file size" in text.stdout and "float32[1, 16, 16, 3]" in text.stdout
    assert "float32[1, 5]" in text.stdout  # --num-classes 5
    info = json.loads(run("inspect", converted["lce"], "--json").stdout)
    assert info["op_counts"]["LceBconv2d"] == 8 and info["lce"] is True
    assert info["size_bytes"] == converted["lce"].stat().st_size
    assert info["weights_bytes"] + info["graph_bytes"] == info["size_bytes"]
    assert len(info["bconvs"]) == 8
    float_info = json.loads(run("inspect", converted["float"], "--json").stdout)
    assert float_info["lce"] is False and "LceBconv2d" not in float_info["op_counts"]


def test_inspect_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_text("hello")
    for path, message in [
        (bad, "not a TFLite flatbuffer"),
        (tmp_path / "missing.tflite", "does not exist"),
        (tmp_path, "is a directory"),
    ]:
        result = run("inspect", path)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- benchmark


def test_benchmark_json_with_float_file(converted):
    result = run(
        "benchmark",
        converted["lce"],
        "--threads",
        1,
        "--repeats",
        2,
        "--warmup",
        1,
        "--kernel",
        "default",
        "--kernel",
        "indirect_bgemm",
        "--compare-float",
        converted["float"],
        "--json",
    )
    assert result.exit_code == 0, result.output
    timing = json.loads(result.stdout)
    assert timing["threads"] == 1 and timing["repeats"] == 2 and timing["warmup"] == 1
    assert set(timing["kernels"]) == {"default", "indirect_bgemm"}
    assert timing["best_kernel"] in timing["kernels"]
    for entry in timing["kernels"].values():
        assert entry["p10_ms"] <= entry["median_ms"] <= entry["p90_ms"]
    assert timing["binary_to_float_ratio"] == pytest.approx(
        timing["best_median_ms"] / timing["float"]["median_ms"]
    )
    # The fastest kernel is remembered for the library's Predictor.
    assert runtime.cached_kernel(converted["lce"].read_bytes(), 1) == timing["best_kernel"]


def test_benchmark_text_all_kernels_and_float_from_a_model(saved_model, plain_lce):
    result = run(
        "benchmark",
        plain_lce,
        "--repeats",
        1,
        "--warmup",
        0,
        "--compare-float",
        saved_model["path"],
    )
    assert result.exit_code == 0, result.output
    lines = {name: "" for name in runtime.KERNELS}
    for line in result.stdout.splitlines():
        for name in runtime.KERNELS:
            if line.strip().startswith(f"LCE {name} "):
                lines[name] = line
    for name, line in lines.items():
        assert line, f"no line for {name}"
        # every choice ran (the native kernels too: this machine has a compiler) and
        # agrees with the reference kernel
        assert "failed" not in line and " agrees with reference (max diff" in line, line
    assert sum("<- fastest" in line for line in lines.values()) == 1
    assert "float TFLite (tf.lite)" in result.stdout and "/ float latency" in result.stdout


def test_benchmark_errors_exit_2(converted, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    cases = [
        (("benchmark", tmp_path / "missing.tflite"), "does not exist"),
        (("benchmark", bad), "not a TFLite flatbuffer"),
        (("benchmark", converted["lce"], "--kernel", "turbo"), "valid kernels are"),
        (
            ("benchmark", converted["lce"], "--compare-float", tmp_path / "nofloat.tflite"),
            "does not exist",
        ),
        (("benchmark", converted["lce"], "--threads", 0), "--threads"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- examples


def test_device_inference_app(converted, capsys):
    app = _load_example("examples/device/lce_inference.py")
    out = app.main([str(converted["lce"]), "--threads", "1", "--repeats", "2", "--top", "3"])
    printed = capsys.readouterr().out
    assert out["kernel"] in ("default", "indirect_bgemm")
    assert len(out["top"]) == 3 and out["latency_ms"] > 0
    assert "kernel  " in printed and "1. class" in printed
    # Scores are the Keras model's softmax outputs: they sum to one.
    assert out["scores"].shape == (5,) and abs(float(out["scores"].sum()) - 1) < 1e-4
    # A .npy input and a forced kernel.
    x = np.random.RandomState(1).randn(16, 16, 3).astype(np.float32)
    np.save(converted["lce"].parent / "x.npy", x)
    forced = app.main(
        [
            str(converted["lce"]),
            "--image",
            str(converted["lce"].parent / "x.npy"),
            "--kernel",
            "reference",
            "--repeats",
            "1",
        ]
    )
    expected = runtime.Predictor(converted["lce"], kernel="reference").predict(x[None])
    np.testing.assert_allclose(forced["scores"], expected[0], atol=1e-6)
    with pytest.raises(SystemExit):
        app.main([str(converted["lce"].parent / "missing.tflite")])


@pytest.mark.slow
def test_convert_larq_zoo_example_tiny(tmp_path):
    example = _load_example("examples/convert_larq_zoo.py")
    report = example.main(
        ["QuickNetSmall", "--tiny", "--out", str(tmp_path), "--threads", "1", "--repeats", "1"]
    )
    assert report["model"] == "lqz:QuickNetSmall" and report["input_size"] == 32
    assert report["binary_convs"] == report["accelerated_convs"] > 0
    assert report["accelerated_bops_share"] == 1.0
    assert report["flatbuffer_ok"] is True and report["mean_abs_diff"] < 1e-4
    assert report["wrong_kernels"] == [], report["verdict"]
    assert report["latency"]["best_kernel"] in ("default", "indirect_bgemm")
    for name in ("QuickNetSmall.tflite", "QuickNetSmall_float.tflite", "QuickNetSmall_report.json"):
        assert (tmp_path / name).exists()
