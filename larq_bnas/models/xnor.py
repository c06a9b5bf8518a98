"""Hand-crafted CIFAR backbones binarized the XNOR-Net way: the BNAS paper's baselines.

BNAS (Table 6, Figure 1) compares its searched networks with hand-crafted architectures
(ResNet18, ResNet34, WRN40) binarized by XNOR-Net. Here every convolution inside the
residual stages is binary as XNOR-Net makes it:

    BatchNorm -> sign(x) (straight-through, zeroed where |x| >= 1)
              -> binary conv, sign(W) scaled per output channel by mean |W| -> ReLU

(``larq_bnas.models.bnas.ops.BinaryConv``, the same binarization as the BNAS layer set), and only the
first convolution and the last dense layer stay full precision, as XNOR-Net keeps them.

- Residual block (pre-activation, two 3x3 binary convs): ``out = conv2(conv1(x)) + s(x)``
  where the shortcut ``s`` is the identity, or, where the shape changes, BatchNorm ->
  binary 1x1 stride-2 conv (``binary_shortcut=False`` makes that conv full precision).
- CIFAR stem: full-precision 3x3 conv (3 -> ``stem_channels``) -> BatchNorm -> ReLU.
- Head: BatchNorm -> ReLU -> global average pool -> full-precision dense with bias ->
  softmax ``predictions``.
- Stages: the first at full resolution, each further one halves it.

ResNet18/34 are the CIFAR variants (64-128-256-512 channels, 2-2-2-2 and 3-4-6-3 blocks).
WRN40 is a wide ResNet of depth 40 ((40 - 4) / 6 = 6 blocks per stage, three stages of
16k, 32k, 64k channels, 16-channel stem) with widening factor k = 4: our choice, because
our reference facts do not state the width BNAS used. The BNAS paper's accuracies and
FLOPs of these baselines are not in our reference facts, so the specs carry none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import tensorflow as tf

from larq_bnas._keras import batch_norm, global_pool, model_input, source_inputs
from larq_bnas.config import ModelConfig
from larq_bnas.models.bnas.ops import BinaryConv, quant_conv


@dataclass(frozen=True)
class XNORNetConfig(ModelConfig):
    """Every option of an XNOR-Net-binarized residual CIFAR backbone.

    Attributes:
        blocks: residual blocks per stage.
        stage_channels: output channels of each stage (one per entry of ``blocks``).
        stem_channels: output channels of the full-precision stem convolution.
        width: multiplier applied to ``stem_channels`` and ``stage_channels`` (rounded,
            at least 4), e.g. 0.25 for quick experiments.
        binary_shortcut: whether the 1x1 stride-2 shortcut convolutions are binary (as
            every conv but the first is in XNOR-Net) or full precision.
        pad_values: 1.0 (one-padding, LCE-optimal) or 0.0 (zero padding).
    """

    blocks: tuple[int, ...] = (2, 2, 2, 2)
    stage_channels: tuple[int, ...] = (64, 128, 256, 512)
    stem_channels: int = 64
    width: float = 1.0
    binary_shortcut: bool = True
    pad_values: Literal[1.0, 0.0] = 1.0  # type: ignore[valid-type]  # floats: checked by config

    def __post_init__(self) -> None:
        if not self.blocks or any(b < 1 for b in self.blocks):
            raise ValueError(f"blocks must be positive integers, got {self.blocks}")
        if len(self.stage_channels) != len(self.blocks):
            raise ValueError(
                f"stage_channels needs one entry per stage ({len(self.blocks)}), got "
                f"{self.stage_channels}"
            )
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")

    def scaled(self, channels: int) -> int:
        return max(4, int(round(channels * self.width)))


def _shortcut(
    x: tf.Tensor, filters: int, strides: int, config: XNORNetConfig, name: str
) -> tf.Tensor:
    if strides == 1 and int(x.shape[-1]) == filters:
        return x
    x = batch_norm(f"{name}_bn")(x)
    if config.binary_shortcut:
        conv = quant_conv(
            filters, 1, strides=strides, pad_values=config.pad_values, name=f"{name}_conv"
        )
    else:
        conv = tf.keras.layers.Conv2D(
            filters, 1, strides=strides, use_bias=False, name=f"{name}_conv"
        )
    return conv(x)


def _block(x: tf.Tensor, filters: int, strides: int, config: XNORNetConfig, name: str) -> tf.Tensor:
    y = BinaryConv(filters, 3, strides=strides, pad_values=config.pad_values, name=f"{name}_conv1")(
        x
    )
    y = BinaryConv(filters, 3, pad_values=config.pad_values, name=f"{name}_conv2")(y)
    s = _shortcut(x, filters, strides, config, f"{name}_shortcut")
    return tf.keras.layers.Add(name=f"{name}_add")([y, s])


def xnor_resnet(
    config: XNORNetConfig,
    *,
    input_shape: Sequence[int | None] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    num_classes: int = 10,
    name: str = "xnor_resnet",
) -> tf.keras.Model:
    """Build the XNOR-Net-binarized residual network described by ``config``."""
    inputs, x = model_input(input_shape, input_tensor, (32, 32, 3))
    x = tf.keras.layers.Conv2D(
        config.scaled(config.stem_channels), 3, padding="same", use_bias=False, name="stem_conv"
    )(x)
    x = batch_norm("stem_bn")(x)
    x = tf.keras.layers.ReLU(name="stem_relu")(x)
    for stage, (blocks, channels) in enumerate(
        zip(config.blocks, config.stage_channels, strict=True)
    ):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _block(x, config.scaled(channels), strides, config, f"stage{stage}_block{block}")
    if include_top:
        x = batch_norm("head_bn")(x)
        x = tf.keras.layers.ReLU(name="head_relu")(x)
        x = global_pool(x)
        x = tf.keras.layers.Dense(num_classes, name="classifier")(x)
        x = tf.keras.layers.Activation("softmax", dtype="float32", name="predictions")(x)
    model_inputs = source_inputs(inputs) if input_tensor is not None else inputs
    return tf.keras.Model(model_inputs, x, name=name)


__all__ = ["XNORNetConfig", "xnor_resnet"]
