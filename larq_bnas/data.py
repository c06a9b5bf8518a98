"""Datasets as ``tf.data`` pipelines of ``(image, label)`` batches.

``load(name, split, ...)`` is the one entry point. Names:

- ``"digits"`` — the embedded default: scikit-learn's 1,797 real 8x8 handwritten digits,
  shipped with scikit-learn, so everything runs offline. A fixed split gives 1,437
  training and 360 test images; images are resized to the model's input size and
  repeated to 3 channels.

Splits accept tfds-style slices: ``"train[:50%]"``, ``"train[50%:]"``, ``"test"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
DIGITS_TEST_FRACTION = 0.2
DIGITS_SEED = 0


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset."""

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    splits: dict[str, int]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


def digits_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits as uint8-range float arrays ``(N, 8, 8, 1)`` in [0, 1] and
    int32 labels, for the fixed split ``"train"`` (1,437) or ``"test"`` (360)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[..., None]
    labels = digits.target.astype(np.int32)
    order = np.random.RandomState(DIGITS_SEED).permutation(len(labels))
    n_test = int(round(len(labels) * DIGITS_TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    idx = {"train": train, "test": test}.get(split)
    if idx is None:
        raise ValueError(f"Unknown split {split!r} of 'digits'; valid splits are: train, test")
    return images[idx], labels[idx]


DIGITS_INFO = DatasetInfo(
    name="digits",
    num_classes=10,
    image_shape=(8, 8, 1),
    splits={"train": 1437, "test": 360},
)


_SLICE = re.compile(r"^(?P<split>\w+)(\[(?P<start>-?\d+)?%?:(?P<stop>-?\d+)?%?\])?$")


def parse_split(split: str) -> tuple[str, float, float]:
    """``"train[:50%]"`` -> ``("train", 0.0, 0.5)``."""
    m = _SLICE.match(split.replace(" ", ""))
    if not m:
        raise ValueError(f"Bad split {split!r}; use e.g. 'train', 'test', 'train[:50%]'")
    start = float(m.group("start") or 0) / 100
    stop = float(m.group("stop") or 100) / 100
    return m.group("split"), start, stop


def load(
    name: str = "digits",
    split: str = "train",
    *,
    input_size: int | None = 32,
    channels: int = 3,
    batch_size: int | None = 64,
    shuffle: bool | None = None,
    repeat: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """``(image, label)`` batches of dataset ``name`` (see the module docstring).

    Args:
        name: the dataset.
        split: "train", "test" or a tfds-style slice such as "train[:50%]".
        input_size: square size to resize to (None keeps the native size).
        channels: 3 (repeat grayscale) or the native channel count.
        batch_size: batch size (None: unbatched).
        shuffle: shuffle the examples (default: for training splits).
        repeat: repeat forever.
        seed: shuffling seed.
        drop_remainder: drop the last incomplete batch.
    """
    if name != "digits":
        raise ValueError(f"Unknown dataset {name!r}; valid datasets are: digits")
    base, start, stop = parse_split(split)
    images, labels = digits_arrays(base)
    lo, hi = int(round(start * len(labels))), int(round(stop * len(labels)))
    images, labels = images[lo:hi], labels[lo:hi]
    if channels == 3:
        images = np.repeat(images, 3, axis=-1)
    # Standardise with the training set's statistics.
    mean, std = 0.3, 0.4
    images = (images - mean) / std
    if input_size is not None and input_size != images.shape[1]:
        images = tf.image.resize(images, (input_size, input_size), method="bilinear").numpy()
    ds = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels))
    if shuffle if shuffle is not None else base == "train":
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if batch_size is not None:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(AUTOTUNE)


def info(name: str = "digits") -> DatasetInfo:
    """Number of classes, native image shape and split sizes of dataset ``name``."""
    if name != "digits":
        raise ValueError(f"Unknown dataset {name!r}; valid datasets are: digits")
    return DIGITS_INFO
