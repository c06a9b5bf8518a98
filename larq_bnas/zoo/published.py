"""The BNAS authors' published PyTorch checkpoints, loaded into our Keras networks exactly.

The reference (gistvision/bnas) evaluates its checkpoints through ``BinOp``
(``src/bin_utils.py``): before inference it mean-centres each kernel it binarizes over the
input channels, clamps it to [-1, 1], and replaces it by sign(w) * mean|w| per output
channel. It binarizes only some convolutions (``reference_convs`` in
``larq_bnas.models.bnas.network`` derives which), its activations are ``sign`` and its
binary convolutions zero-pad. An imported model therefore is a BNAS network built with

- ``reference_binop=True``: the convs BinOp leaves alone keep float kernels;
- ``pad_values=0.0``: zero padding;
- ``torch_padding=True``: PyTorch's symmetric padding of stride-2 windows;

and loaded with PyTorch's tensors converted: conv kernels OIHW -> HWIO, linear weights
transposed, BatchNorm statistics as they are (eps 1e-5 in both), each binarized kernel
mean-centred and clamped at import (our kernel quantizer, ``MagnitudeAwareSign``, then
computes sign(w) * mean|w| exactly as BinOp does).

Cells, channels and classes come from the checkpoint itself; only the network kind
(CIFAR or ImageNet stem and cell) comes from the zoo model named. Preprocessing stays
outside the model (larq-zoo's convention): feed ``larq_bnas.zoo.preprocess_input``'s
output, the same normalized input as the reference's.

``PUBLISHED`` lists the published checkpoints with the reference's names, our zoo names,
their configs and reported accuracies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from larq_bnas.zoo.registry import (
    CheckpointImporter,
    find_spec,
    get_spec,
    normalize_name,
    register_checkpoint_importer,
)
from larq_bnas.zoo.torch_checkpoint import CheckpointError, load_state_dict

#: Google Drive folder the reference README links to ("Inference with Pre-Trained Models").
DOWNLOAD_PAGE = "https://drive.google.com/drive/folders/14pmPSCb2u_4gHgeriRrBBkgIJ3J5p1O1"
#: The reason printed for a conv that the reference's BinOp does not binarize.
BINOP_REASON = "kept float by the reference's BinOp"


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One checkpoint the BNAS authors published.

    ``file_url`` is the per-model Drive link of the reference README's results table;
    the README gives no file names, so ``file_name`` is the name we suggest saving it
    under (any name works: ``import-weights`` reads the file, not its name).
    """

    reference_name: str
    zoo_name: str
    network: str  # "cifar" or "imagenet"
    cells: int
    channels: int
    top1: float
    top5: float | None
    reproduced_top1: float
    file_url: str
    file_name: str
    download_page: str = DOWNLOAD_PAGE
    num_classes: int = 1000


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view"


PUBLISHED: tuple[PublishedCheckpoint, ...] = (
    PublishedCheckpoint(
        "bnas-a",
        "bnas-a",
        "cifar",
        20,
        36,
        92.70,
        None,
        92.39,
        _drive("1aSikzW8_sYJ5FuJsl54rnRg7kWsJKbf3"),
        "bnas_a.pth.tar",
        num_classes=10,
    ),
    PublishedCheckpoint(
        "bnas-d",
        "bnas-d",
        "imagenet",
        12,
        64,
        57.69,
        79.89,
        57.60,
        _drive("165KA6Q2kn0Qrr8MKMruc10FtHM5JQgfP"),
        "bnas_d.pth.tar",
    ),
    PublishedCheckpoint(
        "bnas-e",
        "bnas-e",
        "imagenet",
        12,
        68,
        58.76,
        80.61,
        58.15,
        _drive("10rH9o8N9UdV-J8rCic2y6iXYn6z9WOKz"),
        "bnas_e.pth.tar",
    ),
    PublishedCheckpoint(
        "bnas-f",
        "bnas-ref-f",
        "imagenet",
        15,
        68,
        58.99,
        80.85,
        58.89,
        _drive("1naNNrsBB78GvehmrsoRs4Qr3RlU40NCH"),
        "bnas_f.pth.tar",
    ),
    PublishedCheckpoint(
        "bnas-g",
        "bnas-ref-g",
        "imagenet",
        11,
        74,
        59.81,
        81.61,
        59.39,
        _drive("1XOI6krbbBx_7u3A8Ikshvoh5LkihHNB2"),
        "bnas_g.pth.tar",
    ),
    PublishedCheckpoint(
        "bnas-h",
        "bnas-g",
        "imagenet",
        16,
        128,
        63.51,
        83.91,
        63.70,
        _drive("18wwejF135kX4dxfMtnFdEqHNEDRqNsIq"),
        "bnas_h.pth.tar",
    ),
)


