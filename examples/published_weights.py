"""A BNAS authors' published checkpoint, end to end: import, predict one image, convert
to an LCE flatbuffer, benchmark it.

    python examples/published_weights.py bnas_d.pth.tar --model bnas-d --image cat.jpg
    python examples/published_weights.py bnas_a.pth.tar --model bnas-a --image frog.png
    python examples/published_weights.py          # the test fixture (random weights)

Download the checkpoints from the reference README's links (``larq_bnas list`` marks the
models that have one; ``larq_bnas.zoo.published.PUBLISHED`` lists them). Without
arguments the script uses ``tests/fixtures/bnas-reference/imagenet_c8_l5.pth.tar``, a
small network with random weights written by the authors' code, and a random image: the
numbers are then meaningless but every step runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import larq_bnas  # noqa: F401  (selects legacy Keras before TensorFlow loads)
from larq_bnas import converters, runtime, zoo
from larq_bnas.zoo.published import import_checkpoint

FIXTURE = Path(__file__).parents[1] / "tests/fixtures/bnas-reference/imagenet_c8_l5.pth.tar"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=str(FIXTURE))
    parser.add_argument("--model", default="bnas-d", help="bnas-a (CIFAR) or bnas-d/e/... ")
    parser.add_argument("--image", default=None, help="an image file (default: random)")
    parser.add_argument("--out", default="published_out", help="where to write files")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. Import: the reference's function (BinOp's binarization, zero padding).
    model, report = import_checkpoint(args.checkpoint, args.model)
    print(
        "\n".join(line for line in report.lines() if not line.startswith("  ") or "float" in line)
    )
    model.save(str(out / "model.h5"))

    # 2. Predict one image with the reference's evaluation transforms.
    dataset = "imagenet2012" if report.network == "imagenet" else "cifar10"
    if args.image is None:
        size = model.input_shape[1]
        image = (
            np.random.RandomState(0).rand(size + 32 * (dataset == "imagenet2012"), size, 3) * 255
        ).astype(np.uint8)
    else:
        image = args.image
    x = zoo.preprocess_input(image, dataset=dataset)
    probs = model.predict(x, verbose=0)
    if probs.shape[1] in (10, 1000):
        for wnid, name, score in zoo.decode_predictions(probs, top=3)[0]:
            print(f"  {score:.3f}  {name} ({wnid})")
    else:
        print("  top class:", int(probs[0].argmax()))

    # 3. Convert to an LCE flatbuffer and check it against Keras.
    flatbuffer = converters.convert(model)
    converters.save(flatbuffer, out / "model.tflite")
    info = converters.read(flatbuffer)
    accel = converters.acceleration_report(model, info)
    print(converters.format_report(accel))

    # 4. Benchmark batch-1 latency (LCE kernels against TensorFlow's float TFLite).
    timing = runtime.benchmark(
        flatbuffer,
        repeats=args.repeats,
        float_source=converters.convert_float(model),
        remember=False,
    )
    print(
        f"best kernel {timing['best_kernel']}: {timing['best_median_ms']:.1f} ms, "
        f"float {timing['float']['median_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
