"""Check a converted flatbuffer against the Keras model it came from.

The same inputs go through Keras (``model(x, training=False)``) and through LCE's
interpreter; the result holds the largest and the mean absolute difference of the outputs
and, for classifiers, how often both pick the same class (top-1 agreement). Binary
networks can differ by more than float rounding where a pre-activation is exactly zero
(a "sign tie": Keras and LCE may round it to different sides), so top-1 agreement is the
figure to look at when the largest difference is above 1e-3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from larq_bnas.runtime.interpreters import Predictor

#: Kernels tried in turn: the default one refuses grouped binary convs at run time.
VERIFY_KERNELS = ("default", "indirect_bgemm", "reference")


def verify(
    model: tf.keras.Model,
    flatbuffer: bytes,
    *,
    n: int = 10,
    seed: int = 0,
    inputs: np.ndarray | None = None,
    threads: int = 2,
    kernel: str | None = None,
) -> dict[str, Any]:
    """Run ``n`` inputs (standard normal unless given) through Keras and through LCE's
    interpreter; return ``n``, ``max_abs_diff``, ``mean_abs_diff``, ``top1_agreement``
    (for a 2-D output) and the LCE ``kernel`` used (the first of ``VERIFY_KERNELS`` that
    runs the model, unless one is named)."""
    if inputs is None:
        if n < 1:
            raise ValueError(f"verify needs at least one input, got n={n}")
        shape = (n, *model.input_shape[1:])
        inputs = np.random.RandomState(seed).randn(*shape).astype(np.float32)
    inputs = np.asarray(inputs, dtype=np.float32)
    expected = model(inputs, training=False).numpy()
    errors = []
    for name in (kernel,) if kernel else VERIFY_KERNELS:
        try:
            predictor = Predictor(flatbuffer, threads=threads, kernel=name)
            got = predictor.predict(inputs)
            break
        except RuntimeError as err:  # e.g. the default kernel refusing a grouped conv
            errors.append(f"{name}: {str(err).strip().splitlines()[0]}")
    else:
        raise RuntimeError("LCE could not run the flatbuffer: " + "; ".join(errors))
    got = np.asarray(got).reshape(expected.shape)
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    result: dict[str, Any] = {
        "n": int(len(inputs)),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "kernel": name,
    }
    if expected.ndim == 2 and expected.shape[-1] > 1:
        result["top1_agreement"] = float(np.mean(got.argmax(-1) == expected.argmax(-1)))
    return result
