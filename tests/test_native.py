"""larq_bnas.runtime.native: the native kernels for LCE's ops agree with LCE's reference
kernel on every option LCE emits, fold their float neighbours correctly, and fail clearly
where they cannot run."""

from __future__ import annotations

import os

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


def _inputs(shape, n=2, seed=0):
    """``n`` inputs of one sample's ``shape``."""
    x = np.random.RandomState(seed).randn(n, *shape).astype(np.float32)
    x[0, 0, 0, :3] = [0.0, -0.0, 0.0]  # the sign of zero: +1, as in LCE
    return x


ISAS = ["avx512", "avx2", "scalar"]


def _skip_unless_cpu_runs(isa):
    if isa not in native.cpu_isas():
        pytest.skip(f"this CPU cannot run the {isa} kernels")


def case_flatbuffer(case, shared_bytes):
    """A case's model converted once per test session (test_native_fuzz.py runs the same
    flatbuffers under the sanitizers); seeded, so the same bytes whoever converts it."""

    def make():
        tf.keras.utils.set_random_seed(0)
        return converters.convert(_model(**CASES[case]))

    return shared_bytes(f"native-case-{case}", make)


@pytest.fixture(scope="module")
def flatbuffers(shared_bytes):
    """Each case's flatbuffer, 4 inputs and the reference kernel's outputs for them."""
    cache = {}

    def get(case):
        if case not in cache:
            flatbuffer = case_flatbuffer(case, shared_bytes)
            x = _inputs(converters.read(flatbuffer).input_shapes[0][1:], n=4)
            expected = runtime.make_interpreter(flatbuffer, threads=1, kernel="reference")
            cache[case] = (flatbuffer, x, expected.predict(x))
        return cache[case]

    return get


@needs_compiler
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_lce_reference_kernel(case, isa, flatbuffers):
    """Every instruction-set path, on a batch of 4 in one invoke, equals LCE's reference
    kernel within 3e-4 (float rounding of the output transform; |outputs| reach a few
    hundred)."""
    _skip_unless_cpu_runs(isa)
    flatbuffer, x, expected = flatbuffers(case)
    interpreter = native.NativeInterpreter(flatbuffer, num_threads=2, isa=isa)
    assert interpreter.isa == isa
    got = interpreter.predict(x)
    lce_ops = sum(op.name in converters.LCE_OPS for op in converters.read(flatbuffer).ops)
    assert interpreter.claimed == lce_ops > 0
    assert got.shape == expected.shape and got.shape[0] == 4
    assert interpreter.input_shapes[0][0] == 4  # one invoke for the whole batch
    np.testing.assert_allclose(got, expected, rtol=0, atol=3e-4)
    if case == "bnas-neighbours-fused":
        assert interpreter.fused >= 3  # ReLU, and the BatchNorm's MUL and ADD
        unfused = native.NativeInterpreter(flatbuffer, num_threads=1, fuse=False, isa=isa)
        assert unfused.fused == 0
        np.testing.assert_allclose(unfused.predict(x), got, rtol=0, atol=3e-4)


@needs_compiler
def test_batch_resize_both_ways_and_bad_shapes_fail_cleanly(flatbuffers):
    flatbuffer, x, expected = flatbuffers("bitpacked-output-stride-2")
    interpreter = native.NativeInterpreter(flatbuffer, num_threads=2)
    for batch in (4, 1, 3, 4):
        got = interpreter.predict(x[:batch])
        assert got.shape[0] == batch
        np.testing.assert_allclose(got, expected[:batch], rtol=0, atol=3e-4)
    with pytest.raises(ValueError, match=r"does not fit the model's input \(batch, 9, 11, 40\)"):
        interpreter.predict(x[:, :5])
    # A VALID 3x3 conv cannot take a 2x2 input: Prepare names the op and the sizes.
    valid, _, _ = flatbuffers("3x3-valid-odd-channels")
    small = native.NativeInterpreter(valid, num_threads=1)
    raw = small.interpreter
    raw.resize_tensor_input(raw.get_input_details()[0]["index"], [1, 2, 2, 64])
    with pytest.raises(RuntimeError, match=r"LceBconv2d \(node \d+\): input of 2x2 is smaller"):
        raw.allocate_tensors()


