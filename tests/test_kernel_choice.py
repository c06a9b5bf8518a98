"""Kernel choice: correct before fast.

LCE's optimized binary-conv kernels (``default`` = bgemm, ``indirect_bgemm``) have a known
upstream defect: their zero-padding correction assumes the (dilated) filter is smaller
than the input, and skips the correction when a window sticks out on both sides. The
smallest model that shows it is a single zero-padded 3x3 binary conv on a 2x2 input
(docs/readme/deployment.md). These tests assert that we detect it and never choose
those kernels for such a model; and that the kernel cache survives concurrent writers.
"""

from __future__ import annotations

import json
import multiprocessing

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from larq_bnas import converters, runtime
from larq_bnas.runtime import interpreters, native


def defect_model(size: int = 2, channels: int = 2, filters: int = 1) -> tf.keras.Model:
    """The smallest reproduction: a zero-padded 3x3 binary conv on a ``size`` x ``size``
    input (LCE's reference kernel needs an even number of input channels)."""
    x = inputs = tf.keras.Input((size, size, channels))
    x = lq.layers.QuantConv2D(
        filters,
        3,
        padding="same",
        pad_values=0.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )(x)
    return tf.keras.Model(inputs, x)


@pytest.fixture(scope="module")
def defect():
    model = defect_model()
    return {"model": model, "lce": converters.convert(model)}


@pytest.fixture(scope="module")
def bigger():
    """The same conv on a 4x4 input (every kernel is right there), converted once."""
    model = defect_model(size=4)
    return {"model": model, "lce": converters.convert(model)}


def test_upstream_zero_padding_defect_is_detected(defect, bigger):
    """Known upstream defect (LCE 0.16, zero_padding_correction.h): if this test starts
    failing on `default`/`indirect_bgemm` agreeing, LCE has fixed it."""
    verdicts = runtime.agreement(defect["lce"], ["reference", "default", "indirect_bgemm"])
    assert verdicts["reference"] == {
        "max_abs_diff": 0.0,
        "matching": "4/4",
        "agrees": True,
        "matches": [True] * 4,
    }
    for name in ("default", "indirect_bgemm"):
        assert verdicts[name]["agrees"] is False
        assert verdicts[name]["matching"] == "0/4"  # a kernel defect hits every input
        assert verdicts[name]["max_abs_diff"] >= 2.0  # one missing +-1 correction, doubled
    # At 4x4 the same conv is right on every kernel: the defect needs input < filter.
    verdicts = runtime.agreement(bigger["lce"])
    ran = {name for name, v in verdicts.items() if "error" not in v}
    assert {"reference", "default", "indirect_bgemm"} <= ran
    assert all(verdicts[name]["agrees"] for name in ran)


def test_agreement_tolerates_a_sign_flip_on_a_few_inputs_not_on_all():
    """Rounding sign flips (a pre-activation within ~1e-7 of its scale of zero binarizes
    the other way in one interpreter) change a few inputs for real; a kernel defect
    changes every input. Measured on larq-zoo QuickNet at 64x64: 2 of 8 inputs."""
    rng = np.random.RandomState(0)
    expected = [rng.randn(4, 10) * 100, rng.randn(4, 3)]
    rounded = [e * (1 + 1e-7) for e in expected]
    assert runtime.compare_outputs(rounded, expected) == {
        "max_abs_diff": pytest.approx(np.abs(expected[0]).max() * 1e-7),
        "matching": "4/4",
        "agrees": True,
        "matches": [True] * 4,
    }
    flipped = [e.copy() for e in expected]
    flipped[0][2] += 35.0  # one input's logits after a flip (as measured: 35 at scale 400)
    verdict = runtime.compare_outputs(flipped, expected)
    assert verdict["agrees"] is True and verdict["matching"] == "3/4"
    flipped[1][0, 0] += 1.0  # a second input differs too: still half of them
    assert runtime.compare_outputs(flipped, expected)["matching"] == "2/4"
    flipped[0][3] -= 1.0  # three of four: no longer rounding
    assert runtime.compare_outputs(flipped, expected) == {
        "max_abs_diff": pytest.approx(35.0),
        "matching": "1/4",
        "agrees": False,
        "matches": [False, True, False, False],
    }
    # A small systematic error (a wrong border pixel) on every input is a defect.
    defect = [e + np.where(np.arange(e.shape[1]) == 0, 2e-2 * np.abs(e).max(), 0) for e in expected]
    assert runtime.compare_outputs(defect, expected)["agrees"] is False
    # One input: it must match.
    assert runtime.compare_outputs([flipped[0][2:3]], [expected[0][2:3]])["agrees"] is False