def published_for(zoo_name: str) -> PublishedCheckpoint | None:
    """The published checkpoint of zoo model ``zoo_name``, if any."""
    for entry in PUBLISHED:
        if normalize_name(entry.zoo_name) == normalize_name(zoo_name):
            return entry
    return None


def resolve_model_name(name: str) -> str:
    """A zoo name, or the reference's config name (``ref:bnas-h`` or a reference-only
    name such as ``bnas-h``) mapped to ours. Zoo names win: ``bnas-g`` is our BNAS-G
    (the reference's ``bnas-h``); write ``ref:bnas-g`` for the reference's."""
    text = name.strip()
    explicit = text.lower().startswith("ref:")
    if explicit:
        text = text[4:]
    if not explicit and find_spec(text) is not None:
        return text
    for entry in PUBLISHED:
        if normalize_name(entry.reference_name) == normalize_name(text):
            return entry.zoo_name
    if explicit:
        valid = ", ".join(f"ref:{e.reference_name}" for e in PUBLISHED)
        raise ValueError(f"Unknown reference config {name!r}; valid: {valid}")
    return text


def is_torch_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a ``torch.save`` file (by extension or by content)."""
    text = os.fspath(path)
    if re.search(r"\.(pth|pt)(\.tar)?$", text):
        return True
    if not os.path.isfile(text):
        return False
    with open(text, "rb") as f:
        head = f.read(4)
    return head[:2] == b"\x80\x02" or (head == b"PK\x03\x04" and _zip_has_data_pkl(text))


def _zip_has_data_pkl(path: str) -> bool:
    import zipfile

    try:
        return any(n.endswith("data.pkl") for n in zipfile.ZipFile(path).namelist())
    except zipfile.BadZipFile:
        return False


# ----------------------------------------------------------------------------- layout


@dataclass
class _Module:
    """A reference module with tensors: its name prefix, kind, and our layer."""

    prefix: str
    kind: str  # "bn", "bn_fixed" (non-affine in the reference), "conv", "linear"
    layer: Any
    cell: int | None = None
    our_name: str = ""
    conv_key: tuple[int | None, str] | None = None


@dataclass
class ImportReport:
    """What an import mapped: tensors, convs left float and why."""

    model: str
    network: str
    cells: int
    channels: int
    num_classes: int
    tensors: list[tuple[str, tuple[int, ...], str]] = field(default_factory=list)
    binarized: list[str] = field(default_factory=list)
    float_convs: list[tuple[str, str, str]] = field(default_factory=list)  # ref, ours, why
    ignored: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"{self.model}: {self.network} network, {self.cells} cells, C {self.channels}, "
            f"{self.num_classes} classes",
            f"mapped {len(self.tensors)} tensors "
            f"({len(self.binarized)} binarized conv kernels mean-centred and clamped)",
        ]
        out += [f"  {ref} {list(shape)} -> {ours}" for ref, shape, ours in self.tensors]
        out.append(f"convs with float kernels ({len(self.float_convs)}):")
        out += [f"  {ours} ({ref}): {why}" for ref, ours, why in self.float_convs]
        if self.ignored:
            out.append(f"ignored (not model state): {', '.join(self.ignored)}")
        return out


def _cell_layers(model: Any) -> dict[int, Any]:
    from larq_bnas.models.bnas.cells import Cell

    cells = [layer for layer in model.layers if isinstance(layer, Cell)]
    return dict(enumerate(cells))


def _layout(model: Any, config: Any) -> list[_Module]:
    """Every reference module with tensors, in its state_dict order, with our layer."""
    from larq_bnas.models.bnas.cells import edge_layer_names

    imagenet = config.stem == "imagenet"
    mods: list[_Module] = []
    get = model.get_layer
    if imagenet:
        mods += [
            _Module("stem0.0", "conv", get("stem0_conv1"), conv_key=(None, "stem0_conv1")),
            _Module("stem0.1", "bn", get("stem0_bn1")),
            _Module("stem0.3", "conv", get("stem0_conv2"), conv_key=(None, "stem0_conv2")),
            _Module("stem0.4", "bn", get("stem0_bn2")),
            _Module("stem1.1", "conv", get("stem1_conv"), conv_key=(None, "stem1_conv")),
            _Module("stem1.2", "bn", get("stem1_bn")),
        ]
    else:
        mods += [
            _Module("stem.bn", "bn", get("stem_bn")),
            _Module("stem.op.0", "conv", get("stem_conv"), conv_key=(None, "stem_conv")),
        ]
    genotype = config.resolved_genotype()
    for i, cell in _cell_layers(model).items():
        red = "_red" if imagenet and cell.reduction else ""
        base = f"cells.{i}"
        for j, sub in enumerate((cell.preprocess0, cell.preprocess1)):
            # The CIFAR reference's 3x3 stride-2 preprocess0 has a non-affine BatchNorm.
            fixed = (not imagenet) and j == 0 and cell.reduction_prev
            mods.append(
                _Module(
                    f"{base}.preprocess{j}{red}.bn",
                    "bn_fixed" if fixed else "bn",
                    sub.bn,
                    i,
                    f"{cell.name}/{sub.name}/bn",
                )
            )
            mods.append(
                _Module(
                    f"{base}.preprocess{j}{red}.op.0",
                    "conv",
                    sub.conv,
                    i,
                    f"{cell.name}/{sub.name}",
                    (i, sub.name),
                )
            )
        if cell.reduction:
            if cell.skip != "projection":
                raise ValueError("the reference's reduction cells always have preprocess_res")
            mods.append(
                _Module(f"{base}.preprocess_res.0", "bn", cell.skip_bn, i, f"{cell.name}/skip_bn")
            )
            mods.append(
                _Module(
                    f"{base}.preprocess_res.1",
                    "conv",
                    cell.skip_conv,
                    i,
                    f"{cell.name}/skip_conv",
                    (i, "skip_conv"),
                )
            )
        pairs = genotype.reduce if cell.reduction else genotype.normal
        for j, (layer, name) in enumerate(
            zip(cell.edge_layers, edge_layer_names(pairs), strict=True)
        ):
            if hasattr(layer, "conv"):
                mods.append(
                    _Module(f"{base}._ops.{j}.bn", "bn", layer.bn, i, f"{cell.name}/{name}/bn")
                )
                mods.append(
                    _Module(
                        f"{base}._ops.{j}.op.0",
                        "conv",
                        layer.conv,
                        i,
                        f"{cell.name}/{name}",
                        (i, name),
                    )
                )
    mods.append(_Module("classifier", "linear", get("classifier")))
    for m in mods:
        m.our_name = m.our_name or m.layer.name
    return mods


def _expected(module: _Module) -> list[tuple[str, tuple[int, ...]]]:
    """The reference tensor names and (PyTorch) shapes of one module."""
    weights = module.layer.weights
    if module.kind in ("bn", "bn_fixed"):
        n = int(weights[-1].shape[0])
        names = ["running_mean", "running_var"]
        if module.kind == "bn":
            names = ["weight", "bias", *names]
        return [(f"{module.prefix}.{k}", (n,)) for k in names]
    kernel = tuple(int(d) for d in module.layer.kernel.shape)
    out: list[tuple[str, tuple[int, ...]]]
    if module.kind == "linear":
        out = [(f"{module.prefix}.weight", (kernel[1], kernel[0]))]
    else:
        h, w, cin, cout = kernel
        out = [(f"{module.prefix}.weight", (cout, cin, h, w))]
    if getattr(module.layer, "use_bias", False):
        out.append((f"{module.prefix}.bias", (int(module.layer.bias.shape[0]),)))
    return out


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's tensors do not fit the network."""


