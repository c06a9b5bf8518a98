"""Run LCE flatbuffers: kernel choices, timing, and the ``Predictor`` helper.

LCE ships several binary-convolution kernels; on x86 (no hand-written kernels) the choice
decides whether a binary model beats its float version (lce.md: QuickNet 96 ms with the
default kernel, 34 ms with the indirect BGEMM one). The ``native`` choice runs the same
flatbuffer in TensorFlow Lite's interpreter with this library's own vectorised kernels
for LCE's ops, compiled for the CPU at hand (``larq_bnas.runtime.native``).
``Predictor(kernel="auto")`` measures the choices once on the model and keeps the fastest
*correct* one.

Correct before fast: LCE's optimized x86 kernels (``default``, ``indirect_bgemm``) compute
wrong outputs for some models (a zero-padded binary conv whose dilated filter is larger
than its input; see docs/readme/deployment.md). So every choice's outputs on a few inputs
are compared with LCE's reference kernel (``agreement``), and only a choice that agrees
can be the fastest.

Measured choices (with each choice's verdict) are remembered per model file (its sha256),
thread count and machine in ``kernel_cache_path()`` (``$LARQ_BNAS_CACHE_DIR/lce_kernels.json``),
updated under a file lock so that concurrent benchmarks lose nothing; the next
``Predictor`` of the same file starts at once. ``benchmark()`` (and ``larq_bnas benchmark``)
records its fastest correct kernel there too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from larq_bnas._cache import cache_root
from larq_bnas._io import read_json, write_json

#: name -> LCE Interpreter keyword arguments (``native``: larq_bnas's own kernels on the
#: best instruction set of this CPU; ``native-avx2``: the same forced to AVX2)
KERNELS: dict[str, dict[str, bool]] = {
    "native": {},
    "native-avx2": {},
    "default": {},
    "indirect_bgemm": {"use_indirect_bgemm": True},
    "reference": {"use_reference_bconv": True},
    "xnnpack": {"use_xnnpack": True},
    "indirect_bgemm+xnnpack": {"use_indirect_bgemm": True, "use_xnnpack": True},
}


#: The choices ``Predictor(kernel="auto")`` times (the reference kernel is for checking
#: results, never the fastest on a real model).
AUTO_KERNELS = ("native", "default", "indirect_bgemm", "indirect_bgemm+xnnpack", "xnnpack")


def kernel_cache_path() -> Path:
    """The JSON file remembering the fastest kernel per model file, threads and machine."""
    return cache_root() / "lce_kernels.json"


def _cache_key(flatbuffer: bytes, threads: int) -> str:
    digest = hashlib.sha256(flatbuffer).hexdigest()[:20]
    return f"{digest}/threads={threads}/{platform.machine()}/cpus={os.cpu_count()}"


#: One input's outputs of a kernel choice match the reference kernel's when their largest
#: difference is at most this times max(1, largest |reference output| of that input)
#: (float rounding of the output transform is ~1e-6 of it; LCE's padding defect is ~1e-2
#: and above).
AGREEMENT_RTOL = 1e-4
#: Inputs each choice is checked on.
CHECK_INPUTS = 4
#: A choice agrees with the reference kernel when at least this share of the check inputs
#: match. Not all: the float ops round differently in LCE's interpreter, TensorFlow Lite's
#: and XNNPACK (|error| ~1e-7 of a tensor's scale), so a pre-activation that close to
#: zero can binarize to the other sign, and from there on the two runs of that input
#: differ for real (measured on larq-zoo QuickNet at 64x64, random weights: one value of
#: 1.7e-5 at scale 146 flipped, 23 binary-conv outputs then differed by 2, and the logits
#: of 2 of 8 inputs by 0.07 and 35; the native kernels matched Keras on all 8, LCE's
#: reference kernel did not; docs/readme/deployment.md). Such flips hit a few inputs at
#: random; a kernel defect (a wrong padding, stride, threshold...) hits every input.
AGREEMENT_SHARE = 0.5


def cached_kernel(flatbuffer: bytes, threads: int) -> str | None:
    """The kernel remembered for this model file, thread count and machine, if any (only
    entries that recorded the kernel's agreement with the reference kernel count)."""
    try:
        entry = read_json(kernel_cache_path()).get(_cache_key(flatbuffer, threads))
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(entry, dict) or entry.get("agrees") is not True:
        return None
    kernel = entry.get("kernel")
    return kernel if kernel in KERNELS else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on ``path`` + ``.lock`` for a read-modify-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def update_kernel_cache(update: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``update`` to the kernel cache under its file lock (read, change, write
    atomically). Raises OSError when the cache cannot be written."""
    path = kernel_cache_path()
    with _locked(path):
        try:
            cache = read_json(path) if path.exists() else {}
        except ValueError:
            cache = {}
        if not isinstance(cache, dict):
            cache = {}
        update(cache)
        write_json(path, cache)


def remember_kernel(
    flatbuffer: bytes,
    threads: int,
    kernel: str,
    median_ms: float,
    agreement: dict[str, bool | None] | None = None,
) -> str | None:
    """Record ``kernel`` as the fastest correct one for this model file, with every
    choice's verdict. Best effort: returns why it could not (a read-only cache), or None."""
    entry = {
        "kernel": kernel,
        "median_ms": round(float(median_ms), 4),
        "agrees": True,
        "agreement": dict(agreement or {}),
    }
    try:
        update_kernel_cache(lambda cache: cache.__setitem__(_cache_key(flatbuffer, threads), entry))
    except OSError as err:
        return f"the kernel cache {str(kernel_cache_path())!r} is not writable ({err.strerror})"
    return None


def _load(source: bytes | str | os.PathLike) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"Flatbuffer {str(path)!r} does not exist")
    data = path.read_bytes()
    if data[4:8] != b"TFL3":
        raise ValueError(
            f"{str(path)!r} is not a TFLite flatbuffer (no TFL3 identifier); pass a .tflite file"
        )
    return data


def make_interpreter(
    source: bytes | str | os.PathLike, *, threads: int = 2, kernel: str = "default"
) -> Any:
    """An interpreter for ``source`` with one of ``KERNELS`` (LCE's ``Interpreter``, or a
    ``NativeInterpreter`` for ``native``; both have ``predict`` and the shape/type
    properties)."""
    if kernel not in KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}; valid kernels are: {', '.join(KERNELS)}")
    if kernel.startswith("native"):
        from larq_bnas.runtime.native import NativeInterpreter

        isa = kernel.split("-", 1)[1] if "-" in kernel else None
        return NativeInterpreter(_load(source), num_threads=threads, isa=isa)
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(_load(source), num_threads=threads, **KERNELS[kernel])


