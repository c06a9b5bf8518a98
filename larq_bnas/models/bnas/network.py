"""BNAS networks: searched cells stacked into a CIFAR or an ImageNet network.

``BNASConfig`` holds every option of the family; ``bnas_network(config, ...)`` builds the
Keras model. Reduction cells sit at ``cells // 3`` and ``2 * cells // 3`` and double the
channels. Stems and heads are full precision, as in the paper:

- CIFAR stem: BatchNorm -> 3x3 conv (3 -> 3C) -> ReLU; cells 0 gets s0 = s1 = stem.
- ImageNet stem: stem0 = 3x3/2 conv (3 -> C/2) -> BN -> ReLU -> 3x3/2 conv (C/2 -> C) -> BN;
  stem1 = ReLU -> 3x3/2 conv (C -> C) -> BN; cell 0 gets s0 = stem0, s1 = stem1.
- Head: global average pool -> dense with bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import tensorflow as tf

from larq_bnas._keras import batch_norm, global_pool, model_input, source_inputs
from larq_bnas.config import ModelConfig
from larq_bnas.models.bnas.cells import Cell
from larq_bnas.models.bnas.genotypes import Genotype, resolve_genotype
from larq_bnas.models.bnas.ops import ALL_PRIMITIVES, check_op_name
from larq_bnas.models.bnas.schedule import cell_schedule, reduction_cells


@dataclass(frozen=True)
class BNASConfig(ModelConfig):
    """Every option of a BNAS network.

    Attributes:
        cells: number of cells (2 of them reduction cells).
        channels: C, the channels of each node in the first stage.
        genotype: a shipped genotype name, a genotype JSON path, or a ``Genotype``.
        stem: "cifar" (3x3 stem, cells at full resolution) or "imagenet" (three stride-2
            convs, cells at 1/8 resolution).
        inter_cell_skip: the paper's inter-cell skip connections (False: "No Skip").
        pad_values: 1.0 (one-padding, LCE-optimal) or 0.0 (the reference's zero padding).
        layer_set: operations the genotype may use (empty: all known operations); for the
            ablations without dilated convs or with separable convs.
        reference_binop: reproduce the BNAS reference's ``BinOp`` selection of binarized
            convolutions: besides the first ``num_skip`` convs (the float stem), the last
            k binary convs keep float kernels (k = its reduction cells' residual convs,
            which BinOp leaves out of its count but not out of its index). Off for the
            paper's models; on for weights imported from the reference.
        num_skip: the reference's ``--num_skip`` (convs in ``named_modules`` order that
            stay float at the start); None: the stem's convs (1 CIFAR, 3 ImageNet).
        torch_padding: pad stride-2 windows symmetrically as PyTorch does (TensorFlow's
            "same" pads an even size only after it); for weights imported from PyTorch.
    """

    cells: int = 20
    channels: int = 36
    genotype: str | Genotype = "bnas_cifar"
    stem: Literal["cifar", "imagenet"] = "cifar"
    inter_cell_skip: bool = True
    pad_values: Literal[1.0, 0.0] = 1.0  # type: ignore[valid-type]  # floats: checked by config
    layer_set: tuple[str, ...] = ()
    reference_binop: bool = False
    num_skip: int | None = None
    torch_padding: bool = False

    def __post_init__(self) -> None:
        if self.cells < 3:
            raise ValueError(f"cells must be at least 3 (two are reductions), got {self.cells}")
        if self.channels < 1:
            raise ValueError(f"channels must be positive, got {self.channels}")
        if self.stem == "imagenet" and self.channels % 2:
            raise ValueError(
                f"channels must be even for the ImageNet stem (it has C/2), got {self.channels}"
            )
        for op in self.layer_set:
            check_op_name(op, ALL_PRIMITIVES)
        if self.num_skip is not None and self.num_skip < self.stem_convs:
            raise ValueError(
                f"num_skip must be at least the stem's {self.stem_convs} float convs, "
                f"got {self.num_skip}"
            )

    @property
    def stem_convs(self) -> int:
        return 1 if self.stem == "cifar" else 3

    def resolved_genotype(self) -> Genotype:
        return resolve_genotype(self.genotype)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        # The reference-import options appear only when set, so the configs of the
        # paper's models (and the fingerprints of their shipped figures) stay as they were.
        for key, default in (
            ("reference_binop", False),
            ("num_skip", None),
            ("torch_padding", False),
        ):
            if d.get(key) == default:
                d.pop(key, None)
        if isinstance(self.genotype, Genotype):
            d["genotype"] = self.genotype.name or self.genotype.to_dict()
        return d

    @property
    def reduction_cells(self) -> tuple[int, int]:
        return reduction_cells(self.cells)


@dataclass(frozen=True)
class ReferenceConv:
    """One ``nn.Conv2d`` of the reference network, in its ``named_modules`` order."""

    index: int  # 1-based, as BinOp counts
    cell: int | None  # None: the stem
    layer: str  # our layer: "stem..." or the cell's sublayer ("preprocess0", "node2_1_...")
    residual: bool  # the reduction cell's "preprocess_res" conv (BinOp never binarizes it)
    binarized: bool  # whether BinOp binarizes it


def reference_convs(config: BNASConfig) -> list[ReferenceConv]:
    """Every convolution of the reference network and whether its ``BinOp`` binarizes it.

    BinOp counts the convs whose module name lacks "res" (``count``) and binarizes the
    conv with running index i (counting every conv) when ``num_skip < i <= count`` and its
    name lacks "res". The index counts the reduction cells' residual convs while
    ``count`` does not, so the last k non-residual convs (k = number of residual convs)
    keep float kernels. The order is the reference's module order: stem convs, then per
    cell preprocess0, preprocess1, preprocess_res (reduction cells), then the edge ops.
    """
    from larq_bnas.models.bnas.cells import edge_layer_names

    genotype = config.resolved_genotype()
    found: list[tuple[int | None, str, bool]] = []
    stem_names = (
        ["stem_conv"]
        if config.stem == "cifar"
        else [
            "stem0_conv1",
            "stem0_conv2",
            "stem1_conv",
        ]
    )
    found += [(None, name, False) for name in stem_names]
    for plan in cell_schedule(config.cells, config.channels):
        pairs = genotype.reduce if plan.reduction else genotype.normal
        found += [(plan.index, "preprocess0", False), (plan.index, "preprocess1", False)]
        if plan.reduction:
            found.append((plan.index, "skip_conv", True))
        for (op, _), name in zip(pairs, edge_layer_names(pairs), strict=True):
            if op.startswith("bin_"):
                found.append((plan.index, name, False))
            elif op.startswith("sep_"):
                raise ValueError("reference_binop: the reference has no separable convolutions")
    count = sum(1 for _, _, res in found if not res)
    num_skip = config.stem_convs if config.num_skip is None else config.num_skip
    return [
        ReferenceConv(i, cell, layer, res, (not res) and num_skip < i <= count)
        for i, (cell, layer, res) in enumerate(found, start=1)
    ]


def binop_float_kernels(config: BNASConfig) -> dict[int, tuple[str, ...]]:
    """Cell index -> its binary convs that the reference's BinOp leaves float."""
    out: dict[int, list[str]] = {}
    for conv in reference_convs(config):
        if conv.cell is not None and not conv.residual and not conv.binarized:
            out.setdefault(conv.cell, []).append(conv.layer)
    return {cell: tuple(names) for cell, names in out.items()}


