"""larq_bnas.converters: LCE conversion, flatbuffer census, acceleration report,
verification, benchmark and the Predictor, on tiny models (a conversion takes seconds)."""

from __future__ import annotations

import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from larq_bnas import converters, runtime
from larq_bnas.converters.verify import VERIFY_KERNELS
from larq_bnas.costs import model_costs
from larq_bnas.models.bnas.ops import BinaryConv
from larq_bnas.zoo.registry import build, find_spec


@pytest.fixture(scope="module")
def tiny():
    """A 3-cell, C=8 BNAS network at 16x16 with trained-like BatchNorms, and its files."""
    tf.keras.utils.set_random_seed(1)
    model = build("bnas", input_shape=(16, 16, 3), cells=3, channels=8)
    converters.randomize_batchnorm(model, seed=1)
    return {
        "model": model,
        "lce": converters.convert(model),
        "float": converters.convert_float(model),
    }


@pytest.fixture()
def cache_dir(kernel_cache):
    return kernel_cache


def _quant_conv(filters, name, *, pad_values=1.0, groups=1, dilation=1, strides=1):
    return lq.layers.QuantConv2D(
        filters,
        3,
        padding="same",
        pad_values=pad_values,
        groups=groups,
        strides=strides,
        dilation_rate=dilation,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name=name,
    )