def test_verify_blames_the_kernel_not_the_flatbuffer(defect):
    result = converters.verify(defect["model"], defect["lce"], n=3, threads=1)
    assert result["flatbuffer_ok"] is True and result["kernel"] == "reference"
    assert result["max_abs_diff"] == 0.0
    assert {"default", "indirect_bgemm"} <= set(result["wrong_kernels"])
    assert "native" not in result["wrong_kernels"] or "error" in result["kernels"]["native"]
    assert "this machine's" in result["verdict"] and "at fault" in result["verdict"]
    for name in ("reference", "default", "indirect_bgemm", "native"):
        assert name in result["kernels"]  # every kernel it ran is reported


def test_benchmark_never_marks_a_disagreeing_kernel_fastest(defect, kernel_cache):
    timings = runtime.benchmark(
        defect["lce"],
        threads=1,
        warmup=0,
        repeats=2,
        kernels=["default", "indirect_bgemm", "reference"],
    )
    assert timings["disagreeing"] == ["default", "indirect_bgemm"]
    assert timings["best_kernel"] == "reference"
    for name in ("default", "indirect_bgemm"):
        entry = timings["kernels"][name]
        assert entry["agrees"] is False and entry["median_ms"] > 0
    cache = json.loads(kernel_cache.read_text())
    (entry,) = cache.values()
    assert entry["kernel"] == "reference" and entry["agreement"]["default"] is False
    # Only optimized choices that all disagree: none is fastest, nothing is remembered.
    kernel_cache.unlink()
    only_wrong = runtime.benchmark(
        defect["lce"], threads=1, warmup=0, repeats=1, kernels=["default", "indirect_bgemm"]
    )
    assert only_wrong["best_kernel"] is None and not kernel_cache.exists()


def test_predictor_auto_without_native_avoids_the_wrong_kernels(defect, kernel_cache, monkeypatch):
    monkeypatch.setattr(native, "find_compiler", lambda: None)
    with pytest.warns(RuntimeWarning, match="default skipped: its outputs differ"):
        predictor = runtime.Predictor(defect["lce"], threads=1)
    assert predictor.kernel == "reference" and predictor.kernel_source == "measured"
    assert any("native skipped: No C++ compiler" in note for note in predictor.notes)
    x = np.random.RandomState(5).randn(3, 2, 2, 2).astype(np.float32)
    np.testing.assert_allclose(
        predictor.predict(x), defect["model"](x, training=False).numpy(), atol=1e-5
    )


def test_unwritable_cache_falls_back_and_says_why(bigger, tmp_path, monkeypatch):
    """A cache path that cannot be created (a file stands where the directory should):
    no native build, no remembered choice, and the Predictor still runs the fastest
    remaining kernel that agrees (a 4x4 input: LCE's kernels are right there)."""
    model, flatbuffer = bigger["model"], bigger["lce"]
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LARQ_BNAS_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(RuntimeWarning) as caught:
        predictor = runtime.Predictor(flatbuffer, threads=1)
    notes = " | ".join(predictor.notes)
    assert "native skipped: Cannot create the native kernels' cache" in notes
    assert "choice not remembered: the kernel cache" in notes and "not writable" in notes
    assert predictor.kernel in runtime.AUTO_KERNELS and predictor.kernel != "native"
    assert len(caught) == len(predictor.notes) == 2
    x = np.random.RandomState(5).randn(2, 4, 4, 2).astype(np.float32)
    np.testing.assert_allclose(predictor.predict(x), model(x, training=False).numpy(), atol=1e-5)


