"""Why the native kernels and LCE's reference kernel can disagree on a deep model: one
pre-activation within float rounding of zero binarizes to the other sign.

Builds a zoo model with random weights (``--seed``) and random BatchNorm statistics,
cuts it at ``--layers`` (a float tensor that feeds a binarization, and the binary conv
after it), converts each cut, and counts, over ``--inputs`` inputs, the values whose sign
differs between Keras, LCE's reference kernel and the native kernels, with their
magnitude. Then compares the logits of the whole model input by input (the agreement
rule of ``larq_bnas.runtime.compare_outputs``: a choice agrees when at least half of the
inputs match).

    python benchmarks/sign_flips.py                  # larq-zoo QuickNet, 64 px, seed 5
    python benchmarks/sign_flips.py --model bnas-d --seed 3 --layers cell0 --inputs 4
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lqz:QuickNet")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=5, help="weights and BatchNorm statistics")
    parser.add_argument(
        "--layers",
        default="tf.__operators__.add_1,quant_conv2d_4",
        help="comma-separated layer names to cut at ('' for none)",
    )
    parser.add_argument("--inputs", type=int, default=8)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    import larq_bnas  # noqa: F401  (legacy Keras before TensorFlow)
    from larq_bnas import converters, runtime
    from larq_bnas.runtime import native
    from larq_bnas.zoo.references import load_model

    tf.keras.utils.set_random_seed(args.seed)
    shape = (args.size, args.size, 3)
    model = converters.randomize_batchnorm(
        load_model(args.model, input_shape=shape), seed=args.seed
    )
    if model.layers[-1].__class__.__name__ == "Activation":  # compare logits, not softmax
        model = tf.keras.Model(model.input, model.layers[-2].output)

    def run(sub: tf.keras.Model, x: np.ndarray) -> dict[str, Any]:
        flatbuffer = converters.convert(sub)
        reference = runtime.make_interpreter(flatbuffer, threads=1, kernel="reference")
        return {
            "flatbuffer": flatbuffer,
            "keras": sub.predict(x, verbose=0),
            "reference": np.asarray(reference.predict(x)),
            "native": np.asarray(native.NativeInterpreter(flatbuffer, num_threads=1).predict(x)),
        }

    x = np.random.RandomState(1).randn(2, *shape).astype(np.float32)
    for name in [n for n in args.layers.split(",") if n]:
        out = run(tf.keras.Model(model.input, model.get_layer(name).output), x)
        keras = out["keras"]
        print(f"{name}: {keras.size} values, largest |value| {np.abs(keras).max():.3g}")
        for a, b in (("reference", "keras"), ("native", "keras"), ("native", "reference")):
            flip = np.sign(out[a]) != np.sign(out[b])
            print(
                f"  {a:>9} vs {b:<9}: max diff {np.abs(out[a] - out[b]).max():.3g}, "
                f"{int(flip.sum())} signs differ, |Keras value| there: "
                + (", ".join(f"{v:.3g}" for v in np.abs(keras[flip])[:6]) or "-")
            )
    xs = np.random.RandomState(7).randn(args.inputs, *shape).astype(np.float32)
    out = run(model, xs)
    print(f"logits of {args.inputs} inputs (max |difference| per input):")
    for i in range(args.inputs):
        r, g, k = out["reference"][i], out["native"][i], out["keras"][i]
        print(
            f"  input {i}: native-reference {np.abs(g - r).max():.3g}, "
            f"reference-Keras {np.abs(r - k).max():.3g}, native-Keras {np.abs(g - k).max():.3g}"
            f" (scale {np.abs(r).max():.3g}; same top-1: {r.argmax() == g.argmax()})"
        )
    from larq_bnas.runtime import interpreters

    verdict = runtime.compare_outputs([out["native"]], [out["reference"]])
    near = native.near_zero_binarizations(out["flatbuffer"], xs)
    print(f"values fed to a binarization within 1e-6 of their scale of zero, per input: {near}")
    verdict = interpreters._judge_native("native", out["flatbuffer"], xs, verdict)
    verdict.pop("matches", None)
    print(f"native against the reference kernel: {verdict}")


if __name__ == "__main__":
    main()
