"""Datasets as ``tf.data`` pipelines of ``(image, label)`` batches.

``load(name, split, ...)`` is the one entry point; ``info(name)`` tells the number of
classes and the split sizes; ``eval_split(name)`` names the split to test on. Names:

- ``"digits"`` — the embedded default: scikit-learn's 1,797 real 8x8 handwritten digits,
  shipped with scikit-learn, so everything runs offline. A fixed split gives 1,438
  training and 359 test images, resized to the model's input size, repeated to 3 channels.
- ``"cifar10"``, ``"imagenet2012"`` or any other tensorflow-datasets image classification
  set by name (``"mnist"``, ``"cifar100"``, ``"imagenette/320px-v2"``, ...), read from
  ``data_dir`` (default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``) where it must
  already be prepared: this machine cannot download. ``DatasetNotFoundError`` says how to
  prepare it elsewhere and where to put it.
- ``"folder:PATH"`` — a folder of images with one subfolder per class (class = subfolder
  name, sorted). If ``PATH`` has ``train/`` (and ``test/`` or ``validation/``) subfolders
  those are the splits; otherwise a fixed, seeded 80/20 train/test split of all images.
  PNG, JPEG, BMP and GIF files are read.

Augmentation follows the papers:

- CIFAR-style, for sets of small images (native side <= 64 px): pad 4 (1/8 of the side),
  random crop back to size, horizontal flip (BNAS paper 5.1);
- ImageNet-style, for large images: random resized crop (area 0.08-1, aspect 3/4-4/3),
  horizontal flip, colour jitter 0.4 (brightness, contrast, saturation factors in
  [0.6, 1.4]) (BNAS ImageNet recipe; MeliusNet uses the same crop and flip);
- evaluation: small images are resized; large ones are centre-cropped to 87.5 % of their
  shorter side and resized (ImageNet's resize 256 -> centre crop 224, scaled to the
  model's input size).

Images are then normalised with the set's mean and standard deviation (CIFAR's for
``cifar*``, ImageNet's otherwise). Encoded images and file names are shuffled before
decoding, decoding and augmentation run in parallel maps, and batches are prefetched.
Splits accept tfds-style slices such as ``"train[:50%]"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from larq_bnas._digits import DIGITS
from larq_bnas.errors import InputError

AUTOTUNE = tf.data.AUTOTUNE
FOLDER_TEST_FRACTION = 0.2
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Native sides up to this many pixels get the CIFAR-style augmentation.
SMALL_IMAGE_SIDE = 64
#: Shuffle buffer (in encoded examples / file names) for tfds sets and folders.
SHUFFLE_BUFFER = 10_000
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_AUGMENTATIONS = ("cifar", "imagenet")


class DatasetError(RuntimeError):
    """tensorflow-datasets failed on a known dataset (the cause is kept)."""


class DatasetNotFoundError(InputError):
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


# --- splits ---------------------------------------------------------------------------
_SLICE = re.compile(r"^(?P<split>\w+)(\[(?P<start>-?\d+)?%?:(?P<stop>-?\d+)?%?\])?$")


def parse_split(split: str) -> tuple[str, float, float]:
    """``"train[:50%]"`` -> ``("train", 0.0, 0.5)``."""
    m = _SLICE.match(split.replace(" ", ""))
    if not m:
        raise ValueError(f"Bad split {split!r}; use e.g. 'train', 'test', 'train[:50%]'")
    start = float(m.group("start") or 0) / 100
    stop = float(m.group("stop") or 100) / 100
    return m.group("split"), start, stop


def _slice(n: int, start: float, stop: float) -> slice:
    return slice(int(round(start * n)), int(round(stop * n)))


# --- the embedded digits ------------------------------------------------------------
def digits_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits as float arrays ``(N, 8, 8, 1)`` in [0, 1] and int32 labels,
    for the fixed split ``"train"`` (1,438) or ``"test"`` (359)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[..., None]
    labels = digits.target.astype(np.int32)
    order = np.random.RandomState(DIGITS.split_seed).permutation(len(labels))
    n_test = DIGITS.splits["test"]
    idx = {"train": order[n_test:], "test": order[:n_test]}.get(split)
    if idx is None:
        raise ValueError(f"Unknown split {split!r} of 'digits'; valid splits are: train, test")
    return images[idx], labels[idx]


DIGITS_INFO = DatasetInfo(
    name=DIGITS.name,
    num_classes=DIGITS.num_classes,
    image_shape=DIGITS.image_shape,
    splits=DIGITS.splits,
    mean=DIGITS.mean,
    std=DIGITS.std,
)


def _digits_source(split: str, channels: int) -> tf.data.Dataset:
    base, start, stop = parse_split(split)
    images, labels = digits_arrays(base)
    part = _slice(len(labels), start, stop)
    images, labels = images[part], labels[part]
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


def _is_prepared(builder: object) -> bool:
    """Whether ``download_and_prepare`` has run for ``builder`` (without touching tfds'
    download machinery, which would try the network here)."""
    return os.path.exists(os.path.join(builder.data_dir, "dataset_info.json"))  # type: ignore[attr-defined]


def _not_prepared_message(name: str, root: str) -> str:
    manual = ""
    if name.split("/")[0].split(":")[0] == "imagenet2012":
        manual = (
            " ImageNet cannot be downloaded by tfds at all: put ILSVRC2012_img_train.tar and "
            f"ILSVRC2012_img_val.tar (from image-net.org) in "
            f"{os.path.join(root, 'downloads', 'manual')} and run the command above with "
            "that data_dir (it prepares from the manual dir)."
        )
    return (
        f"Dataset {name!r} is not prepared in {root} and this machine cannot download it. "
        f'On a machine with internet run `python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{name}', data_dir='DIR').download_and_prepare()\"`, copy DIR to "
        f"this machine and pass --data-dir DIR (data_dir=DIR, or set TFDS_DATA_DIR).{manual} "
        "Without data, use the embedded dataset: --dataset digits."
    )


def _tfds_builder(name: str, data_dir: str | os.PathLike | None):  # noqa: ANN202
    import tensorflow_datasets as tfds

    root = _tfds_data_dir(data_dir)
    try:
        builder = tfds.builder(name, data_dir=root)
    except Exception as error:
        if "DatasetNotFound" in type(error).__name__:  # tfds' error lists all it has
            raise InputError(
                f"Unknown dataset {name!r}; valid datasets are: digits, folder:PATH, or a "
                "tensorflow-datasets image classification name such as cifar10 or "
                "imagenet2012"
            ) from None
        message = " ".join(str(error).split())
        if message.startswith("Failed to construct dataset"):  # a bad version or config
            raise InputError(f"{message} (dataset {name!r})") from error
        # Any other failure (a broken tfds install, an unreadable data_dir, ...) keeps
        # its type's name, its message and its cause.
        raise DatasetError(
            f"tensorflow-datasets could not open {name!r} in {root}: "
            f"{type(error).__name__}: {message}"
        ) from error
    if not _is_prepared(builder):
        raise DatasetNotFoundError(_not_prepared_message(name, root))
    return builder


def _tfds_keys(builder: object, name: str) -> tuple[str, str]:
    import tensorflow_datasets as tfds

    info = builder.info  # type: ignore[attr-defined]
    keys = info.supervised_keys
    features = info.features
    ok = (
        isinstance(keys, tuple)
        and len(keys) == 2
        and all(isinstance(k, str) for k in keys)
        and isinstance(features[keys[0]], tfds.features.Image)
        and isinstance(features[keys[1]], tfds.features.ClassLabel)
    )
    if not ok:
        raise ValueError(
            f"{name!r} is not an image classification dataset (it needs (image, label) "
            f"supervised keys; it has {keys!r})"
        )
    return keys[0], keys[1]


def _tfds_source(
    name: str, split: str, data_dir: str | os.PathLike | None, shuffle: bool, seed: int
) -> tuple[tf.data.Dataset, Callable[[tf.Tensor], tf.Tensor]]:
    import tensorflow_datasets as tfds

    builder = _tfds_builder(name, data_dir)
    image_key, _ = _tfds_keys(builder, name)
    valid = list(builder.info.splits)
    if parse_split(split)[0] not in valid:
        raise ValueError(
            f"Unknown split {split!r} of {name!r}; valid splits are: {', '.join(valid)}"
        )
    ds = builder.as_dataset(
        split=split,
        as_supervised=True,
        shuffle_files=shuffle,
        decoders={image_key: tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    native = builder.info.features[image_key].shape[-1] or 3

    def decode(encoded: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(encoded, channels=native, expand_animations=False)
        image.set_shape([None, None, native])
        return tf.cast(image, tf.float32) / 255.0

    return ds.map(lambda x, y: (x, tf.cast(y, tf.int32))), decode


# --- image folders ------------------------------------------------------------------
def _folder_root(name: str) -> Path:
    return Path(name[len("folder:") :]).expanduser()


def _folder_files(root: Path, split: str) -> tuple[list[str], list[int], list[str]]:
    base, start, stop = parse_split(split)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"Image folder {root} does not exist; it needs one subfolder per class "
            "(optionally inside train/ and test/ split folders)"
        )
    explicit = (root / "train").is_dir()
    if explicit:
        source = root / base
        if not source.is_dir():
            valid = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise ValueError(
                f"Unknown split {base!r} of {root}; valid splits are: {', '.join(valid)}"
            )
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    else:
        if base not in ("train", "test"):
            raise ValueError(
                f"Unknown split {base!r} of {root}; valid splits are: train, test "
                "(a fixed 80/20 split; make train/ and test/ folders to choose)"
            )
        source = root
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DatasetNotFoundError(f"{source} has no class subfolders (one per class)")
    files, labels = [], []
    for label, cls in enumerate(classes):
        folder = source / cls
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in _IMAGE_EXTENSIONS:
                files.append(str(f))
                labels.append(label)
    if not files:
        raise DatasetNotFoundError(f"No images ({', '.join(_IMAGE_EXTENSIONS)}) under {source}")
    order = np.random.RandomState(0).permutation(len(files))
    files = [files[i] for i in order]
    labels = [labels[i] for i in order]
    if not explicit:  # fixed 80/20 split of one folder
        n_test = int(round(len(files) * FOLDER_TEST_FRACTION))
        part = slice(None, n_test) if base == "test" else slice(n_test, None)
        files, labels = files[part], labels[part]
    part = _slice(len(files), start, stop)
    return files[part], labels[part], classes


def _folder_source(root: Path, split: str) -> tuple[tf.data.Dataset, Callable]:
    files, labels, _ = _folder_files(root, split)

    def decode(path: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return tf.cast(image, tf.float32) / 255.0

    ds = tf.data.Dataset.from_tensor_slices((files, np.asarray(labels, np.int32)))
    return ds, decode


# --- augmentation -------------------------------------------------------------------
def _normalize(image: tf.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> tf.Tensor:
    channels = image.shape[-1] or len(mean)
    m = tf.constant((tuple(mean) * channels)[:channels], tf.float32)
    s = tf.constant((tuple(std) * channels)[:channels], tf.float32)
    return (image - m) / s


def _match_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    have = image.shape[-1]
    if have == channels or have is None:
        return image
    if have == 1:
        return tf.repeat(image, channels, axis=-1)
    if channels == 1:
        return tf.image.rgb_to_grayscale(image[..., :3])
    return image[..., :channels]


def cifar_augment(image: tf.Tensor, size: int) -> tf.Tensor:
    """CIFAR training augmentation: resize to ``size``, zero-pad by ``size // 8`` (4 px at
    32), random crop back to ``size``, random horizontal flip. Input in [0, 1]."""
    image = tf.image.resize(image, (size, size))
    pad = max(1, size // 8)
    image = tf.image.pad_to_bounding_box(image, pad, pad, size + 2 * pad, size + 2 * pad)
    image = tf.image.random_crop(image, (size, size, image.shape[-1]))
    return tf.image.random_flip_left_right(image)


def imagenet_augment(image: tf.Tensor, size: int, jitter: float = 0.4) -> tf.Tensor:
    """ImageNet training augmentation: random resized crop (area 8-100 %, aspect ratio
    3/4-4/3) to ``size``, random horizontal flip, colour jitter: brightness, contrast and
    saturation each scaled by a random factor in [1 - jitter, 1 + jitter]. Input in [0, 1]."""
    channels = image.shape[-1]
    begin, extent, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        tf.zeros([0, 0, 4], tf.float32),
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, extent)
    image.set_shape([None, None, channels])
    image = tf.image.resize(image, (size, size))
    image = tf.image.random_flip_left_right(image)
    if jitter:
        image = image * tf.random.uniform([], 1 - jitter, 1 + jitter)
        image = tf.image.random_contrast(image, 1 - jitter, 1 + jitter)
        if channels == 3:
            image = tf.image.random_saturation(image, 1 - jitter, 1 + jitter)
    return tf.clip_by_value(image, 0.0, 1.0)


def center_crop(image: tf.Tensor, size: int, ratio: float = 0.875) -> tf.Tensor:
    """Evaluation transform for large images: the central ``ratio`` of the shorter side
    (224 / 256 = 0.875), resized to ``size``."""
    shape = tf.shape(image)
    side = tf.cast(tf.cast(tf.minimum(shape[0], shape[1]), tf.float32) * ratio, tf.int32)
    side = tf.maximum(side, 1)
    top = (shape[0] - side) // 2
    left = (shape[1] - side) // 2
    image = image[top : top + side, left : left + side]
    return tf.image.resize(image, (size, size))


# kept for callers of the first version
_cifar_train = cifar_augment
_imagenet_train = imagenet_augment
_center_crop = center_crop


# --- the entry points -----------------------------------------------------------------
def _stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (CIFAR_MEAN, CIFAR_STD) if name.startswith("cifar") else (IMAGENET_MEAN, IMAGENET_STD)


def info(name: str = DIGITS.name, data_dir: str | os.PathLike | None = None) -> DatasetInfo:
    """Number of classes, native image shape and split sizes of dataset ``name``."""
    if name == DIGITS.name:
        return DIGITS_INFO
    if name.startswith("folder:"):
        root = _folder_root(name)
        _, labels, classes = _folder_files(root, "train")
        splits = {"train": len(labels)}
        for split in ("test", "validation"):
            try:
                splits[split] = len(_folder_files(root, split)[1])
            except ValueError:
                continue
        return DatasetInfo(name, len(classes), (None, None, 3), splits, IMAGENET_MEAN, IMAGENET_STD)
    builder = _tfds_builder(name, data_dir)
    image_key, label_key = _tfds_keys(builder, name)
    features = builder.info.features
    shape = tuple(features[image_key].shape)
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    mean, std = _stats(name)
    return DatasetInfo(name, features[label_key].num_classes, shape, splits, mean, std)


def eval_split(name: str = DIGITS.name, data_dir: str | os.PathLike | None = None) -> str:
    """The split to report test accuracy on: ``test`` when the set has one, else
    ``validation`` (ImageNet's 50,000 images, as the papers report)."""
    splits = info(name, data_dir).splits
    if "test" in splits:
        return "test"
    if "validation" in splits:
        return "validation"
    raise ValueError(
        f"Dataset {name!r} has neither a test nor a validation split (it has: {', '.join(splits)})"
    )


def load(
    name: str = DIGITS.name,
    split: str = "train",
    *,
    input_size: int | None = 32,
    channels: int = 3,
    batch_size: int | None = 64,
    shuffle: bool | None = None,
    augment: bool | str | None = None,
    repeat: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
    data_dir: str | os.PathLike | None = None,
    shuffle_buffer: int = SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """``(image, label)`` batches of dataset ``name`` (see the module docstring):
    float32 images normalised with the set's mean and std, int32 labels.

    Args:
        name: "digits", a tfds name such as "cifar10", or "folder:PATH".
        split: "train", "test" or a tfds-style slice such as "train[:50%]" (tfds sets use
            their own split names, e.g. "validation" for imagenet2012).
        input_size: square size the images are resized/cropped to (None: native).
        channels: 3 (grayscale images repeated) or 1.
        batch_size: batch size (None: unbatched).
        shuffle: shuffle the examples (default: for training splits).
        augment: the papers' training augmentation: True/False, or "cifar" / "imagenet" to
            choose the style (default: for training splits, by native image size; the
            digits are not augmented by default: flips would change them).
        repeat: repeat forever.
        seed: shuffling seed (the same seed gives the same order on every worker).
        drop_remainder: drop the last incomplete batch.
        data_dir: where tfds datasets are prepared (default $TFDS_DATA_DIR).
        shuffle_buffer: shuffle buffer of tfds sets and folders (encoded images).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if isinstance(augment, str) and augment not in _AUGMENTATIONS:
        raise ValueError(
            f"Unknown augmentation {augment!r}; valid ones are: "
            f"{', '.join(_AUGMENTATIONS)}, True, False"
        )
    base = parse_split(split)[0]
    training = base == "train"
    shuffle = training if shuffle is None else shuffle
    decode: Callable[[tf.Tensor], tf.Tensor] | None = None
    if name == DIGITS.name:
        ds = _digits_source(split, channels)
        meta = DIGITS_INFO
        augment = False if augment is None else augment
    elif name.startswith("folder:"):
        ds, decode = _folder_source(_folder_root(name), split)
        meta = DatasetInfo(name, 0, (None, None, 3), {}, IMAGENET_MEAN, IMAGENET_STD)
    else:
        meta = info(name, data_dir)
        ds, decode = _tfds_source(name, split, data_dir, shuffle, seed)
    augment = training if augment is None else augment
    native = meta.image_shape[0]
    if isinstance(augment, str):
        style = augment
    else:
        style = "cifar" if native is not None and native <= SMALL_IMAGE_SIDE else "imagenet"
    target = input_size or native
    if target is None and batch_size is not None:
        raise ValueError(f"{name!r} has images of different sizes: pass input_size")
    cache = decode is None and not augment  # the digits: prepare once, in memory
    if shuffle and not cache:  # shuffle file names / encoded images, not decoded pixels
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def prepare(raw: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = decode(raw) if decode is not None else raw
        image = _match_channels(image, channels)
        if augment and target is not None:
            image = (
                cifar_augment(image, target)
                if style == "cifar"
                else imagenet_augment(image, target)
            )
        elif target is not None:
            image = (
                tf.image.resize(image, (target, target))
                if style == "cifar"
                else center_crop(image, target)
            )
        return _normalize(image, meta.mean, meta.std), label

    # deterministic order: every worker of a multi-worker run must see the same order
    ds = ds.map(prepare, num_parallel_calls=AUTOTUNE)
    if cache:
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
        return len(_folder_files(_folder_root(name), split)[0])
    total = info(name, data_dir).splits.get(base)
    if total is None:
        raise ValueError(
            f"Unknown split {base!r} of {name!r}; valid splits are: "
            f"{', '.join(info(name, data_dir).splits)}"
        )
    part = _slice(total, start, stop)
    return part.stop - part.start
