"""Running LCE flatbuffers: interpreters, kernel choice, benchmark and ``Predictor``.

- ``make_interpreter(path, kernel=, threads=)``: an interpreter on one kernel choice
  (LCE's own kernels, or ``native``: this library's x86 delegate in ``native``);
- ``benchmark(path, threads=)``: batch-1 latency per kernel choice (+ float TFLite);
- ``Predictor(path, kernel="auto")``: inference on the fastest kernel for this machine.

Conversion lives apart, in ``larq_bnas.converters``.
"""

from larq_bnas.runtime.interpreters import (
    AUTO_KERNELS,
    KERNELS,
    Predictor,
    agreement,
    benchmark,
    cached_kernel,
    compare_outputs,
    kernel_cache_path,
    make_interpreter,
)

__all__ = [
    "AUTO_KERNELS",
    "KERNELS",
    "Predictor",
    "agreement",
    "benchmark",
    "cached_kernel",
    "compare_outputs",
    "kernel_cache_path",
    "make_interpreter",
]