def bnas_network(
    config: BNASConfig,
    *,
    input_shape: Sequence[int | None] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    num_classes: int = 10,
    name: str = "bnas",
) -> tf.keras.Model:
    """Build the BNAS network described by ``config`` as a Keras model."""
    genotype = config.resolved_genotype()
    layer_set = tuple(config.layer_set) or None
    default = (32, 32, 3) if config.stem == "cifar" else (224, 224, 3)
    inputs, x = model_input(input_shape, input_tensor, default)
    C = config.channels

    float_kernels = binop_float_kernels(config) if config.reference_binop else {}

    def stem_conv(filters: int, name: str, x: tf.Tensor) -> tf.Tensor:
        # A 3x3 stride-2 conv; PyTorch pads 1 on each side, TensorFlow's "same" pads an
        # even size only after it. With torch_padding an even size is padded to odd (where
        # "same" is symmetric) and the extra output row/column dropped, as in the binary
        # ops. (ZeroPadding2D(1) + a "valid" conv computes the same in Keras, but LCE 0.16
        # converts that pair wrongly.)
        extra = [int(d is not None and d % 2 == 0) for d in x.shape[1:3]]
        pad = config.torch_padding and any(extra)
        if pad:
            x = tf.keras.layers.ZeroPadding2D(((0, extra[0]), (0, extra[1])), name=f"{name}_pad")(x)
        x = tf.keras.layers.Conv2D(
            filters, 3, strides=2, padding="same", use_bias=False, name=name
        )(x)
        if pad:
            x = tf.keras.layers.Cropping2D(((0, extra[0]), (0, extra[1])), name=f"{name}_crop")(x)
        return x

    if config.stem == "cifar":
        x = batch_norm("stem_bn")(x)
        x = tf.keras.layers.Conv2D(3 * C, 3, padding="same", use_bias=False, name="stem_conv")(x)
        s0 = s1 = tf.keras.layers.ReLU(name="stem_relu")(x)
        reduction_prev = False
    else:
        x = stem_conv(C // 2, "stem0_conv1", x)
        x = batch_norm("stem0_bn1")(x)
        x = tf.keras.layers.ReLU(name="stem0_relu")(x)
        x = stem_conv(C, "stem0_conv2", x)
        s0 = batch_norm("stem0_bn2")(x)
        x = tf.keras.layers.ReLU(name="stem1_relu")(s0)
        x = stem_conv(C, "stem1_conv", x)
        s1 = batch_norm("stem1_bn")(x)
        reduction_prev = True

    for plan in cell_schedule(
        config.cells, C, inter_cell_skip=config.inter_cell_skip, reduction_prev=reduction_prev
    ):
        cell = Cell(
            genotype,
            plan.channels,
            reduction=plan.reduction,
            reduction_prev=plan.reduction_prev,
            skip=plan.skip,
            pad_values=config.pad_values,
            layer_set=layer_set,
            float_kernels=float_kernels.get(plan.index, ()),
            torch_padding=config.torch_padding,
            name=plan.name,
        )
        s0, s1 = s1, cell([s0, s1])

    x = s1
    if include_top:
        x = global_pool(x)
        x = tf.keras.layers.Dense(num_classes, name="classifier")(x)
        x = tf.keras.layers.Activation("softmax", dtype="float32", name="predictions")(x)
    model_inputs = source_inputs(inputs) if input_tensor is not None else inputs
    return tf.keras.Model(model_inputs, x, name=name)