def check_tensors(
    state: Mapping[str, np.ndarray], expected: list[tuple[str, tuple[int, ...]]], what: str
) -> None:
    """Raise ``CheckpointMismatchError`` for the first tensor whose shape does not fit,
    then for missing tensors, then for extra ones."""
    expected_names = {name for name, _ in expected}
    missing = [name for name, _ in expected if name not in state]
    hint = ""
    if "stem0.0.weight" in state and "stem.op.0.weight" in expected_names:
        hint = " It is a checkpoint of the ImageNet network: use --model bnas-d (or e, f, g)."
    elif "stem.op.0.weight" in state and "stem0.0.weight" in expected_names:
        hint = " It is a checkpoint of the CIFAR network: use --model bnas-a."
    for name, shape in expected:
        if name in state and tuple(state[name].shape) != shape:
            raise CheckpointMismatchError(
                f"the checkpoint does not fit {what}: tensor {name!r} has shape "
                f"{_shape(tuple(state[name].shape))}, expected {_shape(shape)} "
                "(a checkpoint of another architecture? pass --cells/--channels/"
                "--num-classes or another --model)." + hint
            )
    extra = [
        name
        for name in state
        if name not in expected_names and not name.endswith("num_batches_tracked")
    ]
    if missing:
        raise CheckpointMismatchError(
            f"the checkpoint does not fit {what}: {len(missing)} tensor(s) missing, first "
            f"{', '.join(repr(n) for n in missing[:3])}"
            + (
                f"; {len(extra)} unexpected, first {', '.join(repr(n) for n in extra[:3])}"
                if extra
                else ""
            )
            + "."
            + hint
        )
    if extra:
        raise CheckpointMismatchError(
            f"the checkpoint does not fit {what}: {len(extra)} unexpected tensor(s), first "
            f"{', '.join(repr(n) for n in extra[:3])} (a checkpoint of a larger or "
            "different network?)"
        )


