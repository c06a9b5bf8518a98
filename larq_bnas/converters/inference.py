"""Run LCE flatbuffers: kernel choices, timing, and the ``Predictor`` helper.

LCE ships several binary-convolution kernels; on x86 (no hand-written kernels) the choice
decides whether a binary model beats its float version (lce.md: QuickNet 96 ms with the
default kernel, 34 ms with the indirect BGEMM one). ``Predictor(kernel="auto")`` measures
the choices once on the model and keeps the fastest.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

#: name -> Interpreter keyword arguments
KERNELS: dict[str, dict[str, bool]] = {
    "default": {},
    "indirect_bgemm": {"use_indirect_bgemm": True},
    "reference": {"use_reference_bconv": True},
    "xnnpack": {"use_xnnpack": True},
    "indirect_bgemm+xnnpack": {"use_indirect_bgemm": True, "use_xnnpack": True},
}


def _load(source: bytes | str | os.PathLike) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"Flatbuffer {str(path)!r} does not exist")
    data = path.read_bytes()
    if data[4:8] != b"TFL3":
        raise ValueError(f"{str(path)!r} is not a TFLite flatbuffer")
    return data


def make_interpreter(source: bytes | str | os.PathLike, *, threads: int = 2,
                     kernel: str = "default") -> Any:
    """An LCE interpreter for ``source`` with one of ``KERNELS``."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    if kernel not in KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}; valid kernels are: {', '.join(KERNELS)}")
    return Interpreter(_load(source), num_threads=threads, **KERNELS[kernel])


def _random_input(interpreter: Any, seed: int = 0) -> np.ndarray:
    shape = tuple(interpreter.input_shapes[0])
    dtype = interpreter.input_types[0]
    rng = np.random.RandomState(seed)
    if np.dtype(dtype) == np.int8:
        return rng.randint(-128, 128, size=shape).astype(np.int8)
    return rng.randn(*shape).astype(np.float32)


def time_interpreter(interpreter: Any, *, warmup: int = 3, repeats: int = 20,
                     x: np.ndarray | None = None) -> dict[str, float]:
    """Batch-1 latency in ms: median, p10, p90 over ``repeats`` after ``warmup`` runs."""
    x = _random_input(interpreter) if x is None else x
    raw = interpreter.interpreter
    for _ in range(warmup):
        raw.predict([x])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        raw.predict([x])
        times.append((time.perf_counter() - start) * 1000)
    q = np.percentile(times, [10, 90])
    return {"median_ms": statistics.median(times), "p10_ms": float(q[0]), "p90_ms": float(q[1]),
            "repeats": repeats}


def benchmark(source: bytes | str | os.PathLike, *, threads: int = 2, warmup: int = 3,
              repeats: int = 20, kernels: list[str] | None = None,
              float_source: bytes | str | os.PathLike | None = None) -> dict[str, Any]:
    """Time ``source`` with each kernel choice; report the fastest, and the float model."""
    results: dict[str, Any] = {"threads": threads, "kernels": {}}
    for name in kernels or list(KERNELS):
        try:
            interpreter = make_interpreter(source, threads=threads, kernel=name)
            results["kernels"][name] = time_interpreter(interpreter, warmup=warmup,
                                                        repeats=repeats)
        except (RuntimeError, ValueError) as err:  # e.g. a kernel refusing grouped convs
            results["kernels"][name] = {"error": str(err).splitlines()[0]}
    timed = {k: v for k, v in results["kernels"].items() if "median_ms" in v}
    if not timed:
        raise ValueError("No kernel choice could run this model: "
                         + "; ".join(v.get("error", "") for v in results["kernels"].values()))
    best = min(timed, key=lambda k: timed[k]["median_ms"])
    results["best_kernel"] = best
    results["best_median_ms"] = timed[best]["median_ms"]
    if float_source is not None:
        import tensorflow as tf

        interp = tf.lite.Interpreter(model_content=_load(float_source), num_threads=threads)
        interp.allocate_tensors()
        results["float"] = _time_tf_interpreter(interp, warmup, repeats)
        results["binary_to_float_ratio"] = results["best_median_ms"] / results["float"]["median_ms"]
    return results


def _time_tf_interpreter(interp: Any, warmup: int, repeats: int) -> dict[str, float]:
    detail = interp.get_input_details()[0]
    x = np.random.RandomState(0).randn(*detail["shape"]).astype(detail["dtype"])
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        interp.set_tensor(detail["index"], x)
        interp.invoke()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    q = np.percentile(times, [10, 90])
    return {"median_ms": statistics.median(times), "p10_ms": float(q[0]), "p90_ms": float(q[1]),
            "repeats": repeats}


class Predictor:
    """Batch inference with an LCE flatbuffer, on the fastest kernel for this machine.

    ``kernel="auto"`` times the default and the indirect-BGEMM kernels on the model once
    and keeps the faster; name a kernel from ``KERNELS`` to force one.
    """

    def __init__(self, source: bytes | str | os.PathLike, *, threads: int = 2,
                 kernel: str = "auto") -> None:
        self.flatbuffer = _load(source)
        if kernel == "auto":
            timings = benchmark(self.flatbuffer, threads=threads, warmup=1, repeats=3,
                                kernels=["default", "indirect_bgemm"])
            kernel = timings["best_kernel"]
        self.kernel = kernel
        self.interpreter = make_interpreter(self.flatbuffer, threads=threads, kernel=kernel)

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
