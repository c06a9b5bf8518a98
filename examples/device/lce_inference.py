"""A minimal inference app for a converted model, with Larq Compute Engine's interpreter.

It needs only numpy and the ``larq-compute-engine`` Python package (no TensorFlow model
code, no larq_bnas): load the .tflite file, pick the fastest binary-convolution kernel
for this machine, run an image (or random input) and print the top classes and the
batch-1 latency.

    python examples/device/lce_inference.py bnas_a.tflite
    python examples/device/lce_inference.py quicknet.tflite --image cat.jpg --top 5 \\
        --labels imagenet_labels.txt --threads 4

Images are resized to the model's input size, scaled to [0, 1] and standardized with
``--mean``/``--std`` (per channel, on the 0..1 scale; the defaults are ImageNet's).
``--image`` also takes a ``.npy`` array of the model's input shape, used as it is.

Kernel choice (``--kernel auto``): LCE has two fast binary-convolution kernels, the
default (BGEMM) one and the indirect BGEMM one; on x86 (no hand-written kernels) the
indirect one is much faster. ``auto`` times both on the model and keeps the faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

KERNELS = {
    "default": {},
    "indirect_bgemm": {"use_indirect_bgemm": True},
    "reference": {"use_reference_bconv": True},
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def make_interpreter(flatbuffer: bytes, threads: int, kernel: str):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(flatbuffer, num_threads=threads, **KERNELS[kernel])


def run_once(interpreter, x: np.ndarray) -> np.ndarray:
    """One batch-1 inference (the interpreter's ``predict`` loops over a batch)."""
    return interpreter.predict(x)


def time_kernel(interpreter, x: np.ndarray, repeats: int) -> float:
    run_once(interpreter, x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_once(interpreter, x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def choose_kernel(flatbuffer: bytes, threads: int, x: np.ndarray) -> tuple[str, dict]:
    """The faster of the default and the indirect-BGEMM kernel on this model."""
    timings = {}
    for name in ("default", "indirect_bgemm"):
        try:
            timings[name] = time_kernel(make_interpreter(flatbuffer, threads, name), x, 3)
        except RuntimeError:  # the default kernel refuses grouped binary convolutions
            continue
    if not timings:
        raise SystemExit("error: no LCE kernel could run this model")
    return min(timings, key=timings.get), timings


def load_input(
    path: str | None, shape: tuple[int, ...], mean: list[float], std: list[float]
) -> np.ndarray:
    """A batch of one input of ``shape`` (N, H, W, C) from an image, a .npy or at random."""
    if path is None:
        return np.random.RandomState(0).randn(1, *shape[1:]).astype(np.float32)
    if path.endswith(".npy"):
        x = np.load(path).astype(np.float32)
        return x.reshape(1, *shape[1:])
    from PIL import Image

    height, width, channels = shape[1:]
    image = Image.open(path).convert("RGB" if channels == 3 else "L")
    image = image.resize((width, height), Image.BILINEAR)
    x = np.asarray(image, dtype=np.float32).reshape(height, width, channels) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x[None].astype(np.float32)


def quantize(x: np.ndarray, interpreter) -> np.ndarray:
    """int8 models (converted with --int8-io) take quantized input."""
    if np.dtype(interpreter.input_types[0]) != np.int8:
        return x
    scale, zero = interpreter.input_scales[0], interpreter.input_zero_points[0]
    return np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)


def dequantize(y: np.ndarray, interpreter) -> np.ndarray:
    if np.dtype(interpreter.output_types[0]) != np.int8:
        return y
    scale, zero = interpreter.output_scales[0], interpreter.output_zero_points[0]
    return (y.astype(np.float32) - zero) * scale


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an LCE .tflite file (larq_bnas convert ... -o FILE)")
    parser.add_argument("--image", help="an image file, or a .npy input (default: random)")
    parser.add_argument("--labels", help="a text file with one class name per line")
    parser.add_argument("--top", type=int, default=5, help="how many classes to print")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kernel", choices=["auto", *KERNELS], default="auto")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs")
    parser.add_argument("--mean", type=float, nargs="+", default=list(IMAGENET_MEAN))
    parser.add_argument("--std", type=float, nargs="+", default=list(IMAGENET_STD))
    args = parser.parse_args(argv)

    path = Path(args.model)
    if not path.is_file():
        parser.error(f"{args.model} does not exist")
    flatbuffer = path.read_bytes()
    if flatbuffer[4:8] != b"TFL3":
        parser.error(f"{args.model} is not a .tflite flatbuffer")

    probe = make_interpreter(flatbuffer, args.threads, "reference")
    shape = tuple(int(d) for d in probe.input_shapes[0])
    x = quantize(load_input(args.image, shape, args.mean, args.std), probe)
    kernel, timings = (
        (args.kernel, {}) if args.kernel != "auto" else choose_kernel(flatbuffer, args.threads, x)
    )
    interpreter = make_interpreter(flatbuffer, args.threads, kernel)
    latency = time_kernel(interpreter, x, args.repeats)
    scores = dequantize(run_once(interpreter, x), interpreter).reshape(-1)

    labels = None
    if args.labels:
        labels = Path(args.labels).read_text().splitlines()
    top = np.argsort(-scores)[: args.top]
    print(f"model   {path.name}  input {list(shape)} {np.dtype(probe.input_types[0]).name}")
    if timings:
        print("kernels " + ", ".join(f"{k} {v:.2f} ms" for k, v in timings.items()))
    print(f"kernel  {kernel}, {args.threads} threads: {latency:.2f} ms per image (median)")
    for rank, index in enumerate(top, 1):
        name = labels[index] if labels and index < len(labels) else f"class {index}"
        print(f"{rank:>2}. {name:<30} {scores[index]:.4f}")
    return {"kernel": kernel, "latency_ms": latency, "top": [int(i) for i in top], "scores": scores}


if __name__ == "__main__":
    main(sys.argv[1:])
