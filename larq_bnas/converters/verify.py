"""Check a converted flatbuffer against the Keras model it came from.

The same inputs go through Keras (``model(x, training=False)``) and through LCE's
interpreter with each kernel asked for. LCE's reference kernel is the judge of the
flatbuffer: if it disagrees with Keras, the flatbuffer (the conversion) is at fault; if
it agrees but another kernel does not, that kernel is at fault on this machine (LCE's
optimized x86 kernels have a zero-padding defect, see docs/readme/deployment.md).
Inputs on which the reference kernel and Keras differ only because a value fed to a
binarization lies within rounding of zero (found in the native kernels' run) do not
blame the flatbuffer (``explained``; deployment.md, "Agreement and rounding sign flips").

Every output of a multi-output model is compared. The result holds, per kernel, the
largest and mean absolute difference and, for classifiers, how often both pick the same
class (top-1 agreement); the top-level figures are the reference kernel's (or the named
kernel's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from larq_bnas.runtime.interpreters import AGREEMENT_SHARE, Predictor, compare_outputs

#: Kernels run by default: the reference kernel first (it judges the flatbuffer), then
#: the ones ``Predictor(kernel="auto")`` may choose.
VERIFY_KERNELS = ("reference", "default", "indirect_bgemm", "native")

#: Keras and the reference kernel agree on an input when its largest difference is at
#: most this times max(1, largest |Keras output|); they agree when at least
#: ``AGREEMENT_SHARE`` of the inputs do (the float ops round differently in Keras and
#: LCE's interpreter, so a pre-activation within ~1e-7 of its tensor's scale of zero can
#: binarize to the other sign and change that input's outputs for real: see
#: ``larq_bnas.runtime.interpreters.AGREEMENT_SHARE``), or (sign ties) when the mean
#: difference is below ``MEAN_RTOL`` of it and every top-1 class agrees.
ATOL_RTOL = 1e-3
MEAN_RTOL = 1e-4


def _as_list(y: Any) -> list[np.ndarray]:
    if isinstance(y, (list, tuple)):
        return [np.asarray(v) for v in y]
    if isinstance(y, dict):
        return [np.asarray(v) for v in y.values()]
    return [np.asarray(y)]


def compare(got: list[np.ndarray], expected: list[np.ndarray]) -> dict[str, Any]:
    """Differences between two lists of outputs (every output, same order)."""
    if len(got) != len(expected):
        raise ValueError(f"{len(got)} outputs from LCE, {len(expected)} from Keras")
    # TFLite may order the outputs differently: pair them by size, in order.
    left = list(got)
    paired = []
    for b in expected:
        match = next((a for a in left if a.size == b.size), None)
        if match is None:
            raise ValueError(f"no LCE output of {b.size} values for a Keras output {b.shape}")
        left = [a for a in left if a is not match]
        paired.append(match)
    got = paired
    diffs, top1, each = [], [], []
    n = int(expected[0].shape[0]) if expected[0].ndim else 1
    if any(b.ndim == 0 or b.shape[0] != n for b in expected):
        n = 1  # no common batch axis: one input
    matching = np.ones(n, dtype=bool)
    for a, b in zip(got, expected, strict=True):
        a = a.astype(np.float64).reshape(b.shape)
        d = np.abs(a - b.astype(np.float64)).ravel()
        diffs.append(d)
        scale = max(1.0, float(np.max(np.abs(b))))
        per_input = d.reshape(n, -1).max(axis=1, initial=0.0) <= ATOL_RTOL * scale
        matching &= per_input
        ok = float(d.max()) <= ATOL_RTOL * scale
        ok = ok or bool(per_input.sum() >= max(1.0, AGREEMENT_SHARE * n))
        if b.ndim == 2 and b.shape[-1] > 1:
            agreement = float(np.mean(a.argmax(-1) == b.argmax(-1)))
            top1.append(agreement)
            # sign ties: a tiny mean difference with every top-1 class equal
            ok = ok or (float(d.mean()) <= MEAN_RTOL * scale and agreement == 1)
        each.append(ok)
    diff = np.concatenate(diffs)
    result: dict[str, Any] = {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "matching": f"{int(matching.sum())}/{n}",
        "matches": [bool(v) for v in matching],
    }
    if top1:
        result["top1_agreement"] = float(min(top1))
    result["agrees"] = all(each)  # every output within tolerance of its own scale
    return result


def _near_zero_counts(flatbuffer: bytes, inputs: np.ndarray) -> list[int] | None:
    """Per input: values fed to a binarization within rounding of zero, in the native
    kernels' run (``near_zero_binarizations``); None when the native kernels cannot run."""
    from larq_bnas.runtime.native import NativeUnavailable, near_zero_binarizations

    try:
        return near_zero_binarizations(flatbuffer, inputs)
    except (NativeUnavailable, RuntimeError, ValueError):
        return None


