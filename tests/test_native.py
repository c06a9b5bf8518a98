"""larq_bnas.runtime.native: the native kernels for LCE's ops agree with LCE's reference
kernel on every option LCE emits, fold their float neighbours correctly, and fail clearly
where they cannot run."""

from __future__ import annotations

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from larq_bnas import converters, runtime
from larq_bnas.runtime import interpreters, native

needs_compiler = pytest.mark.skipif(
    native.find_compiler() is None, reason="no C++ compiler on this machine"
)


def _qconv(filters, kernel=3, *, strides=1, dilation=1, pad_values=1.0, padding="same", groups=1):
    return lq.layers.QuantConv2D(
        filters,
        kernel,
        strides=strides,
        dilation_rate=dilation,
        padding=padding,
        pad_values=pad_values,
        groups=groups,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )


def _model(
    cin=40,
    cout=64,
    *,
    relu=False,
    bitpacked=False,
    bnas=False,
    pool=False,
    two_outputs=False,
    **conv,
):
    """Input -> [sign, binary max pool] -> binary conv [-> ReLU] -> BN, then optionally a
    second binary conv on its sign (the first one's output becomes bitpacked) or BNAS's
    ReLU -> BN -> binary conv -> ReLU -> add (float ops next to LCE ops, fused)."""
    x = inputs = tf.keras.Input((9, 11, cin))
    if pool:
        x = lq.quantizers.SteSign()(x)
        x = tf.keras.layers.MaxPool2D(3, 2, padding="same")(x)
    x = raw = _qconv(cout, **conv)(x)
    if relu:
        x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.BatchNormalization()(x)
    if bnas:
        x = tf.keras.layers.ReLU()(x)
        x = tf.keras.layers.BatchNormalization()(x)
        y = tf.keras.layers.ReLU()(_qconv(cout)(x))
        x = tf.keras.layers.Add()([x, y])
    if bitpacked:
        x = tf.keras.layers.BatchNormalization()(_qconv(32, 1, padding="valid")(x))
    outputs = [raw, x] if two_outputs else x
    return converters.randomize_batchnorm(tf.keras.Model(inputs, outputs), seed=3)


CASES = {
    "one-padding": {},
    "one-padding-relu": {"relu": True},
    "zero-padding": {"cout": 50, "pad_values": 0.0},
    "stride-2": {"cin": 64, "strides": 2},
    "stride-2-zero-padding": {"cin": 64, "strides": 2, "pad_values": 0.0},
    "dilated-5x5-zero-padding": {
        "cin": 36,
        "cout": 36,
        "kernel": 5,
        "dilation": 2,
        "pad_values": 0.0,
    },
    "1x1-valid": {"cin": 108, "cout": 36, "kernel": 1, "padding": "valid"},
    "3x3-valid-odd-channels": {"cin": 64, "cout": 33, "padding": "valid"},
    "bitpacked-output": {"bitpacked": True},
    "bitpacked-output-stride-2": {"cout": 48, "strides": 2, "bitpacked": True},
    "grouped": {"cin": 128, "groups": 4},
    "binary-max-pool": {"pool": True},
    "bnas-neighbours-fused": {"cout": 36, "bnas": True},
}


def _inputs(model, n=2, seed=0):
    x = np.random.RandomState(seed).randn(n, *model.input_shape[1:]).astype(np.float32)
    x[0, 0, 0, :3] = [0.0, -0.0, 0.0]  # the sign of zero: +1, as in LCE
    return x