def _edge_model():
    """One convertible binary conv and three binary layers LCE cannot accelerate."""
    x = inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same", name="stem")(x)
    x = tf.keras.layers.BatchNormalization(name="bn0")(x)
    x = _quant_conv(64, "good")(x)
    x = tf.keras.layers.BatchNormalization(name="bn1")(x)
    x = _quant_conv(32, "grouped16", groups=4)(x)  # 16 input channels per group
    x = tf.keras.layers.BatchNormalization(name="bn2")(x)
    x = lq.layers.QuantDepthwiseConv2D(
        3,
        padding="same",
        input_quantizer="ste_sign",
        depthwise_quantizer="ste_sign",
        depthwise_constraint="weight_clip",
        use_bias=False,
        name="depthwise",
    )(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = lq.layers.QuantDense(
        16,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name="qdense",
    )(x)
    x = tf.keras.layers.Dense(4, activation="softmax", name="head")(x)
    return tf.keras.Model(inputs, x)


def _zero_padded_model():
    x = inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(32, 3, padding="same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = _quant_conv(32, "zero_padded", pad_values=0.0)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4)(x))


# ---------------------------------------------------------------- flatbuffer census


def test_read_counts_ops_and_sizes(tiny):
    info = converters.read(tiny["lce"])
    costs = model_costs(tiny["model"])
    assert info.op_counts["LceBconv2d"] == costs.binary_convs == 8
    assert info.op_counts["LceQuantize"] >= 1
    assert "LceBconv2d" in info.custom_ops and "CONV_2D" not in info.custom_ops
    assert info.size_bytes == len(tiny["lce"])
    assert 0 < info.buffer_bytes < info.size_bytes
    assert info.graph_bytes == info.size_bytes - info.buffer_bytes
    assert info.input_shapes == [(1, 16, 16, 3)] and info.input_types == ["float32"]
    assert info.output_shapes == [(1, 10)]
    as_dict = info.to_dict()
    assert as_dict["lce"] is True and len(as_dict["bconvs"]) == 8
    # BNAS convs are one-padded ("same", pad 1) or 1x1 "valid".
    for row in as_dict["bconvs"]:
        assert row["padding"] == "VALID" or row["pad_values"] == 1, row
        assert row["kernel_size"] in ([1, 1], [3, 3], [5, 5])
    assert "LceBconv2d ops:" in info.table()


def test_read_float_file_has_no_lce_ops(tiny):
    info = converters.read(tiny["float"])
    assert info.custom_ops == [] and info.to_dict()["lce"] is False
    assert info.op_counts["CONV_2D"] >= 8  # every binary conv is a float conv here


def test_read_rejects_bad_input(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"definitely not a flatbuffer")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        converters.read(bad)
    with pytest.raises(ValueError, match="TFL3"):
        converters.read(b"xx")
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        converters.read(tmp_path / "missing.tflite")


# ---------------------------------------------------------------- acceleration report


def test_report_fully_accelerated(tiny):
    report = converters.acceleration_report(tiny["model"], converters.read(tiny["lce"]))
    assert report["binary_convs"] == report["accelerated_convs"] == 8
    assert report["accelerated_bops_share"] == 1.0
    assert report["binary_bops"] == report["accelerated_bops"] == model_costs(tiny["model"]).bops
    assert report["not_accelerated"] == [] and report["warnings"] == []
    assert report["untrained_batchnorm"] is False
    assert report["op_counts"] == converters.read(tiny["lce"]).op_counts
    # Size within 10 % of the prediction; constants within 5 %.
    assert 0.9 < report["size_ratio"] < 1.1
    assert report["size_bytes"] == len(tiny["lce"])
    assert abs(report["weights_bytes"] / report["predicted_weights_bytes"] - 1) < 0.05
    text = converters.format_report(report)
    assert "8/8 became LceBconv2d" in text and "100.0 %" in text
    assert "NOT ACCELERATED" not in text
    json.dumps(report)  # JSON-serializable as it is


def test_report_explains_what_stayed_float():
    model = _edge_model()
    converters.randomize_batchnorm(model)
    info = converters.read(converters.convert(model))
    report = converters.acceleration_report(model, info)
    assert info.op_counts["LceBconv2d"] == 1
    assert report["binary_layers"] == 4 and report["binary_convs"] == 2
    assert report["accelerated_convs"] == 1
    reasons = {item["layer"]: item["reason"] for item in report["not_accelerated"]}
    assert set(reasons) == {"grouped16", "depthwise", "qdense"}
    assert "16 input channels per group" in reasons["grouped16"]
    assert "multiple of 32" in reasons["grouped16"]
    assert "depthwise" in reasons["depthwise"]
    assert "fully-connected" in reasons["qdense"]
    costs = {c.name: c.bops for c in model_costs(model).layers}
    total = sum(costs[name] for name in ("good", "grouped16", "depthwise", "qdense"))
    assert report["accelerated_bops_share"] == pytest.approx(costs["good"] / total)
    assert report["warnings"][0].startswith("3 of 4 binary layers")
    assert any("grouped16 stayed float" in w for w in report["warnings"])
    assert "NOT ACCELERATED       grouped16" in converters.format_report(report)


def test_zero_padding_converts_on_arm_but_not_on_xcore():
    model = _zero_padded_model()
    converters.randomize_batchnorm(model)
    arm = converters.acceleration_report(model, converters.read(converters.convert(model)))
    assert arm["accelerated_convs"] == 1 and arm["not_accelerated"] == []
    xcore_fb = converters.convert(model, target="xcore")
    xcore = converters.acceleration_report(model, converters.read(xcore_fb), target="xcore")
    assert xcore["accelerated_convs"] == 0 and xcore["accelerated_bops_share"] == 0.0
    assert xcore["not_accelerated"] == [
        {
            "layer": "zero_padded",
            "reason": "zero padding is not supported on xcore: build with pad_values=1.0",
        }
    ]


def test_untrained_batchnorm_keeps_dilated_convs_float_and_random_stats_fix_it():
    """Two dilated binary convs on one input: with fresh (identical) BatchNorms TensorFlow
    merges the branches, the shared SpaceToBatchND stops LCE's fusion; trained-like
    BatchNorm statistics convert fully."""

    def model():
        x = inputs = tf.keras.Input((8, 8, 3))
        x = tf.keras.layers.Conv2D(16, 3, padding="same")(x)
        a = BinaryConv(16, 3, dilation_rate=2, name="dil_a")(x)
        b = BinaryConv(16, 3, dilation_rate=2, name="dil_b")(x)
        x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Add()([a, b]))
        return tf.keras.Model(inputs, tf.keras.layers.Dense(4)(x))

    fresh = model()
    assert converters.untrained_batchnorm(fresh)
    report = converters.acceleration_report(fresh, converters.read(converters.convert(fresh)))
    assert report["accelerated_convs"] == 0 and report["untrained_batchnorm"]
    assert all(
        "SpaceToBatchND" in item["reason"] and "--random-batchnorm" in item["reason"]
        for item in report["not_accelerated"]
    )
    trained = converters.randomize_batchnorm(model())
    assert not converters.untrained_batchnorm(trained)
    report = converters.acceleration_report(trained, converters.read(converters.convert(trained)))
    assert report["accelerated_convs"] == 2 and report["not_accelerated"] == []


# ---------------------------------------------------------------- verification


def test_verify_agrees_with_keras(tiny):
    result = converters.verify(tiny["model"], tiny["lce"], n=6)
    assert result["n"] == 6 and result["kernel"] == "reference"
    assert result["max_abs_diff"] < 1e-3 and result["mean_abs_diff"] <= result["max_abs_diff"]
    assert result["top1_agreement"] == 1.0 and result["flatbuffer_ok"] is True
    # every kernel it ran is reported, each agreeing here
    assert set(result["kernels"]) == set(VERIFY_KERNELS)
    ran = {k: v for k, v in result["kernels"].items() if "error" not in v}
    assert {"reference", "default", "indirect_bgemm"} <= set(ran)
    assert all(v["agrees"] and v["max_abs_diff"] < 1e-3 for v in ran.values())
    assert (
        result["wrong_kernels"] == [] and result["verdict"] == "every kernel run agrees with Keras"
    )
    inputs = np.random.RandomState(3).uniform(-2, 2, (2, 16, 16, 3)).astype(np.float32)
    given = converters.verify(tiny["model"], tiny["lce"], inputs=inputs)
    assert given["n"] == 2 and given["max_abs_diff"] < 1e-3


def test_verify_needs_an_input(tiny):
    with pytest.raises(ValueError, match="at least one input"):
        converters.verify(tiny["model"], tiny["lce"], n=0)


def test_multi_output_models_verify_and_predict_every_output(kernel_cache):
    """Issue 15: verify compares every output; Predictor.predict returns every output."""
    x = inputs = tf.keras.Input((6, 6, 32))
    a = tf.keras.layers.BatchNormalization()(_quant_conv(32, "first")(x))
    b = tf.keras.layers.BatchNormalization()(_quant_conv(32, "second")(a))
    head = tf.keras.layers.Dense(3)(tf.keras.layers.GlobalAveragePooling2D()(b))
    model = converters.randomize_batchnorm(tf.keras.Model(inputs, [a, head]), seed=2)
    flatbuffer = converters.convert(model)
    result = converters.verify(model, flatbuffer, n=2, kernels=("reference", "native"))
    assert result["flatbuffer_ok"] is True and result["max_abs_diff"] < 1e-3
    xs = np.random.RandomState(4).randn(3, 6, 6, 32).astype(np.float32)
    expected = [v.numpy() for v in model(xs, training=False)]
    for kernel in ("reference", "native"):
        got = runtime.Predictor(flatbuffer, kernel=kernel, threads=1).predict(xs)
        assert isinstance(got, list) and len(got) == 2, kernel
        by_shape = {g.shape: g for g in got}
        for e in expected:
            np.testing.assert_allclose(by_shape[e.shape], e, atol=1e-3)
    # A wrong second output is caught even when the first one is right.
    broken = tf.keras.Model(inputs, [a, tf.keras.layers.Lambda(lambda t: t + 0.5)(head)])
    bad = converters.verify(broken, flatbuffer, n=2, kernels=("reference",))
    assert bad["flatbuffer_ok"] is False and 0.49 < bad["max_abs_diff"] < 0.51
    assert "the flatbuffer is at fault" in bad["verdict"]


def test_float_tflite_matches_keras(tiny):
    interpreter = tf.lite.Interpreter(model_content=tiny["float"])
    interpreter.allocate_tensors()
    x = np.random.RandomState(0).randn(1, 16, 16, 3).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, tiny["model"](x, training=False).numpy(), atol=1e-4)