def _write_entries(args: tuple[str, int, int]) -> None:
    path, worker, count = args
    from pathlib import Path

    interpreters.kernel_cache_path = lambda: Path(path)  # type: ignore[assignment]
    for i in range(count):
        interpreters.update_kernel_cache(
            lambda cache, i=i: cache.__setitem__(f"w{worker}-{i}", {"kernel": "reference"})
        )


def test_kernel_cache_updates_are_locked(tmp_path):
    """Two processes updating the cache at once lose nothing (fcntl lock around the
    read-modify-write)."""
    path = tmp_path / "lce_kernels.json"
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        pool.map(_write_entries, [(str(path), 0, 40), (str(path), 1, 40)])
    cache = json.loads(path.read_text())
    assert len(cache) == 80
    assert {f"w{w}-{i}" for w in (0, 1) for i in range(40)} == set(cache)


def test_verify_excuses_only_inputs_with_a_near_zero_binarization(defect, monkeypatch):
    """The reference kernel differs from Keras on every input here (Keras's weights
    changed after conversion). Inputs with a binarization input within rounding of zero
    (in the native run) are excused; without one the flatbuffer is blamed. Kernels that
    differ from the reference kernel itself (LCE's padding defect) stay at fault."""
    import importlib

    verify_module = importlib.import_module("larq_bnas.converters.verify")

    model = tf.keras.models.clone_model(defect["model"])
    model.set_weights([-w for w in defect["model"].get_weights()])
    monkeypatch.setattr(verify_module, "_near_zero_counts", lambda fb, x: [1] * len(x))
    excused = converters.verify(model, defect["lce"], n=3, threads=1)
    assert excused["kernels"]["reference"]["explained"] == "3/3"
    assert excused["flatbuffer_ok"] is True
    assert {"default", "indirect_bgemm"} <= set(excused["wrong_kernels"])
    monkeypatch.setattr(verify_module, "_near_zero_counts", lambda fb, x: [1, 0, 1])
    blamed = converters.verify(model, defect["lce"], n=3, threads=1)
    assert blamed["kernels"]["reference"]["explained"] == "2/3"
    assert blamed["flatbuffer_ok"] is False and "flatbuffer is at fault" in blamed["verdict"]


def test_benchmark_keeps_one_interpreter_alive_at_a_time_without_the_collector(
    bigger, kernel_cache, monkeypatch
):
    """Each timed block's interpreter is freed by reference counting before the next one
    is made, so benchmark() needs no gc.collect() (seconds in a process holding many
    models). Checked with the garbage collector off."""
    import gc
    import weakref

    made: list[weakref.ref] = []
    alive_at_creation: list[int] = []
    make = interpreters.make_interpreter

    def tracked(*args, **kwargs):
        alive_at_creation.append(sum(ref() is not None for ref in made))
        interp = make(*args, **kwargs)
        made.append(weakref.ref(interp))
        return interp

    monkeypatch.setattr(interpreters, "make_interpreter", tracked)
    gc.disable()
    try:
        timings = runtime.benchmark(
            bigger["lce"], threads=1, warmup=0, repeats=2, kernels=["reference", "native"]
        )
    finally:
        gc.enable()
    assert set(timings["kernels"]) == {"reference", "native"}
    assert all("median_ms" in v for v in timings["kernels"].values()), timings
    # the reference check, one first run per choice, two timed blocks per choice
    assert len(made) == 1 + 2 + 2 * 2
    assert alive_at_creation == [0] * len(made)
    assert all(ref() is None for ref in made)