@pytest.fixture(scope="module")
def threaded_case():
    """A bigger map (many rows to share), its 3 inputs and the reference kernel's outputs,
    converted once for every thread count."""
    tf.keras.utils.set_random_seed(0)
    x = inputs = tf.keras.Input((24, 24, 64))
    x = _qconv(64, pad_values=0.0)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.BatchNormalization()(_qconv(96, strides=2)(x))
    model = converters.randomize_batchnorm(tf.keras.Model(inputs, x), seed=4)
    flatbuffer = converters.convert(model)
    xs = np.random.RandomState(2).randn(3, 24, 24, 64).astype(np.float32)
    expected = runtime.make_interpreter(flatbuffer, threads=1, kernel="reference").predict(xs)
    return flatbuffer, xs, expected


@needs_compiler
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_threaded_path_agrees_with_reference(threads, threaded_case, monkeypatch):
    """With the work threshold at 0 every op is split across the pool."""
    monkeypatch.setenv("LARQ_BNAS_NATIVE_MIN_WORK", "0")
    monkeypatch.setenv("LARQ_BNAS_NATIVE_SPIN", "10")  # waiters block almost at once
    flatbuffer, xs, expected = threaded_case
    for isa in ("avx2", native.cpu_isas()[0]):
        got = native.NativeInterpreter(flatbuffer, num_threads=threads, isa=isa).predict(xs)
        np.testing.assert_allclose(got, expected, rtol=0, atol=3e-4)


@needs_compiler
def test_isa_is_forced_by_environment_and_checked(monkeypatch, flatbuffers):
    flatbuffer, _, _ = flatbuffers("one-padding")
    monkeypatch.setenv(native.ISA_ENV, "avx2")
    if "avx2" in native.cpu_isas():
        assert native.NativeInterpreter(flatbuffer).isa == "avx2"
    monkeypatch.setenv(native.ISA_ENV, "scalar")
    assert native.NativeInterpreter(flatbuffer).isa == "scalar"
    monkeypatch.setenv(native.ISA_ENV, "sse9")
    with pytest.raises(ValueError, match="Unknown \\$LARQ_BNAS_NATIVE_ISA 'sse9'; valid"):
        native.NativeInterpreter(flatbuffer)
    monkeypatch.delenv(native.ISA_ENV)
    assert native.NativeInterpreter(flatbuffer).isa == native.cpu_isas()[0]
    assert native.features() == native.cpu_isas()[0]


@needs_compiler
def test_abi_check_compares_every_tensor(flatbuffers, monkeypatch):
    flatbuffer, _, _ = flatbuffers("bnas-neighbours-fused")
    interpreter = native.NativeInterpreter(flatbuffer)
    assert (
        native.abi_mismatch(interpreter._lib, interpreter._pointer, interpreter.interpreter) is None
    )

    class Shifted:  # a layout that reads the neighbouring tensor: what a wrong struct does
        def lce_native_tensor_info(self, pointer, index):
            return interpreter._lib.lce_native_tensor_info(pointer, index + 1 if index >= 0 else -1)

    reason = native.abi_mismatch(Shifted(), interpreter._pointer, interpreter.interpreter)
    assert reason is not None and reason.startswith("tensor 0:")
    monkeypatch.setattr(native, "abi_mismatch", lambda *args: "tensor 3: shape [1] vs [2]")
    with pytest.raises(native.NativeUnavailable, match="do not match the running TensorFlow Lite"):
        native.NativeInterpreter(flatbuffer)
    timings = runtime.benchmark(
        flatbuffer,
        threads=1,
        warmup=0,
        repeats=1,
        kernels=["native", "indirect_bgemm"],
        remember=False,
    )
    assert "do not match" in timings["kernels"]["native"]["error"]
    assert timings["best_kernel"] == "indirect_bgemm"