def infer_architecture(state: Mapping[str, np.ndarray], stem: str) -> dict[str, int]:
    """Cells, channels and classes that a reference state_dict implies (those it shows)."""
    found: dict[str, int] = {}
    indices = {int(m.group(1)) for k in state if (m := re.match(r"cells\.(\d+)\.", k))}
    if indices:
        found["cells"] = max(indices) + 1
    if stem == "cifar" and "stem.op.0.weight" in state:
        c3 = int(state["stem.op.0.weight"].shape[0])
        if c3 % 3 == 0:
            found["channels"] = c3 // 3
    if stem == "imagenet" and "stem0.3.weight" in state:
        found["channels"] = int(state["stem0.3.weight"].shape[0])
    if "classifier.weight" in state and state["classifier.weight"].ndim == 2:
        found["num_classes"] = int(state["classifier.weight"].shape[0])
    return found


def _binop_kernel(weight: np.ndarray) -> np.ndarray:
    """BinOp's preparation of a kernel it binarizes: mean-centre over the input channels
    (axis 1 of OIHW), then clamp to [-1, 1]."""
    centred = weight - weight.mean(axis=1, keepdims=True, dtype=np.float32)
    return np.clip(centred, -1.0, 1.0).astype(np.float32)


def assign_state(
    model: Any, config: Any, state: Mapping[str, np.ndarray], what: str = "the network"
) -> ImportReport:
    """Check ``state`` against ``model`` (built from ``config`` with ``reference_binop``)
    and load it; return what was mapped."""
    from larq_bnas.models.bnas.network import reference_convs

    modules = _layout(model, config)
    expected = [item for m in modules for item in _expected(m)]
    check_tensors(state, expected, what)
    convs = {(c.cell, c.layer): c for c in reference_convs(config)}
    count = sum(1 for c in convs.values() if not c.residual)
    num_skip = config.stem_convs if config.num_skip is None else config.num_skip
    report = ImportReport(
        model=what,
        network=config.stem,
        cells=config.cells,
        channels=config.channels,
        num_classes=int(model.get_layer("classifier").units),
        ignored=(
            ["num_batches_tracked (BatchNorm step counters)"]
            if any(k.endswith("num_batches_tracked") for k in state)
            else []
        ),
    )
    for m in modules:
        names = [name for name, _ in _expected(m)]
        arrays = [np.asarray(state[n], dtype=np.float32) for n in names]
        if m.kind == "bn":
            values = arrays
        elif m.kind == "bn_fixed":
            n = arrays[0].shape[0]
            values = [np.ones(n, np.float32), np.zeros(n, np.float32), *arrays]
            if len(m.layer.weights) == 2:
                values = arrays
        elif m.kind == "linear":
            values = [arrays[0].T, *arrays[1:]]
        else:
            weight = arrays[0]
            conv = convs.get(m.conv_key) if m.conv_key else None
            if conv is not None and conv.binarized:
                weight = _binop_kernel(weight)
                report.binarized.append(m.our_name)
            elif conv is not None:
                if conv.residual:
                    why = f"{BINOP_REASON} (a residual 'res' conv: full precision)"
                elif conv.index <= num_skip:
                    why = f"{BINOP_REASON} (one of the first num_skip={num_skip} convs)"
                else:
                    why = (
                        f"{BINOP_REASON} (its index {conv.index} exceeds BinOp's count "
                        f"{count} of non-residual convs)"
                    )
                report.float_convs.append((m.prefix, m.our_name, why))
                if not hasattr(m.layer, "kept_float_reason"):
                    m.layer.kept_float_reason = why  # for the acceleration report
            values = [weight.transpose(2, 3, 1, 0), *arrays[1:]]
        m.layer.set_weights(values)
        for tensor_name, arr in zip(names, arrays, strict=True):
            report.tensors.append((tensor_name, tuple(arr.shape), m.our_name))
    return report