@needs_compiler
@pytest.mark.parametrize("variant", ["native", "portable"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_lce_reference_kernel(case, variant):
    model = _model(**CASES[case])
    flatbuffer = converters.convert(model)
    x = _inputs(model)
    expected = runtime.make_interpreter(flatbuffer, threads=1, kernel="reference").predict(x)
    interpreter = native.NativeInterpreter(flatbuffer, num_threads=2, variant=variant)
    got = interpreter.predict(x)
    lce_ops = sum(op.name in converters.LCE_OPS for op in converters.read(flatbuffer).ops)
    assert interpreter.claimed == lce_ops > 0
    assert got.shape == expected.shape
    # float rounding of the output transform only (|outputs| reach a few hundred)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * 300)
    if case == "bnas-neighbours-fused":
        assert interpreter.fused >= 3  # ReLU, and the BatchNorm's MUL and ADD
        unfused = native.NativeInterpreter(flatbuffer, num_threads=1, fuse=False, variant=variant)
        assert unfused.fused == 0
        np.testing.assert_allclose(unfused.predict(x), got, rtol=0, atol=1e-6 * 300)


@needs_compiler
def test_model_outputs_are_never_folded_away():
    """The raw bconv output is a model output too: it must not become a tensor inside a
    fused kernel, and both outputs match LCE."""
    model = _model(relu=True, two_outputs=True)
    flatbuffer = converters.convert(model)
    x = _inputs(model, n=1)
    lce = runtime.make_interpreter(flatbuffer, threads=1, kernel="reference")
    interpreter = native.NativeInterpreter(flatbuffer, num_threads=1)
    interpreter.invoke_one(x)
    raw = interpreter.interpreter
    got = sorted(
        (raw.get_tensor(d["index"]) for d in raw.get_output_details()),
        key=lambda a: float(np.abs(a).sum()),
    )
    expected = lce.interpreter.predict([x[0:1]])
    expected = sorted(expected, key=lambda a: float(np.abs(a).sum()))
    assert len(got) == len(expected) == 2
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a.reshape(b.shape), b, rtol=0, atol=1e-6 * 300)


@needs_compiler
def test_build_is_cached_and_variants_are_separate(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path)
    first = native.build()
    stamp = first.stat().st_mtime_ns
    assert native.build() == first and first.stat().st_mtime_ns == stamp
    portable = native.build("portable")
    assert portable != first and first.exists() and portable.exists()
    assert native.features("portable") == "portable"
    assert native.features() in ("avx512-vpopcntdq", "portable")
    with pytest.raises(ValueError, match="valid variants are: native, portable"):
        native.build("fast")


def test_no_compiler_is_a_clear_error_and_other_kernels_remain(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path / "native")
    monkeypatch.setattr(interpreters, "kernel_cache_path", lambda: tmp_path / "kernels.json")
    monkeypatch.setattr(native, "find_compiler", lambda: None)
    with pytest.raises(native.NativeUnavailable, match="No C\\+\\+ compiler"):
        native.build()
    flatbuffer = converters.convert(_model(cin=32, cout=32))
    timings = runtime.benchmark(
        flatbuffer, threads=1, warmup=0, repeats=1, kernels=["native", "indirect_bgemm"]
    )
    assert "No C++ compiler" in timings["kernels"]["native"]["error"]
    assert timings["best_kernel"] == "indirect_bgemm"


def test_failed_build_shows_the_compiler_error(tmp_path, monkeypatch):
    broken = tmp_path / "broken-cxx"
    broken.write_text("#!/bin/sh\necho 'broken compiler says no' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CXX", str(broken))
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path / "native")
    with pytest.raises(native.NativeUnavailable, match="broken compiler says no"):
        native.build()
    assert not list((tmp_path / "native").glob("*.so"))  # no half-written library


def test_int8_models_are_refused_with_the_reason():
    model = _model(cin=32, cout=32)
    flatbuffer = converters.convert(model, int8_io=True, default_int8_range=(-3.0, 3.0))
    reason = native.unsupported(flatbuffer)
    assert reason is not None and "int8" in reason
    with pytest.raises(native.NativeUnavailable, match="cannot run this model: .*int8"):
        native.NativeInterpreter(flatbuffer)
    assert native.unsupported(converters.convert(model)) is None


@needs_compiler
def test_predictor_and_verify_run_on_native(tmp_path, monkeypatch):
    monkeypatch.setattr(interpreters, "kernel_cache_path", lambda: tmp_path / "kernels.json")
    model = _model(cout=36, bnas=True)
    flatbuffer = converters.convert(model)
    predictor = runtime.Predictor(flatbuffer, threads=2, kernel="native")
    assert predictor.kernel == "native" and predictor.input_shape == (1, 9, 11, 40)
    result = converters.verify(model, flatbuffer, n=3, kernel="native")
    assert result["kernel"] == "native" and result["max_abs_diff"] < 1e-3
    timing = runtime.benchmark(
        flatbuffer, threads=1, warmup=1, repeats=3, kernels=["native", "reference"]
    )
    assert timing["kernels"]["native"]["median_ms"] > 0
