"""Datasets as ``tf.data`` pipelines of ``(image, label)`` batches.

``load(name, split, ...)`` is the one entry point; ``info(name)`` tells the number of
classes and the split sizes. Names:

- ``"digits"`` — the embedded default: scikit-learn's 1,797 real 8x8 handwritten digits,
  shipped with scikit-learn, so everything runs offline. A fixed split gives 1,438
  training and 359 test images, resized to the model's input size, repeated to 3 channels.
- ``"cifar10"``, ``"imagenet2012"`` or any other tensorflow-datasets image classification
  set by name, read from ``data_dir`` (default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``)
  where it must already be prepared; see ``DatasetNotFoundError`` for how.
- ``"folder:PATH"`` — a folder of images with one subfolder per class (``train/`` and
  ``test/`` subfolders are used as splits when present; otherwise a fixed 80/20 split).

Augmentation follows the papers: CIFAR-style (pad 4, random 32-crop, flip) for small
images, ImageNet-style (random resized crop 0.08-1, flip, colour jitter 0.4) for large
ones, and resize + centre crop (ratio 0.875) for evaluation. Splits accept tfds-style
slices such as ``"train[:50%]"``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
DIGITS_TEST_FRACTION = 0.2
DIGITS_SEED = 0
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


class DatasetNotFoundError(ValueError):
    """A dataset that is not on this machine, with instructions to provide it."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset."""

    name: str
    num_classes: int
    image_shape: tuple[int | None, int | None, int]
    splits: dict[str, int]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


# --- the embedded digits ------------------------------------------------------------
def digits_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits as float arrays ``(N, 8, 8, 1)`` in [0, 1] and int32 labels,
    for the fixed split ``"train"`` (1,438) or ``"test"`` (359)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[..., None]
    labels = digits.target.astype(np.int32)
    order = np.random.RandomState(DIGITS_SEED).permutation(len(labels))
    n_test = int(round(len(labels) * DIGITS_TEST_FRACTION))
    idx = {"train": order[n_test:], "test": order[:n_test]}.get(split)
    if idx is None:
        raise ValueError(f"Unknown split {split!r} of 'digits'; valid splits are: train, test")
    return images[idx], labels[idx]


DIGITS_INFO = DatasetInfo(
    name="digits", num_classes=10, image_shape=(8, 8, 1), splits={"train": 1438, "test": 359},
    mean=(0.3,), std=(0.4,),
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


def _digits_dataset(split: str, channels: int) -> tf.data.Dataset:
    base, start, stop = parse_split(split)
    images, labels = digits_arrays(base)
    lo, hi = int(round(start * len(labels))), int(round(stop * len(labels)))
    images, labels = images[lo:hi], labels[lo:hi]
    if channels == 3:
        images = np.repeat(images, 3, axis=-1)
    return tf.data.Dataset.from_tensor_slices((images, labels))


# --- tensorflow-datasets ------------------------------------------------------------
def _tfds_data_dir(data_dir: str | os.PathLike | None) -> str:
    if data_dir is not None:
        return os.fspath(data_dir)
    return os.environ.get(
        "TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    )


def _tfds_builder(name: str, data_dir: str | os.PathLike | None):  # noqa: ANN202
    import tensorflow_datasets as tfds

    root = _tfds_data_dir(data_dir)
    try:
        builder = tfds.builder(name, data_dir=root)
    except Exception:  # tfds raises its own DatasetNotFoundError with a long listing
        raise ValueError(
            f"Unknown dataset {name!r}; valid datasets are: digits, folder:PATH, or a "
            "tensorflow-datasets image classification name such as cifar10 or imagenet2012"
        ) from None
    if not os.path.exists(os.path.join(builder.data_dir, "dataset_info.json")):
        manual = ""
        if name.startswith("imagenet2012"):
            manual = (
                " ImageNet cannot be downloaded automatically: put ILSVRC2012_img_train.tar "
                f"and ILSVRC2012_img_val.tar in {os.path.join(root, 'downloads', 'manual')} "
                "and prepare it there."
            )
        raise DatasetNotFoundError(
            f"Dataset {name!r} is not prepared in {root}. This machine cannot download it. "
            f"On a machine with internet run `python -c \"import tensorflow_datasets as "
            f"tfds; tfds.builder('{name}', data_dir='DIR').download_and_prepare()\"` and copy "
            f"DIR here, then pass --data-dir DIR (or set TFDS_DATA_DIR).{manual} Without "
            "data, use the embedded dataset: --dataset digits."
        )
    return builder


def _tfds_dataset(name: str, split: str, data_dir: str | os.PathLike | None) -> tf.data.Dataset:
    builder = _tfds_builder(name, data_dir)
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    return ds.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, tf.cast(y, tf.int32)),
                  num_parallel_calls=AUTOTUNE)


