"""Conversion to Larq Compute Engine flatbuffers: convert, read, verify, report.

    from larq_bnas.converters import convert, verify, acceleration_report

Running a flatbuffer (interpreters, kernel choice, benchmark, ``Predictor``) lives in
``larq_bnas.runtime``.

- ``convert(model, target=, int8_io=, default_int8_range=)`` -> LCE flatbuffer bytes;
  ``convert_float(model)`` -> the plain float TFLite of the same model; ``save``.
- ``read(path_or_bytes)`` -> ``FlatbufferInfo``: op census, shapes, sizes, bconv options.
- ``acceleration_report(model, info, target=)`` / ``format_report``: which binary layers
  became ``LceBconv2d``, which did not and why, BOPs share, predicted vs actual size.
- ``verify(model, flatbuffer, n=)``: Keras vs LCE outputs.
"""

from larq_bnas.converters.acceleration import (
    acceleration_report,
    format_report,
    randomize_batchnorm,
    untrained_batchnorm,
)
from larq_bnas.converters.flatbuffer import LCE_OPS, FlatbufferInfo, read
from larq_bnas.converters.lce import IO_TYPES, TARGETS, convert, convert_float, float32_model, save
from larq_bnas.converters.verify import verify

#: Names that moved to ``larq_bnas.runtime``; still reachable here for one release.
_RUNTIME_NAMES = (
    "AUTO_KERNELS",
    "KERNELS",
    "Predictor",
    "benchmark",
    "cached_kernel",
    "kernel_cache_path",
    "make_interpreter",
)


def __getattr__(name: str) -> object:
    if name in _RUNTIME_NAMES:
        import warnings

        from larq_bnas import runtime

        warnings.warn(
            f"larq_bnas.converters.{name} moved to larq_bnas.runtime.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        value = getattr(runtime, name)
        globals()[name] = value  # warn once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IO_TYPES",
    "LCE_OPS",
    "TARGETS",
    "FlatbufferInfo",
    "acceleration_report",
    "convert",
    "convert_float",
    "float32_model",
    "format_report",
    "randomize_batchnorm",
    "read",
    "save",
    "untrained_batchnorm",
    "verify",
]