def test_grouped_conv_with_32_channels_per_group_runs_on_another_kernel(cache_dir):
    """LCE converts it, but the default kernel refuses grouped convs at run time:
    verification and the benchmark fall back to kernels that run it."""
    x = inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(64, 3, padding="same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = _quant_conv(64, "grouped32", groups=2)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = converters.randomize_batchnorm(tf.keras.Model(inputs, tf.keras.layers.Dense(4)(x)))
    flatbuffer = converters.convert(model)
    report = converters.acceleration_report(model, converters.read(flatbuffer))
    assert report["accelerated_convs"] == 1
    result = converters.verify(model, flatbuffer, n=2)
    assert result["kernel"] == "reference" and result["max_abs_diff"] < 1e-3
    assert "error" in result["kernels"]["default"] and result["kernels"]["indirect_bgemm"]["agrees"]
    timings = runtime.benchmark(
        flatbuffer, threads=1, warmup=0, repeats=1, kernels=["default", "indirect_bgemm"]
    )
    assert "error" in timings["kernels"]["default"]
    assert timings["best_kernel"] == "indirect_bgemm"


# ---------------------------------------------------------------- conversion options


def test_convert_rejects_bad_options(tiny):
    with pytest.raises(ValueError, match="Unknown target 'riscv'.*arm, xcore"):
        converters.convert(tiny["model"], target="riscv")
    with pytest.raises(ValueError, match="inference input type 'int4'"):
        converters.convert(tiny["model"], inference_input_type="int4")
    with pytest.raises(ValueError, match="min < max"):
        converters.convert(tiny["model"], int8_io=True, default_int8_range=(3.0, -3.0))


def test_int8_io_needs_quantization_statistics():
    model = _zero_padded_model()
    with pytest.raises(ValueError, match="--default-int8-range"):
        converters.convert(model, int8_io=True)
    flatbuffer = converters.convert(model, int8_io=True, default_int8_range=(-3.0, 3.0))
    info = converters.read(flatbuffer)
    assert info.input_types == ["int8"] and info.output_types == ["int8"]
    predictor = runtime.Predictor(flatbuffer, kernel="default")
    out = predictor.predict(np.zeros((2, 8, 8, 3), np.float32))
    assert out.shape == (2, 4) and out.dtype == np.float32
    only_input = converters.convert(
        model, inference_input_type="int8", default_int8_range=(-3.0, 3.0)
    )
    info = converters.read(only_input)
    assert info.input_types == ["int8"] and info.output_types == ["float32"]


def test_mixed_precision_model_is_converted_as_float32():
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x = inputs = tf.keras.Input((8, 8, 3))
        x = tf.keras.layers.Conv2D(32, 3, padding="same")(x)
        x = _quant_conv(32, "bconv")(x)
        x = tf.keras.layers.GlobalAveragePooling2D()(x)
        x = tf.keras.layers.Dense(4)(x)
        outputs = tf.keras.layers.Activation("linear", dtype="float32")(x)
        model = tf.keras.Model(inputs, outputs)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    assert model.layers[1].dtype_policy.name == "mixed_float16"
    clone = converters.float32_model(model)
    assert clone is not model
    assert all(layer.dtype_policy.name == "float32" for layer in clone.layers)
    flatbuffer = converters.convert(model)
    assert converters.read(flatbuffer).op_counts["LceBconv2d"] == 1
    assert converters.verify(clone, flatbuffer, n=2)["max_abs_diff"] < 1e-3
    assert converters.float32_model(clone) is clone


def test_convert_needs_eager_mode(tiny):
    @tf.function
    def in_graph():
        converters.convert(tiny["model"])
        return tf.constant(0)

    with pytest.raises(RuntimeError, match="eager"):
        in_graph()


# ---------------------------------------------------------------- benchmark, Predictor


def test_benchmark_times_kernels_and_float(tiny, cache_dir):
    result = runtime.benchmark(
        tiny["lce"],
        threads=1,
        warmup=1,
        repeats=3,
        kernels=["default", "indirect_bgemm"],
        float_source=tiny["float"],
    )
    assert set(result["kernels"]) == {"default", "indirect_bgemm"}
    for timing in result["kernels"].values():
        assert timing["repeats"] == 3
        assert 0 < timing["p10_ms"] <= timing["median_ms"] <= timing["p90_ms"]
    best = result["best_kernel"]
    assert result["best_median_ms"] == result["kernels"][best]["median_ms"]
    assert result["float"]["median_ms"] > 0
    assert result["binary_to_float_ratio"] == pytest.approx(
        result["best_median_ms"] / result["float"]["median_ms"]
    )
    # The fastest choice is remembered for this file, thread count and machine.
    assert runtime.cached_kernel(tiny["lce"], 1) == best
    assert runtime.cached_kernel(tiny["lce"], 2) is None
    cache = json.loads(cache_dir.read_text())
    assert [entry["kernel"] for entry in cache.values()] == [best]
    with pytest.raises(ValueError, match="Unknown kernel 'fast'"):
        runtime.benchmark(tiny["lce"], kernels=["fast"])


def test_predictor_measures_once_then_uses_the_cache(tiny, cache_dir):
    first = runtime.Predictor(tiny["lce"], threads=1)
    assert first.kernel_source == "measured" and first.kernel in runtime.AUTO_KERNELS
    second = runtime.Predictor(tiny["lce"], threads=1)
    assert second.kernel_source == "cache" and second.kernel == first.kernel
    x = np.random.RandomState(0).randn(3, 16, 16, 3).astype(np.float32)
    out = second(x)
    assert out.shape == (3, 10) == (3, second.output_shape[-1])
    np.testing.assert_allclose(out, tiny["model"](x, training=False).numpy(), atol=1e-3)
    forced = runtime.Predictor(tiny["lce"], threads=1, kernel="reference")
    assert forced.kernel_source == "given" and forced.input_shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match="Unknown kernel 'fastest'"):
        runtime.Predictor(tiny["lce"], kernel="fastest")