# --- image folders ------------------------------------------------------------------
def _folder_files(root: Path, split: str) -> tuple[list[str], list[int], list[str]]:
    base, start, stop = parse_split(split)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"Image folder {root} does not exist; it needs one subfolder per class "
            "(optionally inside train/ and test/)"
        )
    split_dir = root / base
    explicit = (root / "train").is_dir()
    source = split_dir if explicit else root
    if explicit and not split_dir.is_dir():
        valid = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise ValueError(f"Split {base!r} not in {root}; valid splits are: {', '.join(valid)}")
    classes = sorted(p.name for p in source.iterdir() if p.is_dir())
    if not classes:
        raise DatasetNotFoundError(f"{source} has no class subfolders")
    files, labels = [], []
    for label, cls in enumerate(classes):
        for f in sorted((source / cls).iterdir()):
            if f.suffix.lower() in _IMAGE_EXTENSIONS:
                files.append(str(f))
                labels.append(label)
    if not files:
        raise DatasetNotFoundError(f"No images ({', '.join(_IMAGE_EXTENSIONS)}) under {source}")
    order = np.random.RandomState(0).permutation(len(files))
    files = [files[i] for i in order]
    labels = [labels[i] for i in order]
    if not explicit:  # fixed 80/20 split of one folder
        n_test = int(round(len(files) * 0.2))
        if base == "test":
            files, labels = files[:n_test], labels[:n_test]
        elif base == "train":
            files, labels = files[n_test:], labels[n_test:]
        else:
            raise ValueError(f"Unknown split {base!r}; valid splits are: train, test")
    lo, hi = int(round(start * len(files))), int(round(stop * len(files)))
    return files[lo:hi], labels[lo:hi], classes


