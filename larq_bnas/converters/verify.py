"""Check a converted flatbuffer against the Keras model it came from."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from larq_bnas.converters.inference import Predictor


def verify(model: tf.keras.Model, flatbuffer: bytes, *, n: int = 10, seed: int = 0,
           inputs: np.ndarray | None = None, threads: int = 2) -> dict[str, Any]:
    """Run ``n`` inputs (random normal unless given) through Keras and through LCE's
    interpreter; return max / mean absolute difference and top-1 agreement."""
    if inputs is None:
        shape = (n, *model.input_shape[1:])
        inputs = np.random.RandomState(seed).randn(*shape).astype(np.float32)
    expected = model(inputs, training=False).numpy()
    got = Predictor(flatbuffer, threads=threads, kernel="default").predict(inputs)
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    result: dict[str, Any] = {
        "n": int(len(inputs)),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
    }
    if expected.ndim == 2:
        result["top1_agreement"] = float(np.mean(got.argmax(-1) == expected.argmax(-1)))
    return result