def test_predictor_rejects_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        runtime.Predictor(tmp_path / "nope.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"0123456789")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        runtime.Predictor(bad)


# ---------------------------------------------------------------- zoo models


ZOO_TINY = {
    "bnas-a": dict(input_shape=(16, 16, 3), cells=3, channels=8),
    "bnas-d": dict(input_shape=(32, 32, 3), cells=3, channels=8),
    "meliusnet22": dict(
        input_shape=(32, 32, 3),
        blocks=(1, 1),
        transition_channels=(96,),
        growth=32,
        stem_channels=32,
    ),
    "xnor-resnet18": dict(input_shape=(16, 16, 3), width=0.25),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO_TINY))
def test_zoo_families_convert_fully(name, request):
    """One small model of each zoo family (the full-size zoo: benchmarks/convert_zoo.py).
    bnas-a's is the ``tiny`` network (same config, size and BatchNorm treatment):
    converted once for this module."""
    if find_spec(name) is None:
        pytest.skip(f"{name} is not registered")
    if name == "bnas-a":
        assert find_spec("bnas-a").config == find_spec("bnas").config
        tiny = request.getfixturevalue("tiny")
        assert tiny["model"].input_shape[1:] == ZOO_TINY[name]["input_shape"]
        model, flatbuffer = tiny["model"], tiny["lce"]
    else:
        model = converters.randomize_batchnorm(build(name, **ZOO_TINY[name]))
        flatbuffer = converters.convert(model)
    report = converters.acceleration_report(model, converters.read(flatbuffer))
    report.update(converters.verify(model, flatbuffer, n=4, kernels=("reference", "default")))
    assert report["binary_convs"] > 0
    assert report["accelerated_convs"] == report["binary_convs"], report["not_accelerated"]
    assert report["accelerated_bops_share"] == 1.0
    # The reference kernel agrees with Keras within tolerance (largest difference, or a
    # tiny mean with every top-1 class equal for sign ties), and so does LCE's default.
    assert report["flatbuffer_ok"] is True, report["verdict"]
    assert report["kernel"] == "reference" and report["mean_abs_diff"] < 1e-4
    assert report["wrong_kernels"] == [], report["verdict"]
    assert 0.9 < report["size_ratio"] < 1.1


@pytest.mark.slow
def test_bnas_mini_at_32_converts_fully():
    model = build("bnas-mini", input_shape=(32, 32, 3))
    flatbuffer = converters.convert(model)
    report = converters.acceleration_report(model, converters.read(flatbuffer))
    report.update(converters.verify(model, flatbuffer, n=3, kernels=("reference",)))
    assert report["binary_convs"] == report["accelerated_convs"] > 20
    assert report["flatbuffer_ok"] is True, report["verdict"]
    assert report["mean_abs_diff"] < 1e-4
    assert 0.9 < report["size_ratio"] < 1.1
