"""Deployment with Larq Compute Engine: convert, verify, report, benchmark, run.

    from larq_bnas.converters import convert, verify, acceleration_report, Predictor
"""

from larq_bnas.converters.flatbuffer import FlatbufferInfo, read
from larq_bnas.converters.inference import KERNELS, Predictor, benchmark, make_interpreter
from larq_bnas.converters.lce import TARGETS, convert, convert_float, save
from larq_bnas.converters.report import acceleration_report, format_report
from larq_bnas.converters.verify import verify

__all__ = [
    "KERNELS",
    "TARGETS",
    "FlatbufferInfo",
    "Predictor",
    "acceleration_report",
    "benchmark",
    "convert",
    "convert_float",
    "format_report",
    "make_interpreter",
    "read",
    "save",
    "verify",
]