@needs_compiler
def test_model_outputs_are_never_folded_away():
    """The raw bconv output is a model output too: it must not become a tensor inside a
    fused kernel, and both outputs match LCE."""
    model = _model(relu=True, two_outputs=True)
    flatbuffer = converters.convert(model)
    x = _inputs(model.input_shape[1:], n=1)
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
def test_build_is_cached_private_and_never_deletes_other_builds(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path / "native")
    other = tmp_path / "native" / "lce_native-native-0000000000000000.so"
    other.parent.mkdir(mode=0o700)
    other.write_bytes(b"another process may have this loaded")
    other.chmod(0o700)
    first = native.build()
    stamp = first.stat().st_mtime_ns
    assert native.build() == first and first.stat().st_mtime_ns == stamp
    assert other.exists()  # a library of other sources is left alone
    assert first.stat().st_mode & 0o077 == 0
    assert not list(first.parent.glob(".lce_native-*"))  # no temporary left behind
    with pytest.raises(ValueError, match="valid variants are: native, sanitize"):
        native.build("fast")


def test_unsafe_cache_directories_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path / "shared" / "native")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared").chmod(0o777)
    with pytest.raises(native.NativeUnavailable, match="writable by others .*chmod go-w"):
        native.build()
    (tmp_path / "shared").chmod(0o755)
    if os.getuid() == 0:  # only root can give a directory away
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
        monkeypatch.setattr(native, "cache_dir", lambda: foreign / "native")
        with pytest.raises(native.NativeUnavailable, match="owned by uid 65534, not by you"):
            native.build()
    # A cache path that cannot be created (a file where a directory should be).
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path / "file" / "native")
    with pytest.raises(native.NativeUnavailable, match="Cannot create the native kernels' cache"):
        native.build()


@pytest.fixture(scope="module")
def small32():
    """A 32-in, 32-out case and its flatbuffer (converted once for two tests)."""
    tf.keras.utils.set_random_seed(0)
    model = _model(cin=32, cout=32)
    return model, converters.convert(model)


def test_no_compiler_is_a_clear_error_and_other_kernels_remain(small32, tmp_path, monkeypatch):
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path / "native")
    monkeypatch.setattr(interpreters, "kernel_cache_path", lambda: tmp_path / "kernels.json")
    monkeypatch.setattr(native, "find_compiler", lambda: None)
    with pytest.raises(native.NativeUnavailable, match="No C\\+\\+ compiler"):
        native.build()
    _, flatbuffer = small32
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


def test_int8_models_are_refused_with_the_reason(small32):
    model, float_flatbuffer = small32
    flatbuffer = converters.convert(model, int8_io=True, default_int8_range=(-3.0, 3.0))
    reason = native.unsupported(flatbuffer)
    assert reason is not None and "int8" in reason
    with pytest.raises(native.NativeUnavailable, match="cannot run this model: .*int8"):
        native.NativeInterpreter(flatbuffer)
    assert native.unsupported(float_flatbuffer) is None


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
    entry = timing["kernels"]["native"]
    assert entry["agrees"] is True and entry["max_abs_diff"] < 3e-4
    assert timing["kernels"]["reference"]["max_abs_diff"] == 0.0
    fastest = min(timing["kernels"], key=lambda k: timing["kernels"][k]["median_ms"])
    assert timing["best_kernel"] == fastest and timing["disagreeing"] == []


@needs_compiler
def test_rounding_sign_flips_are_found_and_explain_a_mismatch(flatbuffers, monkeypatch):
    """A value fed to a binarization within 1e-6 of its scale of zero may take either
    sign (measured: BNAS-D at 64x64 flips one such value on every input, so the majority
    rule alone calls correct native kernels wrong). Such inputs are explained; an input
    that differs without one is not."""
    flatbuffer, x, expected = flatbuffers("one-padding")
    x = x[1:3].copy()  # (input 0 holds exact zeros: the sign-of-zero case)
    x[1, 4, 5, 7] = 3e-7 * np.abs(x[1]).max()
    assert native.near_zero_binarizations(flatbuffer, x) == [0, 1]
    verdict = {"max_abs_diff": 9.0, "matching": "0/2", "agrees": False, "matches": [False] * 2}
    judged = interpreters._judge_native("native", flatbuffer, x, verdict)
    assert judged["explained"] == "1/2" and judged["agrees"] is False  # input 0: a real error
    monkeypatch.setattr(native, "near_zero_binarizations", lambda *args, **kw: [2, 1])
    judged = interpreters._judge_native("native-avx2", flatbuffer, x, verdict)
    assert judged["explained"] == "2/2" and judged["agrees"] is True
    # LCE's own choices share the reference kernel's float ops: never excused.
    assert interpreters._judge_native("default", flatbuffer, x, verdict) is verdict
