"""Convert Keras models to Larq Compute Engine flatbuffers (and to float TFLite).

LCE's own ``convert_keras_model`` first saves a full Keras SavedModel, which traces every
layer separately and takes most of the time. We export a SavedModel holding only the
model's variables and one inference function (the same graph), which is several times
faster, and hand that to ``convert_saved_model``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import tensorflow as tf

from larq_bnas._io import write_bytes

TARGETS = ("arm", "xcore")


def _export_inference_savedmodel(model: tf.keras.Model, directory: str) -> None:
    shape = list(model.input_shape)
    shape[0] = 1
    if any(d is None for d in shape[1:]):
        raise ValueError(
            f"Model input shape {tuple(model.input_shape)} is not fully known; build the "
            "model with a fixed input_shape before converting"
        )
    module = tf.Module()
    module.weights_ = list(model.variables)
    spec = tf.TensorSpec(shape, tf.float32, name="input")
    module.serve = tf.function(
        lambda x: {"output": model(x, training=False)}, input_signature=[spec]
    )
    tf.saved_model.save(
        module, directory, signatures={"serving_default": module.serve.get_concrete_function()}
    )


def convert(
    model: tf.keras.Model,
    *,
    target: str = "arm",
    int8_io: bool = False,
    default_int8_range: tuple[float, float] | None = None,
) -> bytes:
    """The LCE flatbuffer of ``model``.

    Args:
        model: a Keras model with a fixed input shape (larq layers become LCE ops).
        target: "arm" (phones, Raspberry Pi, and x86 for testing) or "xcore".
        int8_io: int8 model input and output instead of float32.
        default_int8_range: (min, max) for tensors without quantization statistics.
    """
    import larq_compute_engine as lce

    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; valid targets are: {', '.join(TARGETS)}")
    io_type = tf.int8 if int8_io else tf.float32
    with tempfile.TemporaryDirectory() as directory:
        _export_inference_savedmodel(model, directory)
        return lce.convert_saved_model(
            directory,
            inference_input_type=io_type,
            inference_output_type=io_type,
            target=target,
            experimental_default_int8_range=default_int8_range,
        )


def convert_float(model: tf.keras.Model) -> bytes:
    """A plain float TFLite flatbuffer of ``model`` (larq quantizers run as float ops)."""
    with tempfile.TemporaryDirectory() as directory:
        _export_inference_savedmodel(model, directory)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        return converter.convert()


def save(flatbuffer: bytes, path: str | os.PathLike) -> Path:
    """Write a flatbuffer atomically."""
    return write_bytes(path, flatbuffer)