def _single_run(interpreter: Any, x: np.ndarray) -> Any:
    """A callable that runs ``interpreter`` once on the single sample ``x``."""
    if hasattr(interpreter, "invoke_one"):
        return lambda: interpreter.invoke_one(x)
    raw = interpreter.interpreter
    return lambda: raw.predict([x])


def _random_input(interpreter: Any, seed: int = 0, batch: int = 1) -> np.ndarray:
    shape = (batch, *tuple(interpreter.input_shapes[0])[1:])
    dtype = interpreter.input_types[0]
    rng = np.random.RandomState(seed)
    if np.dtype(dtype) == np.int8:
        return rng.randint(-128, 128, size=shape).astype(np.int8)
    return rng.randn(*shape).astype(np.float32)


def _outputs(interpreter: Any, x: np.ndarray) -> list[np.ndarray]:
    """Every output of ``interpreter`` for the batch ``x``, as float64 arrays."""
    y = interpreter.predict(x)
    return [np.asarray(v, dtype=np.float64) for v in (y if isinstance(y, list) else [y])]


def compare_outputs(
    got: list[np.ndarray], expected: list[np.ndarray], atol: float = 0.0
) -> dict[str, Any]:
    """Judge a kernel choice's outputs against the reference kernel's, input by input
    (axis 0 of every output is the batch): an input matches when its largest difference
    is within ``AGREEMENT_RTOL`` of that input's output scale, or ``atol``.

    Returns ``max_abs_diff`` over all outputs, ``matching`` ("k/n" inputs) and
    ``agrees``: at least ``AGREEMENT_SHARE`` of the inputs match (see there: rounding
    sign flips hit a few inputs, kernel defects every input)."""
    if len(got) != len(expected) or any(
        a.size != b.size for a, b in zip(got, expected, strict=True)
    ):
        return {"max_abs_diff": float("inf"), "matching": "0/0", "agrees": False}
    n = int(expected[0].shape[0]) if expected[0].ndim else 1
    if any(b.ndim == 0 or b.shape[0] != n for b in expected):
        n = 1  # no common batch axis: judge all outputs as one input
    diff = np.zeros(n)
    scale = np.ones(n)
    for a, b in zip(got, expected, strict=True):
        a = a.reshape(n, -1)
        b = b.reshape(n, -1)
        diff = np.maximum(diff, np.abs(a - b).max(axis=1, initial=0.0))
        scale = np.maximum(scale, np.abs(b).max(axis=1, initial=0.0))
    matches = diff <= np.maximum(atol, AGREEMENT_RTOL * scale)
    matching = int(np.sum(matches))
    return {
        "max_abs_diff": float(diff.max()),
        "matching": f"{matching}/{n}",
        "agrees": bool(matching >= 1 and matching >= AGREEMENT_SHARE * n),
        "matches": [bool(v) for v in matches],
    }