def reference_config(base: Any, **overrides: Any) -> Any:
    """``base`` (a BNASConfig) set up to compute the reference's function."""
    return replace(base, reference_binop=True, torch_padding=True, pad_values=0.0, **overrides)


def import_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, np.ndarray],
    model: str = "bnas-d",
    *,
    cells: int | None = None,
    channels: int | None = None,
    num_classes: int | None = None,
    input_size: int | None = None,
    input_tensor: Any = None,
    include_top: bool = True,
    **options: Any,
) -> tuple[Any, ImportReport]:
    """Build zoo model ``model`` as the reference computes it and load ``checkpoint``.

    Cells, channels and classes come from the arguments, else from the checkpoint, else
    from the zoo model. Returns ``(keras_model, report)``.

    Raises:
        CheckpointError (a ValueError): unreadable, truncated or refused file, or tensors
            that do not fit (naming the first one and both shapes).
    """
    from larq_bnas.models.bnas.network import BNASConfig, bnas_network

    spec = get_spec(resolve_model_name(model))
    if spec.family != "bnas":
        raise ValueError(
            f"{spec.name} is not a BNAS network; PyTorch checkpoints of the BNAS reference "
            "load into bnas-a (CIFAR) or bnas-d/e/f/g (ImageNet)"
        )
    if not include_top:
        raise ValueError("a reference checkpoint includes the classifier: use include_top=True")
    state = checkpoint if isinstance(checkpoint, Mapping) else load_state_dict(checkpoint)
    base: BNASConfig = spec.config.override(options) if options else spec.config  # type: ignore[assignment]
    found = infer_architecture(state, base.stem)
    arch = {
        "cells": cells if cells is not None else found.get("cells", base.cells),
        "channels": channels if channels is not None else found.get("channels", base.channels),
    }
    classes = num_classes if num_classes is not None else found.get("num_classes", spec.num_classes)
    config = reference_config(base, **arch)
    size = input_size or spec.input_shape[0]
    keras_model = bnas_network(
        config,
        input_shape=(size, size, 3),
        input_tensor=input_tensor,
        num_classes=int(classes),
        name=spec.constructor.lower() if not spec.custom else spec.name.replace("-", "_"),
    )
    what = (
        f"{spec.name} ({base.stem} network, {config.cells} cells, C {config.channels}, "
        f"{classes} classes)"
    )
    report = assign_state(keras_model, config, state, what)
    report.model = spec.name
    return keras_model, report


