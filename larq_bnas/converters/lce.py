"""Convert Keras models to Larq Compute Engine flatbuffers (and to float TFLite).

LCE's own ``convert_keras_model`` first saves a full Keras SavedModel, which traces every
layer separately and takes most of the time. We export a SavedModel holding only the
model's variables and one inference function (the same graph), which is several times
faster, and hand that to ``convert_saved_model``.

LCE converts only in eager mode and only float32 models: ``convert`` refuses graph mode
with a clear error and rebuilds a model that uses another dtype policy (e.g.
``mixed_float16``) as a float32 copy with the same weights first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from larq_bnas._io import write_bytes

TARGETS = ("arm", "xcore")
IO_TYPES = ("float32", "int8")


def _check_eager() -> None:
    if not tf.executing_eagerly():
        raise RuntimeError(
            "Larq Compute Engine converts only in eager mode; call the converter outside "
            "tf.function / tf.compat.v1 graph mode (tf.compat.v1.enable_eager_execution())"
        )


def _policy_name(layer: Any) -> str:
    policy = getattr(layer, "dtype_policy", None)
    return getattr(policy, "name", "float32") if policy is not None else "float32"


def float32_model(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` itself if every layer computes in float32, else a float32 copy of it.

    LCE (like the TFLite converter) cannot convert mixed-precision models; the copy is
    rebuilt from the model's config under the float32 policy and gets the same weights.
    """
    if (
        all(
            _policy_name(layer) == "float32"
            for layer in model.submodules
            if isinstance(layer, tf.keras.layers.Layer)
        )
        and _policy_name(model) == "float32"
    ):
        return model
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("float32")
    try:
        import larq_bnas.models.bnas.cells  # noqa: F401  (registers the custom layers)

        try:
            config = model.get_config()
            _strip_dtype_policies(config)
            clone = model.__class__.from_config(config)
        except (NotImplementedError, TypeError, ValueError) as err:
            raise ValueError(
                f"Model {model.name!r} computes in {_policy_name(model)!r}; LCE converts "
                "only float32 models and this one could not be rebuilt from its config "
                f"({err}). Build it under tf.keras.mixed_precision.set_global_policy("
                "'float32') and load its weights."
            ) from err
        clone.set_weights(
            [
                np.asarray(w, dtype=np.float32) if np.asarray(w).dtype.kind == "f" else w
                for w in model.get_weights()
            ]
        )
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    return clone


def _strip_dtype_policies(config: Any) -> None:
    """Replace every layer's mixed dtype policy in a Keras config by float32."""
    if isinstance(config, dict):
        dtype = config.get("dtype")
        if isinstance(dtype, dict) or (isinstance(dtype, str) and "mixed" in dtype):
            config["dtype"] = "float32"
        for value in config.values():
            _strip_dtype_policies(value)
    elif isinstance(config, list):
        for value in config:
            _strip_dtype_policies(value)


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
    width = len(str(len(model.outputs)))

    def serve(x: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = model(x, training=False)
        if isinstance(outputs, (list, tuple)):  # one signature key per output, in order
            return {f"output_{i:0{width}d}": y for i, y in enumerate(outputs)}
        return {"output": outputs}

    module.serve = tf.function(serve, input_signature=[spec])
    tf.saved_model.save(
        module, directory, signatures={"serving_default": module.serve.get_concrete_function()}
    )


def _io_type(value: Any, what: str) -> tf.DType:
    if isinstance(value, tf.DType):
        value = value.name
    if value not in IO_TYPES:
        raise ValueError(f"Unknown {what} {value!r}; valid types are: {', '.join(IO_TYPES)}")
    return tf.int8 if value == "int8" else tf.float32


def convert(
    model: tf.keras.Model,
    *,
    target: str = "arm",
    int8_io: bool = False,
    default_int8_range: tuple[float, float] | None = None,
    inference_input_type: str | tf.DType | None = None,
    inference_output_type: str | tf.DType | None = None,
) -> bytes:
    """The LCE flatbuffer of ``model``.

    Args:
        model: a Keras model with a fixed input shape (larq layers become LCE ops).
        target: "arm" (phones, Raspberry Pi, and x86 for testing) or "xcore".
        int8_io: int8 model input and output instead of float32 (both types at once).
        default_int8_range: (min, max) for tensors without quantization statistics
            (LCE's ``experimental_default_int8_range``, "dummy quantization": for
            latency tests of int8 models, not for accuracy).
        inference_input_type / inference_output_type: "float32" or "int8" for the input
            and the output separately (override ``int8_io``).

    int8 input or output needs an int8-quantized model: one trained with fake
    quantization, or ``default_int8_range``.
    """
    import larq_compute_engine as lce

    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; valid targets are: {', '.join(TARGETS)}")
    _check_eager()
    default_io = "int8" if int8_io else "float32"
    input_type = _io_type(inference_input_type or default_io, "inference input type")
    output_type = _io_type(inference_output_type or default_io, "inference output type")
    if default_int8_range is not None:
        low, high = (float(v) for v in default_int8_range)
        if not low < high:
            raise ValueError(
                f"default_int8_range must be (min, max) with min < max, "
                f"got {tuple(default_int8_range)}"
            )
        default_int8_range = (low, high)
    model = float32_model(model)
    with tempfile.TemporaryDirectory() as directory:
        _export_inference_savedmodel(model, directory)
        try:
            return lce.convert_saved_model(
                directory,
                inference_input_type=input_type,
                inference_output_type=output_type,
                target=target,
                experimental_default_int8_range=default_int8_range,
            )
        except ValueError as err:
            if "not integer quantized" in str(err):
                raise ValueError(
                    "int8 input/output needs an int8-quantized model: train it with fake "
                    "quantization, or pass default_int8_range (CLI: --default-int8-range "
                    "MIN MAX; dummy quantization, for latency tests only)"
                ) from err
            raise


def convert_float(model: tf.keras.Model) -> bytes:
    """A plain float TFLite flatbuffer of ``model`` (larq quantizers run as float ops).

    This is what TensorFlow's own converter (``tf.lite.TFLiteConverter``) makes of the
    same Keras graph: the baseline that shows what the binary ops buy.
    """
    _check_eager()
    model = float32_model(model)
    with tempfile.TemporaryDirectory() as directory:
        _export_inference_savedmodel(model, directory)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        return converter.convert()


def save(flatbuffer: bytes, path: str | os.PathLike) -> Path:
    """Write a flatbuffer atomically."""
    return write_bytes(path, flatbuffer)