#: A value fed to a binarization within this share of its tensor's scale of zero can
#: take either sign under float rounding (the flips measured were at 1.2e-7).
NEAR_ZERO_RTOL = 1e-6


def _judge_native(
    name: str, flatbuffer: bytes, x: np.ndarray, verdict: dict[str, Any]
) -> dict[str, Any]:
    """A native choice that fails the majority rule still agrees when every input that
    does not match has a binarization input within ``NEAR_ZERO_RTOL`` of zero in the
    native run (a rounding sign flip explains it): ``explained`` counts those inputs."""
    if verdict.get("agrees") or not name.startswith("native") or "matches" not in verdict:
        return verdict
    from larq_bnas.runtime.native import near_zero_binarizations

    isa = name.split("-", 1)[1] if "-" in name else None
    missed = [i for i, ok in enumerate(verdict["matches"]) if not ok]
    try:
        counts = near_zero_binarizations(flatbuffer, x[missed], NEAR_ZERO_RTOL, isa=isa)
    except (RuntimeError, ValueError):
        return verdict
    explained = sum(1 for c in counts if c > 0)
    return {
        **verdict,
        "explained": f"{explained}/{len(missed)}",
        "agrees": explained == len(missed),
    }


def _output_atol(interpreter: Any) -> float:
    """One step of an integer output (int8 models may round differently per kernel)."""
    integer = any(np.issubdtype(np.dtype(t), np.integer) for t in interpreter.output_types)
    return 1.0 if integer else 0.0


