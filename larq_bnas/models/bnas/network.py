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

from larq_bnas._keras import global_pool, model_input, source_inputs
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
    """

    cells: int = 20
    channels: int = 36
    genotype: str | Genotype = "bnas_cifar"
    stem: Literal["cifar", "imagenet"] = "cifar"
    inter_cell_skip: bool = True
    pad_values: Literal[1.0, 0.0] = 1.0
    layer_set: tuple[str, ...] = ()

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

    def resolved_genotype(self) -> Genotype:
        return resolve_genotype(self.genotype)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if isinstance(self.genotype, Genotype):
            d["genotype"] = self.genotype.name or self.genotype.to_dict()
        return d

    @property
    def reduction_cells(self) -> tuple[int, int]:
        return reduction_cells(self.cells)


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

    if config.stem == "cifar":
        x = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="stem_bn")(x)
        x = tf.keras.layers.Conv2D(3 * C, 3, padding="same", use_bias=False, name="stem_conv")(x)
        s0 = s1 = tf.keras.layers.ReLU(name="stem_relu")(x)
        reduction_prev = False
    else:
        x = tf.keras.layers.Conv2D(
            C // 2, 3, strides=2, padding="same", use_bias=False, name="stem0_conv1"
        )(x)
        x = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="stem0_bn1")(x)
        x = tf.keras.layers.ReLU(name="stem0_relu")(x)
        x = tf.keras.layers.Conv2D(
            C, 3, strides=2, padding="same", use_bias=False, name="stem0_conv2"
        )(x)
        s0 = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="stem0_bn2")(x)
        x = tf.keras.layers.ReLU(name="stem1_relu")(s0)
        x = tf.keras.layers.Conv2D(
            C, 3, strides=2, padding="same", use_bias=False, name="stem1_conv"
        )(x)
        s1 = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="stem1_bn")(x)
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