def reference_parameter_count(config: Any, num_classes: int) -> int:
    """Trainable parameters of the reference network with ``config``'s architecture, counted
    from its module layout (BatchNorm scale/offset and biases included, running statistics
    excluded; the CIFAR network's non-affine BatchNorms have none)."""
    from larq_bnas.models.bnas.network import bnas_network

    model = bnas_network(reference_config(config), num_classes=num_classes)
    total = 0
    for m in _layout(model, config):
        for name, shape in _expected(m):
            if name.endswith(("running_mean", "running_var")):
                continue
            total += int(np.prod(shape))
    return total


def logits_model(model: Any) -> Any:
    """The sub-model of ``model`` that outputs the classifier's logits (before softmax)."""
    import tensorflow as tf

    return tf.keras.Model(model.inputs, model.get_layer("classifier").output)


__all__ = [
    "BINOP_REASON",
    "CheckpointMismatchError",
    "DOWNLOAD_PAGE",
    "ImportReport",
    "PUBLISHED",
    "PublishedCheckpoint",
    "assign_state",
    "evaluate_checkpoint",
    "import_checkpoint",
    "infer_architecture",
    "is_torch_checkpoint",
    "logits_model",
    "published_for",
    "reference_config",
    "reference_parameter_count",
    "resolve_model_name",
]


# --------------------------------------------------------------------------- evaluation


def _folder_labels(classes: list[str], num_classes: int, network: str) -> list[int]:
    """Label of each class folder: its ImageNet index for WordNet ids (1000 classes), the
    number itself for numbered folders (the reference's prepare_imgnet.py), otherwise
    the sorted position (torchvision's ImageFolder)."""
    from larq_bnas.zoo.preprocessing import class_names

    if network == "imagenet" and num_classes == 1000:
        index = {wnid: i for i, (wnid, _) in enumerate(class_names("imagenet2012"))}
        if all(c in index for c in classes):
            return [index[c] for c in classes]
    if all(c.isdigit() for c in classes):
        return [int(c) for c in classes]
    return list(range(len(classes)))


def _folder_batches(
    root: str, split: str | None, transforms: str, network: str, num_classes: int, batch: int
) -> Any:
    from pathlib import Path

    from larq_bnas.zoo.preprocessing import image_files, preprocess_input

    base = Path(root).expanduser()
    for sub in [split] if split else ["val", "validation", "test"]:
        if sub and (base / sub).is_dir():
            base = base / sub
            break
    files, positions, classes = image_files(base)
    labels = _folder_labels(classes, num_classes, network)
    if max(labels) >= num_classes:
        raise ValueError(
            f"{base} has {len(classes)} class folders; the model has {num_classes} classes"
        )
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        yield (
            preprocess_input(chunk, transforms),
            np.asarray([labels[p] for p in positions[start : start + batch]]),
        )


def _tfds_batches(
    name: str, split: str | None, data_dir: str | None, transforms: str, batch: int
) -> Any:
    import io

    import tensorflow_datasets as tfds
    from PIL import Image

    from larq_bnas.zoo.preprocessing import preprocess_input

    builder = tfds.builder(name, data_dir=data_dir)
    split = split or ("validation" if name == "imagenet2012" else "test")
    ds = builder.as_dataset(
        split=split, as_supervised=True, decoders={"image": tfds.decode.SkipDecoding()}
    )
    images: list[Any] = []
    labels: list[int] = []
    for encoded, label in tfds.as_numpy(ds):
        images.append(Image.open(io.BytesIO(encoded)).convert("RGB"))  # decoded as PIL does
        labels.append(int(label))
        if len(images) == batch:
            yield preprocess_input(images, transforms), np.asarray(labels)
            images, labels = [], []
    if images:
        yield preprocess_input(images, transforms), np.asarray(labels)