def verify(
    model: tf.keras.Model,
    flatbuffer: bytes,
    *,
    n: int = 10,
    seed: int = 0,
    inputs: np.ndarray | None = None,
    threads: int = 2,
    kernel: str | None = None,
    kernels: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Run ``n`` inputs (standard normal unless given) through Keras and through LCE's
    interpreter with each kernel of ``kernels`` (default ``VERIFY_KERNELS``; with
    ``kernel``, the reference kernel and that one).

    Returns ``n``; ``kernels``: name -> figures (``max_abs_diff``, ``mean_abs_diff``,
    ``top1_agreement`` for 2-D outputs, ``agrees``) or {``error``}; ``flatbuffer_ok``
    (the reference kernel agrees with Keras, or None if it could not run);
    ``wrong_kernels`` (kernels that disagree while the flatbuffer is right);
    ``verdict`` (one line); and the figures of ``kernel`` (the named kernel, else the
    reference kernel, else the first that ran) at the top level.
    """
    if inputs is None:
        if n < 1:
            raise ValueError(f"verify needs at least one input, got n={n}")
        shape = (n, *model.input_shape[1:])
        inputs = np.random.RandomState(seed).randn(*shape).astype(np.float32)
    inputs = np.asarray(inputs, dtype=np.float32)
    expected = [
        v.numpy() if hasattr(v, "numpy") else v for v in _as_list(model(inputs, training=False))
    ]
    expected = [np.asarray(v) for v in expected]
    if kernels is None:
        kernels = (
            ("reference", kernel)
            if kernel and kernel != "reference"
            else (("reference",) if kernel else VERIFY_KERNELS)
        )
    runs: dict[str, dict[str, Any]] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    for name in kernels:
        try:
            got = _as_list(Predictor(flatbuffer, threads=threads, kernel=name).predict(inputs))
            runs[name] = compare(got, expected)
            outputs[name] = [np.asarray(v, dtype=np.float64) for v in got]
        except RuntimeError as err:  # e.g. the default kernel refusing a grouped conv
            text = str(err).strip()
            runs[name] = {"error": text.splitlines()[0] if text else type(err).__name__}
    ran = [k for k, v in runs.items() if "error" not in v]
    if not ran:
        raise RuntimeError(
            "LCE could not run the flatbuffer: "
            + "; ".join(f"{k}: {v['error']}" for k, v in runs.items())
        )
    reference = runs.get("reference", {})
    # Inputs on which the reference kernel differs from Keras only through a binarization
    # input within rounding of zero are explained; another LCE kernel then agrees when it
    # equals the reference kernel on every input (they share the float ops).
    if reference and "error" not in reference and not reference["agrees"]:
        counts = _near_zero_counts(flatbuffer, inputs)
        if counts is not None and len(counts) == len(reference["matches"]):
            missed = [i for i, ok in enumerate(reference["matches"]) if not ok]
            explained = sum(1 for i in missed if counts[i] > 0)
            reference["explained"] = f"{explained}/{len(missed)}"
            reference["agrees"] = explained == len(missed)
        if reference["agrees"]:
            for name in ran:
                if name != "reference" and not runs[name]["agrees"]:
                    same = compare_outputs(outputs[name], outputs["reference"])
                    runs[name]["agrees"] = same["matching"].split("/")[0] == str(len(inputs))
    flatbuffer_ok = reference.get("agrees") if "error" not in reference else None
    from larq_bnas.converters.flatbuffer import read

    info = read(flatbuffer)
    quantized = any(t == "int8" for t in (*info.input_types, *info.output_types))
    if quantized:  # int8 I/O: Keras runs in float, differences are expected, not judged
        flatbuffer_ok = None
    wrong = [k for k in ran if k != "reference" and not runs[k]["agrees"]]
    if flatbuffer_ok is False:
        verdict = (
            "the flatbuffer is at fault: LCE's reference kernel disagrees with Keras "
            f"(max abs diff {reference['max_abs_diff']:.3g})"
        )
    elif wrong and flatbuffer_ok:
        verdict = (
            "the flatbuffer is right (the reference kernel agrees with Keras); this machine's "
            + ", ".join(wrong)
            + " kernel"
            + ("s are" if len(wrong) > 1 else " is")
            + " at fault"
        )
    elif flatbuffer_ok:
        verdict = "every kernel run agrees with Keras"
    elif quantized:
        verdict = "int8 model: its outputs are quantized, so differences with Keras are not judged"
    else:
        verdict = "the reference kernel did not run; " + (
            "kernels that disagree: " + ", ".join(wrong) if wrong else "the others agree"
        )
    top = kernel if kernel in ran else ("reference" if "reference" in ran else ran[0])
    result: dict[str, Any] = {
        "n": int(len(inputs)),
        **{k: v for k, v in runs[top].items() if k != "agrees"},
        "kernel": top,
        "kernels": runs,
        "flatbuffer_ok": flatbuffer_ok,
        "wrong_kernels": wrong,
        "verdict": verdict,
    }
    return result
