"""Deployment with Larq Compute Engine: convert, verify, report, benchmark, run.

    from larq_bnas.converters import convert, verify, acceleration_report, Predictor

- ``convert(model, target=, int8_io=, default_int8_range=)`` -> LCE flatbuffer bytes;
  ``convert_float(model)`` -> the plain float TFLite of the same model; ``save``.
- ``read(path_or_bytes)`` -> ``FlatbufferInfo``: op census, shapes, sizes, bconv options.
- ``acceleration_report(model, info, target=)`` / ``format_report``: which binary layers
  became ``LceBconv2d``, which did not and why, BOPs share, predicted vs actual size.
- ``verify(model, flatbuffer, n=)``: Keras vs LCE outputs.
- ``benchmark(path, threads=)``: batch-1 latency per LCE kernel choice (+ float TFLite).
- ``Predictor(path)``: inference on the fastest kernel for this machine (remembered).
"""

from larq_bnas.converters.flatbuffer import LCE_OPS, FlatbufferInfo, read
from larq_bnas.converters.inference import (
    AUTO_KERNELS,
    KERNELS,
    Predictor,
    benchmark,
    cached_kernel,
    kernel_cache_path,
    make_interpreter,
)
from larq_bnas.converters.lce import IO_TYPES, TARGETS, convert, convert_float, float32_model, save
from larq_bnas.converters.report import (
    acceleration_report,
    format_report,
    randomize_batchnorm,
    untrained_batchnorm,
)
from larq_bnas.converters.verify import verify

__all__ = [
    "AUTO_KERNELS",
    "IO_TYPES",
    "KERNELS",
    "LCE_OPS",
    "TARGETS",
    "FlatbufferInfo",
    "Predictor",
    "acceleration_report",
    "benchmark",
    "cached_kernel",
    "convert",
    "convert_float",
    "float32_model",
    "format_report",
    "kernel_cache_path",
    "make_interpreter",
    "randomize_batchnorm",
    "read",
    "save",
    "untrained_batchnorm",
    "verify",
]
