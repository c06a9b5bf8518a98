"""The reference's evaluation transforms and class names, outside the model.

Like larq-zoo, zoo models take already normalized input; ``preprocess_input`` produces
it exactly as the BNAS reference's evaluation scripts do (torchvision transforms):

- ImageNet (``test_imagenet.py``): resize the shorter side to 256 (bilinear), centre
  crop 224, scale to [0, 1], normalize with mean (0.485, 0.456, 0.406) and std
  (0.229, 0.224, 0.225);
- CIFAR-10 (``test.py``): scale to [0, 1], normalize with the reference's mean
  (0.49139968, 0.48215827, 0.44653124) and std (0.24703233, 0.24348505, 0.26158768).

``decode_predictions`` names the top classes with the class lists shipped in
``larq_bnas/zoo/data/`` (see its README): nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR = Path(__file__).parent / "data"

#: dataset -> (mean, std) of the reference's Normalize
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": (
        (0.49139968, 0.48215827, 0.44653124),
        (0.24703233, 0.24348505, 0.26158768),
    ),
}
#: dataset -> (resize of the shorter side, centre crop), None where the reference has none
GEOMETRY: dict[str, tuple[int, int] | None] = {"imagenet2012": (256, 224), "cifar10": None}
_ALIASES = {"imagenet": "imagenet2012", "cifar": "cifar10", "cifar-10": "cifar10"}


def _dataset(name: str) -> str:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in NORMALIZATION:
        raise ValueError(
            f"Unknown dataset {name!r} for preprocessing; valid: {', '.join(NORMALIZATION)}"
        )
    return key


def _to_pil(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as img:
            return img.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        if array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(np.round(array), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def resize_and_crop(image: Any, resize: int, crop: int) -> np.ndarray:
    """torchvision's ``Resize(resize)`` (shorter side, bilinear, on a PIL image) then
    ``CenterCrop(crop)``; returns uint8 HWC."""
    from PIL import Image

    pil = _to_pil(image)
    w, h = pil.size
    if w <= h:
        size = (resize, int(resize * h / w))
    else:
        size = (int(resize * w / h), resize)
    if size != (w, h):
        pil = pil.resize(size, Image.Resampling.BILINEAR)
    w, h = pil.size
    top = int(round((h - crop) / 2.0))
    left = int(round((w - crop) / 2.0))
    return np.asarray(pil.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def preprocess_input(images: Any, dataset: str = "imagenet2012") -> np.ndarray:
    """Normalized float32 NHWC input for a zoo model, as the reference's evaluation
    computes it.

    Args:
        images: one image or a sequence/batch of them: file paths, PIL images, or HWC
            arrays (uint8 0..255, or floats in [0, 1]). ImageNet images may have any size
            (resized and cropped to 224); CIFAR-10 images are used at their size.
        dataset: "imagenet2012" or "cifar10".
    """
    key = _dataset(dataset)
    single = (
        isinstance(images, (str, os.PathLike))
        or (not isinstance(images, (list, tuple)) and np.asarray(images).ndim == 3)
        or _is_pil(images)
    )
    batch: Iterable[Any] = [images] if single else images
    mean, std = (np.asarray(v, dtype=np.float32) for v in NORMALIZATION[key])
    geometry = GEOMETRY[key]
    out = []
    for image in batch:
        if geometry is not None:
            array = resize_and_crop(image, *geometry)
        else:
            array = np.asarray(_to_pil(image), dtype=np.uint8)
        out.append((array.astype(np.float32) / 255.0 - mean) / std)
    return np.stack(out).astype(np.float32)


def _is_pil(obj: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Image.Image)


@cache
def class_names(dataset: str = "imagenet2012") -> tuple[tuple[str | None, str], ...]:
    """The shipped class list of ``dataset``: ``(id, name)`` per class index (the id is
    the WordNet id for ImageNet, None for CIFAR-10)."""
    key = _dataset(dataset)
    fname = "imagenet_classes.json" if key == "imagenet2012" else "cifar10_classes.json"
    rows = json.loads((DATA_DIR / fname).read_text())
    return tuple((row[0], row[1]) for row in rows)


def decode_predictions(
    preds: Any, top: int = 5, dataset: str | None = None
) -> list[list[tuple[str | None, str, float]]]:
    """The ``top`` classes of each row of ``preds`` as ``(id, name, score)``, best first
    (Keras' and larq-zoo's format). The dataset follows from the number of classes
    (1000: ImageNet, 10: CIFAR-10) unless given."""
    scores = np.asarray(preds)
    if scores.ndim != 2:
        raise ValueError(f"preds must be (batch, classes), got shape {scores.shape}")
    if dataset is None:
        by_size = {1000: "imagenet2012", 10: "cifar10"}
        if scores.shape[1] not in by_size:
            raise ValueError(
                f"{scores.shape[1]} classes: decode_predictions knows ImageNet (1000) and "
                "CIFAR-10 (10)"
            )
        dataset = by_size[scores.shape[1]]
    names = class_names(dataset)
    if scores.shape[1] != len(names):
        raise ValueError(f"{dataset} has {len(names)} classes, preds have {scores.shape[1]}")
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:top]
        out.append([(names[i][0], names[i][1], float(row[i])) for i in order])
    return out


def image_files(root: str | os.PathLike) -> tuple[list[Path], list[int], list[str]]:
    """An ImageFolder layout (``root/CLASS/IMAGE``): files, labels (class folders in
    sorted order, as torchvision numbers them) and class folder names."""
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"No such image folder: {base}")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{base} has no class folders (expected ROOT/CLASS/IMAGE files)")
    exts = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        for path in sorted((base / name).rglob("*")):
            if path.suffix.lower() in exts:
                files.append(path)
                labels.append(index)
    if not files:
        raise ValueError(f"{base} has no images")
    return files, labels, classes


__all__: Sequence[str] = [
    "GEOMETRY",
    "NORMALIZATION",
    "class_names",
    "decode_predictions",
    "image_files",
    "preprocess_input",
    "resize_and_crop",
]