def _folder_dataset(root: Path, split: str) -> tf.data.Dataset:
    files, labels, _ = _folder_files(root, split)

    def read(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return tf.cast(image, tf.float32) / 255.0, label

    ds = tf.data.Dataset.from_tensor_slices((files, np.asarray(labels, np.int32)))
    return ds.map(read, num_parallel_calls=AUTOTUNE)


# --- augmentation -------------------------------------------------------------------
def _normalize(image: tf.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> tf.Tensor:
    channels = image.shape[-1] or len(mean)
    m = tf.constant((mean * channels)[:channels], tf.float32)
    s = tf.constant((std * channels)[:channels], tf.float32)
    return (image - m) / s


def _cifar_train(image: tf.Tensor, size: int) -> tf.Tensor:
    image = tf.image.resize(image, (size, size))
    pad = max(1, size // 8)
    image = tf.image.pad_to_bounding_box(image, pad, pad, size + 2 * pad, size + 2 * pad)
    image = tf.image.random_crop(image, (size, size, image.shape[-1]))
    return tf.image.random_flip_left_right(image)


def _imagenet_train(image: tf.Tensor, size: int) -> tf.Tensor:
    begin, extent, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image), tf.zeros([0, 0, 4], tf.float32), area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10, use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, extent)
    image.set_shape([None, None, 3])
    image = tf.image.resize(image, (size, size))
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_brightness(image, 0.4)
    image = tf.image.random_contrast(image, 0.6, 1.4)
    image = tf.image.random_saturation(image, 0.6, 1.4)
    return tf.clip_by_value(image, 0.0, 1.0)


def _center_crop(image: tf.Tensor, size: int, ratio: float = 0.875) -> tf.Tensor:
    shape = tf.shape(image)
    side = tf.cast(tf.cast(tf.minimum(shape[0], shape[1]), tf.float32) * ratio, tf.int32)
    top = (shape[0] - side) // 2
    left = (shape[1] - side) // 2
    image = image[top : top + side, left : left + side]
    return tf.image.resize(image, (size, size))


# --- the entry points -----------------------------------------------------------------
def info(name: str = "digits", data_dir: str | os.PathLike | None = None) -> DatasetInfo:
    """Number of classes, native image shape and split sizes of dataset ``name``."""
    if name == "digits":
        return DIGITS_INFO
    if name.startswith("folder:"):
        root = Path(name[len("folder:") :])
        _, labels, classes = _folder_files(root, "train")
        return DatasetInfo(name, len(classes), (None, None, 3), {"train": len(labels)},
                           IMAGENET_MEAN, IMAGENET_STD)
    builder = _tfds_builder(name, data_dir)
    features = builder.info.features
    shape = tuple(features["image"].shape)
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    mean, std = (CIFAR_MEAN, CIFAR_STD) if name.startswith("cifar") else (IMAGENET_MEAN, IMAGENET_STD)
    return DatasetInfo(name, features["label"].num_classes, shape, splits, mean, std)


def load(
    name: str = "digits",
    split: str = "train",
    *,
    input_size: int | None = 32,
    channels: int = 3,
    batch_size: int | None = 64,
    shuffle: bool | None = None,
    augment: bool | None = None,
    repeat: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> tf.data.Dataset:
    """``(image, label)`` batches of dataset ``name`` (see the module docstring).

    Args:
        name: "digits", a tfds name such as "cifar10", or "folder:PATH".
        split: "train", "test" or a tfds-style slice such as "train[:50%]" (tfds sets use
            their own split names, e.g. "validation" for imagenet2012).
        input_size: square size the images are resized/cropped to (None: native).
        channels: 3 (grayscale repeated) or 1 (digits only).
        batch_size: batch size (None: unbatched).
        shuffle: shuffle the examples (default: for training splits).
        augment: the papers' training augmentation (default: for training splits; the
            digits are not augmented by default, flips would change them).
        repeat: repeat forever.
        seed: shuffling seed.
        drop_remainder: drop the last incomplete batch.
        data_dir: where tfds datasets are prepared (default $TFDS_DATA_DIR).
    """
    base = parse_split(split)[0]
    training = base == "train"
    shuffle = training if shuffle is None else shuffle
    if name == "digits":
        ds = _digits_dataset(split, channels)
        meta = DIGITS_INFO
        augment = False if augment is None else augment
    elif name.startswith("folder:"):
        ds = _folder_dataset(Path(name[len("folder:") :]), split)
        meta = DatasetInfo(name, 0, (None, None, 3), {}, IMAGENET_MEAN, IMAGENET_STD)
    else:
        ds = _tfds_dataset(name, split, data_dir)
        meta = info(name, data_dir)
    augment = training if augment is None else augment
    cache = name == "digits" and not augment
    if shuffle and not cache:
        ds = ds.shuffle(20_000, seed=seed, reshuffle_each_iteration=True)
    native = meta.image_shape[0]
    small = native is not None and native <= 64
    size = input_size

    def prepare(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        target = size or native
        if augment and target is not None:
            image = _cifar_train(image, target) if small else _imagenet_train(image, target)
        elif target is not None:
            image = tf.image.resize(image, (target, target)) if small else _center_crop(image, target)
        return _normalize(image, meta.mean, meta.std), label

    ds = ds.map(prepare, num_parallel_calls=AUTOTUNE)
    if cache:  # small and deterministic: prepare once, shuffle the prepared images
        ds = ds.cache()
        if shuffle:
            ds = ds.shuffle(2_000, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if batch_size is not None:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(AUTOTUNE)


def num_examples(name: str, split: str, data_dir: str | os.PathLike | None = None) -> int:
    """How many examples ``split`` of ``name`` has (slices included)."""
    base, start, stop = parse_split(split)
    if name.startswith("folder:"):
        return len(_folder_files(Path(name[len("folder:") :]), split)[0])
    total = info(name, data_dir).splits.get(base)
    if total is None:
        raise ValueError(f"Unknown split {base!r} of {name!r}")
    return int(round(stop * total)) - int(round(start * total))