def evaluate_checkpoint(
    model: Any,
    *,
    dataset: str = "imagenet2012",
    split: str | None = None,
    weights: str | None = None,
    input_size: int | None = None,
    batch_size: int = 64,
    data_dir: str | None = None,
    options: dict[str, Any] | None = None,
    trust_model_code: bool = False,
) -> dict[str, float]:
    """Top-1 / top-5 accuracy and loss of a reference checkpoint ``weights`` imported into
    ``model``, with the reference's evaluation transforms (``preprocess_input``). The
    keywords are ``larq_bnas.training.evaluate``'s (``trust_model_code`` is unused: a
    checkpoint holds no code).

    Args:
        dataset: ``folder:PATH`` (one folder per class, in ``PATH``, or ``PATH/val``,
            ``validation`` or ``test``; WordNet-id folders get their ImageNet index,
            numbered folders their number), ``imagenet2012`` or ``cifar10`` (prepared
            tensorflow-datasets sets under ``data_dir``).
        options: model options (``cells``, ``channels``, config fields).
    """
    if weights is None:
        raise ValueError("evaluate_checkpoint needs weights=CHECKPOINT (a .pth.tar file)")
    checkpoint = weights
    keras_model, report = import_checkpoint(
        checkpoint, model, input_size=input_size, **dict(options or {})
    )
    transforms = "imagenet2012" if report.network == "imagenet" else "cifar10"
    if dataset.startswith("folder:"):
        batches = _folder_batches(
            dataset[len("folder:") :],
            split,
            transforms,
            report.network,
            report.num_classes,
            batch_size,
        )
    elif dataset in ("imagenet2012", "cifar10"):
        batches = _tfds_batches(dataset, split, data_dir, transforms, batch_size)
    else:
        raise ValueError(
            f"Unknown dataset {dataset!r} for a reference checkpoint; valid: folder:PATH, "
            "imagenet2012, cifar10"
        )
    top1 = top5 = 0
    loss = 0.0
    n = 0
    size = keras_model.input_shape[1:3]
    for x, y in batches:
        if tuple(x.shape[1:3]) != tuple(size):
            raise ValueError(
                f"the {transforms} transforms give {x.shape[1]}x{x.shape[2]} images; the "
                f"model takes {size[0]}x{size[1]} (CIFAR images are not resized)"
            )
        probs = np.asarray(keras_model.predict_on_batch(x), dtype=np.float64)
        ranked = np.argsort(-probs, axis=1, kind="stable")
        top1 += int(np.sum(ranked[:, 0] == y))
        top5 += int(np.sum(np.any(ranked[:, :5] == y[:, None], axis=1)))
        loss += float(-np.sum(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12))))
        n += len(y)
    if n == 0:
        raise ValueError(f"{dataset} has no images")
    return {"top1": top1 / n, "top5": top5 / n, "loss": loss / n, "examples": n}


def _build_from_checkpoint(
    name: str,
    weights: Any,
    *,
    input_shape: Any = None,
    input_tensor: Any = None,
    include_top: bool = True,
    num_classes: int | None = None,
    **options: Any,
) -> Any:
    """``zoo.build(name, weights="X.pth.tar", ...)``: import the reference checkpoint."""
    if input_shape is not None and tuple(input_shape)[0] != tuple(input_shape)[1]:
        raise ValueError("a reference checkpoint is imported for square inputs")
    model, _ = import_checkpoint(
        weights,
        name,
        num_classes=num_classes,
        input_size=None if input_shape is None else tuple(input_shape)[0],
        input_tensor=input_tensor,
        include_top=include_top,
        **options,
    )
    return model


register_checkpoint_importer(
    CheckpointImporter(family="bnas", matches=is_torch_checkpoint, build=_build_from_checkpoint)
)
