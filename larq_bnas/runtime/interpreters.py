"""Run LCE flatbuffers: kernel choices, timing, and the ``Predictor`` helper.

LCE ships several binary-convolution kernels; on x86 (no hand-written kernels) the choice
decides whether a binary model beats its float version (lce.md: QuickNet 96 ms with the
default kernel, 34 ms with the indirect BGEMM one). The ``native`` choice runs the same
flatbuffer in TensorFlow Lite's interpreter with this library's own vectorised kernels
for LCE's ops, compiled for the CPU at hand (``larq_bnas.runtime.native``).
``Predictor(kernel="auto")`` measures the choices once on the model and keeps the fastest.

Measured choices are remembered per model file (its sha256), thread count and machine in
``kernel_cache_path()`` (``$LARQ_BNAS_CACHE_DIR/lce_kernels.json``, by default under
``~/.cache/larq_bnas``), so the next ``Predictor`` of the same file starts at once.
``benchmark()`` (and ``larq_bnas benchmark``) records its fastest kernel there too.
"""

from __future__ import annotations

import hashlib
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from larq_bnas._cache import cache_root
from larq_bnas._io import read_json, write_json

#: name -> LCE Interpreter keyword arguments (``native``: larq_bnas's own kernels)
KERNELS: dict[str, dict[str, bool]] = {
    "native": {},
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


def cached_kernel(flatbuffer: bytes, threads: int) -> str | None:
    """The kernel remembered for this model file, thread count and machine, if any."""
    try:
        entry = read_json(kernel_cache_path()).get(_cache_key(flatbuffer, threads))
    except (OSError, ValueError, AttributeError):
        return None
    kernel = entry.get("kernel") if isinstance(entry, dict) else None
    return kernel if kernel in KERNELS else None


def remember_kernel(flatbuffer: bytes, threads: int, kernel: str, median_ms: float) -> None:
    """Record ``kernel`` as the fastest for this model file (best effort: a read-only
    cache directory is ignored)."""
    path = kernel_cache_path()
    try:
        cache = read_json(path) if path.exists() else {}
        if not isinstance(cache, dict):
            cache = {}
        cache[_cache_key(flatbuffer, threads)] = {
            "kernel": kernel,
            "median_ms": round(float(median_ms), 4),
        }
        write_json(path, cache)
    except (OSError, ValueError):
        pass


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
    if kernel == "native":
        from larq_bnas.runtime.native import NativeInterpreter

        return NativeInterpreter(_load(source), num_threads=threads)
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(_load(source), num_threads=threads, **KERNELS[kernel])


def _single_run(interpreter: Any, x: np.ndarray) -> Any:
    """A callable that runs ``interpreter`` once on the single sample ``x``."""
    if hasattr(interpreter, "invoke_one"):
        return lambda: interpreter.invoke_one(x)
    raw = interpreter.interpreter
    return lambda: raw.predict([x])


def _random_input(interpreter: Any, seed: int = 0) -> np.ndarray:
    shape = tuple(interpreter.input_shapes[0])
    dtype = interpreter.input_types[0]
    rng = np.random.RandomState(seed)
    if np.dtype(dtype) == np.int8:
        return rng.randint(-128, 128, size=shape).astype(np.int8)
    return rng.randn(*shape).astype(np.float32)


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
) -> dict[str, Any]:
    """Time ``source`` with each kernel choice; report the fastest, and the float model.

    Every choice runs ``warmup`` times, then ``repeats`` timed batch-1 runs (median, p10,
    p90 in ms), in two rounds: all choices one after the other, then again in reverse
    order, so that a change in the load of a shared machine falls on every choice alike.
    Each block has its own fresh interpreter (warmed up again), and only one interpreter
    lives at a time: the idle worker threads of one (LCE's ruy pool, XNNPACK's, the
    native kernels') would otherwise spin beside the next and slow it down. A choice
    that cannot run the model (the default kernel refuses grouped binary convs) gets an
    ``error`` instead. With ``remember`` the fastest choice is recorded for
    ``Predictor(kernel="auto")``. ``float_source`` is a float TFLite of the same model,
    timed with TensorFlow's own interpreter (with its default XNNPACK delegate).
    """
    import gc

    flatbuffer = _load(source)
    for name in kernels or ():
        if name not in KERNELS:
            raise ValueError(f"Unknown kernel {name!r}; valid kernels are: {', '.join(KERNELS)}")
    results: dict[str, Any] = {
        "threads": threads,
        "warmup": warmup,
        "repeats": repeats,
        "machine": platform.machine(),
        "kernels": {},
    }

    def lce_maker(name: str) -> Any:
        return lambda: _lce_runner(make_interpreter(flatbuffer, threads=threads, kernel=name))

    makers: dict[str, Any] = {}
    for name in kernels or list(KERNELS):
        maker = lce_maker(name)
        try:  # a first interpreter and run, to know whether the choice runs the model
            maker()()
            makers[name] = maker
        except (RuntimeError, ValueError) as err:  # e.g. a kernel refusing grouped convs
            results["kernels"][name] = {"error": str(err).strip().splitlines()[0]}
        gc.collect()
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
            del run
            gc.collect()  # the interpreter and its threads go before the next block
    for name in makers:
        if name != "float":
            results["kernels"][name] = _stats(times[name])
    results["kernels"] = {k: results["kernels"][k] for k in kernels or list(KERNELS)}
    timed = {k: v for k, v in results["kernels"].items() if "median_ms" in v}
    best = min(timed, key=lambda k: timed[k]["median_ms"])
    results["best_kernel"] = best
    results["best_median_ms"] = timed[best]["median_ms"]
    if remember:
        remember_kernel(flatbuffer, threads, best, timed[best]["median_ms"])
    if "float" in makers:
        results["float"] = _stats(times["float"])
        results["binary_to_float_ratio"] = results["best_median_ms"] / results["float"]["median_ms"]
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
    """Batch inference with an LCE flatbuffer, on the fastest kernel for this machine.

    ``kernel="auto"`` uses the kernel remembered for this model file (see
    ``kernel_cache_path``); failing that it times ``AUTO_KERNELS`` on the model once
    (1 warm-up, 3 timed runs each), keeps the fastest and remembers it. Name a kernel
    from ``KERNELS`` to force one. ``kernel_source`` says which happened: "cache",
    "measured" or "given".
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
        if kernel == "auto":
            remembered = cached_kernel(self.flatbuffer, threads) if cache else None
            if remembered is not None:
                kernel, self.kernel_source = remembered, "cache"
            else:
                timings = benchmark(
                    self.flatbuffer,
                    threads=threads,
                    warmup=1,
                    repeats=3,
                    kernels=list(AUTO_KERNELS),
                    remember=cache,
                )
                kernel, self.kernel_source = timings["best_kernel"], "measured"
        elif kernel not in KERNELS:
            raise ValueError(
                f"Unknown kernel {kernel!r}; valid kernels are: auto, " + ", ".join(KERNELS)
            )
        self.kernel = kernel
        self.interpreter = make_interpreter(self.flatbuffer, threads=threads, kernel=kernel)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.interpreter.input_shapes[0])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.interpreter.output_shapes[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch ``x`` (run sample by sample, as LCE does)."""
        interp = self.interpreter
        if np.dtype(interp.input_types[0]) == np.int8:
            scale, zero = interp.input_scales[0], interp.input_zero_points[0]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        y = interp.predict(np.asarray(x))
        if np.dtype(interp.output_types[0]) == np.int8:
            scale, zero = interp.output_scales[0], interp.output_zero_points[0]
            y = (y.astype(np.float32) - zero) * scale
        return y