def agreement(
    source: bytes | str | os.PathLike,
    kernels: list[str] | None = None,
    *,
    threads: int = 1,
    n: int = CHECK_INPUTS,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Each kernel choice's outputs on ``n`` random inputs against LCE's reference kernel:
    name -> {``max_abs_diff``, ``matching``, ``agrees``} (``compare_outputs``), or
    {``error``} if the choice cannot run."""
    flatbuffer = _load(source)
    reference = make_interpreter(flatbuffer, threads=threads, kernel="reference")
    x = _random_input(reference, seed=seed, batch=n)
    expected = _outputs(reference, x)
    atol = _output_atol(reference)
    del reference
    result: dict[str, dict[str, Any]] = {}
    for name in kernels or list(KERNELS):
        try:
            interp = make_interpreter(flatbuffer, threads=threads, kernel=name)
            verdict = compare_outputs(_outputs(interp, x), expected, atol)
            result[name] = _judge_native(name, flatbuffer, x, verdict)
        except (RuntimeError, ValueError) as err:
            result[name] = {"error": _first_line(err)}
    return result


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def time_interpreter(
    interpreter: Any, *, warmup: int = 3, repeats: int = 20, x: np.ndarray | None = None
) -> dict[str, float]:
    """Batch-1 latency in ms: median, p10, p90 over ``repeats`` after ``warmup`` runs."""
    run = _single_run(interpreter, _random_input(interpreter) if x is None else x)
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return _stats(times)


def _stats(times: list[float]) -> dict[str, float]:
    q = np.percentile(times, [10, 90])
    return {
        "median_ms": statistics.median(times),
        "p10_ms": float(q[0]),
        "p90_ms": float(q[1]),
        "repeats": len(times),
    }


def benchmark(
    source: bytes | str | os.PathLike,
    *,
    threads: int = 2,
    warmup: int = 3,
    repeats: int = 20,
    kernels: list[str] | None = None,
    float_source: bytes | str | os.PathLike | None = None,
    remember: bool = True,
    check: bool = True,
) -> dict[str, Any]:
    """Time ``source`` with each kernel choice; report the fastest correct one, and the
    float model.

    With ``check`` (the default) each choice first runs ``CHECK_INPUTS`` random inputs,
    compared with LCE's reference kernel: ``agrees`` and ``max_abs_diff`` sit beside its
    time, and a choice that disagrees is never the fastest (``best_kernel``). Every
    choice runs ``warmup`` times, then ``repeats`` timed batch-1 runs (median, p10, p90
    in ms), in two rounds: all choices one after the other, then again in reverse order,
    so that a change in the load of a shared machine falls on every choice alike. Each
    block has its own fresh interpreter, and only one interpreter lives at a time (idle
    worker threads of one would slow the next). A choice that cannot run the model gets
    an ``error`` instead. With ``remember`` the fastest correct choice is recorded (with
    every verdict) for ``Predictor(kernel="auto")``; ``cache_note`` says why not if the
    cache is not writable. ``float_source`` is a float TFLite of the same model, timed
    with TensorFlow's own interpreter (with its default XNNPACK delegate).
    """
    flatbuffer = _load(source)
    for name in kernels or ():
        if name not in KERNELS:
            raise ValueError(f"Unknown kernel {name!r}; valid kernels are: {', '.join(KERNELS)}")
    names = list(kernels or KERNELS)
    results: dict[str, Any] = {
        "threads": threads,
        "warmup": warmup,
        "repeats": repeats,
        "machine": platform.machine(),
        "kernels": {},
    }
    expected: list[np.ndarray] | None = None
    check_x: np.ndarray | None = None
    atol = 0.0
    if check:
        try:
            reference = make_interpreter(flatbuffer, threads=threads, kernel="reference")
            check_x = _random_input(reference, seed=1, batch=CHECK_INPUTS)
            expected = _outputs(reference, check_x)
            atol = _output_atol(reference)
            del reference
        except (RuntimeError, ValueError) as err:
            results["check_error"] = "the reference kernel cannot run this model: " + _first_line(
                err
            )

    def lce_maker(name: str) -> Any:
        return lambda: _lce_runner(make_interpreter(flatbuffer, threads=threads, kernel=name))

    makers: dict[str, Any] = {}
    verdicts: dict[str, dict[str, Any]] = {}

    def first_run(name: str) -> None:
        """A first interpreter (freed on return): does the choice run the model, and is
        it right?"""
        interp = make_interpreter(flatbuffer, threads=threads, kernel=name)
        if expected is not None and check_x is not None:
            verdict = compare_outputs(_outputs(interp, check_x), expected, atol)
            verdicts[name] = _judge_native(name, flatbuffer, check_x, verdict)
        _lce_runner(interp)()

    for name in names:
        try:
            first_run(name)
            makers[name] = lce_maker(name)
        except (RuntimeError, ValueError) as err:  # e.g. a kernel refusing grouped convs
            results["kernels"][name] = {"error": _first_line(err)}
    if not makers:
        raise ValueError(
            "No kernel choice could run this model: "
            + "; ".join(v.get("error", "") for v in results["kernels"].values())
        )
    if float_source is not None:
        float_flatbuffer = _load(float_source)

        def float_runner() -> Any:
            import tensorflow as tf

            interp = tf.lite.Interpreter(model_content=float_flatbuffer, num_threads=threads)
            interp.allocate_tensors()
            return _tf_runner(interp)

        makers["float"] = float_runner
    times: dict[str, list[float]] = {name: [] for name in makers}
    first = (repeats + 1) // 2
    for order, count in ((list(makers), first), (list(makers)[::-1], repeats - first)):
        for name in order:
            if not count:
                continue
            run = makers[name]()
            for _ in range(max(warmup, 1)):
                run()
            for _ in range(count):
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) * 1000)
            # The interpreter and its threads go before the next block: reference counting
            # frees it here (tested with the garbage collector off). No gc.collect(): in
            # a process holding many models a full collection takes seconds.
            del run
    for name in makers:
        if name != "float":
            results["kernels"][name] = {**_stats(times[name]), **verdicts.get(name, {})}
    results["kernels"] = {k: results["kernels"][k] for k in names}
    timed = {k: v for k, v in results["kernels"].items() if "median_ms" in v}
    correct = {k: v for k, v in timed.items() if v.get("agrees", expected is None)}
    results["disagreeing"] = sorted(k for k, v in timed.items() if v.get("agrees") is False)
    if correct:
        best = min(correct, key=lambda k: correct[k]["median_ms"])
        results["best_kernel"] = best
        results["best_median_ms"] = correct[best]["median_ms"]
        if remember and expected is not None:
            note = remember_kernel(
                flatbuffer,
                threads,
                best,
                correct[best]["median_ms"],
                {k: v.get("agrees") for k, v in results["kernels"].items()},
            )
            if note:
                results["cache_note"] = note
    else:
        results["best_kernel"] = None
        results["best_median_ms"] = None
    if "float" in makers:
        results["float"] = _stats(times["float"])
        if results["best_median_ms"] is not None:
            results["binary_to_float_ratio"] = (
                results["best_median_ms"] / results["float"]["median_ms"]
            )
    return results


def _lce_runner(interpreter: Any) -> Any:
    return _single_run(interpreter, _random_input(interpreter))


def _tf_runner(interp: Any) -> Any:
    detail = interp.get_input_details()[0]
    x = np.random.RandomState(0).randn(*detail["shape"]).astype(detail["dtype"])

    def run() -> None:
        interp.set_tensor(detail["index"], x)
        interp.invoke()

    return run


class Predictor:
    """Batch inference with an LCE flatbuffer, on the fastest correct kernel here.

    ``kernel="auto"`` uses the kernel remembered for this model file (see
    ``kernel_cache_path``); failing that it checks ``AUTO_KERNELS`` against LCE's
    reference kernel and times them on the model once (1 warm-up, 3 timed runs each),
    keeps the fastest that agrees and remembers it. When no optimized choice agrees it
    runs the reference kernel. Name a kernel from ``KERNELS`` to force one.
    ``kernel_source`` says which happened: "cache", "measured" or "given"; ``notes``
    (also issued as warnings) say why a choice was skipped (native kernels unavailable,
    a kernel that disagrees, an unwritable cache).
    """

    def __init__(
        self,
        source: bytes | str | os.PathLike,
        *,
        threads: int = 2,
        kernel: str = "auto",
        cache: bool = True,
    ) -> None:
        self.flatbuffer = _load(source)
        self.threads = threads
        self.kernel_source = "given"
        self.notes: list[str] = []
        if kernel == "auto":
            remembered = cached_kernel(self.flatbuffer, threads) if cache else None
            if remembered is not None:
                try:
                    self._start(remembered)
                    self.kernel_source = "cache"
                    return
                except (RuntimeError, ValueError) as err:
                    self.notes.append(f"remembered kernel {remembered} failed: {_first_line(err)}")
            timings = benchmark(
                self.flatbuffer,
                threads=threads,
                warmup=1,
                repeats=3,
                kernels=list(AUTO_KERNELS),
                remember=cache,
            )
            for name, entry in timings["kernels"].items():
                if "error" in entry:
                    self.notes.append(f"{name} skipped: {entry['error']}")
                elif entry.get("agrees") is False:
                    self.notes.append(
                        f"{name} skipped: its outputs differ from LCE's reference kernel by "
                        f"{entry['max_abs_diff']:.3g} (inputs matching: {entry.get('matching')})"
                    )
            if timings.get("cache_note"):
                self.notes.append(f"choice not remembered: {timings['cache_note']}")
            kernel = timings["best_kernel"] or "reference"
            self.kernel_source = "measured"
            for note in self.notes:
                warnings.warn(f"Predictor(kernel='auto'): {note}", RuntimeWarning, stacklevel=2)
        elif kernel not in KERNELS:
            raise ValueError(
                f"Unknown kernel {kernel!r}; valid kernels are: auto, " + ", ".join(KERNELS)
            )
        self._start(kernel)

    def _start(self, kernel: str) -> None:
        self.kernel = kernel
        self.interpreter = make_interpreter(self.flatbuffer, threads=self.threads, kernel=kernel)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.interpreter.input_shapes[0])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.interpreter.output_shapes[0])

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in s) for s in self.interpreter.output_shapes]

    def __call__(self, x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        return self.predict(x)

    def predict(self, x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """Outputs for a batch ``x``: an array, or a list with every output of a
        multi-output model. The native kernels run the whole batch in one invoke; LCE's
        interpreter runs it sample by sample."""
        interp = self.interpreter
        x = np.asarray(x)
        if np.dtype(interp.input_types[0]) == np.int8:
            scale, zero = interp.input_scales[0], interp.input_zero_points[0]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        y = interp.predict(x)
        outputs = list(y) if isinstance(y, list) else [y]
        for i, out in enumerate(outputs):
            if np.dtype(interp.output_types[i]) == np.int8:
                scale, zero = interp.output_scales[i], interp.output_zero_points[i]
                outputs[i] = (out.astype(np.float32) - zero) * scale
        return outputs[0] if len(outputs) == 1 else outputs
