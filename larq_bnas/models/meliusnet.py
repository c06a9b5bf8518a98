"""MeliusNet (Bethge et al., WACV 2021): binary networks that alternate a Dense Block,
which increases the feature capacity, with an Improvement Block, which increases its
quality.

``MeliusNetConfig`` holds every option of the family and ``meliusnet_network(config, ...)``
builds the Keras model with larq's ``QuantConv2D`` in the functional API:

- Dense Block: BN -> sign -> binary 3x3 conv (``growth`` filters) -> concatenated with the
  block input (c -> c + growth channels).
- Improvement Block: BN -> sign -> binary 3x3 conv (c -> growth) -> added to the last
  ``growth`` channels of its input only. Those channels are exactly the preceding Dense
  Block's new features, so it is built as ``concat(x, y + z)`` (x: the Dense Block's input,
  y: its features, z: the improvement): no slicing, and LCE converts both convolutions to
  ``LceBconv2d``.
- Naive Residual Block (the supplement's baseline): BN -> sign -> binary 3x3 conv c -> c,
  added to all c channels; the naive network alternates it with the Dense Block.
- Transition: BN -> MaxPool 2x2/2 -> ReLU -> [channel shuffle] -> full-precision 1x1 conv
  without bias (grouped for MeliusNet A, B and C).
- Stems (full precision): "plain" 7x7/2 conv 3 -> 64 -> BN -> ReLU -> MaxPool 3x3/2 (pad 1);
  "grouped" 3x3/2 conv 3 -> 32 -> BN -> ReLU -> 3x3 conv 32 -> 32 (4 groups) -> BN -> ReLU
  -> 3x3 conv 32 -> 64 (8 groups) -> BN -> ReLU -> MaxPool 3x3/2 (pad 1).
- Head: BN -> ReLU -> global average pool -> dense with bias -> softmax ``predictions``.

Binary convolutions are the authors' and larq-zoo's: inputs ``SteSign(clip_value=1.3)``,
kernels ``SteSign(clip_value=1.3)`` with ``WeightClip(1.3)``, no scaling factors, no bias.

``layout="lqz"`` reproduces larq-zoo's ``MeliusNet22`` layer for layer (zero padding, stem
ending with MaxPool 2x2/2 "same", "same"-padded transition pools), so its weights load
with ``load_larq_zoo_weights``. Layer names follow larq-zoo's (``stem_s0_conv``,
``section_0_block_0_dense_binconv``, ``section_0_transition_pw``, ``head_dense``, ...).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import larq as lq
import numpy as np
import tensorflow as tf

from larq_bnas._keras import batch_norm, global_pool, model_input, source_inputs
from larq_bnas.config import ConfigError, ModelConfig

_register = tf.keras.utils.register_keras_serializable(package="larq_bnas")

#: The clip value of the authors' sign (gradient cancelled where |x| > 1.3).
CLIP_VALUE = 1.3
_INIT = "glorot_normal"


@dataclass(frozen=True)
class MeliusNetConfig(ModelConfig):
    """Every option of a MeliusNet network.

    Attributes:
        blocks: MeliusNet blocks (Dense + Improvement, or Dense + Residual) per stage.
        transition_channels: output channels of the transition after each stage but the
            last (one fewer than ``blocks``); leave empty to derive them from
            ``reductions``.
        reductions: reduction factor r of each transition: ``round((c / r) / 32) * 32``
            channels out of c (used only when ``transition_channels`` is empty).
        growth: channels each Dense Block adds (and each Improvement Block improves).
        stem_channels: the stem's output channels (64 in the paper).
        transition_groups: groups of the full-precision 1x1 transition convolution
            (1 for 22/29/42/59; 4 for A and C; 2 for B).
        shuffle_groups: groups of the channel shuffle before the 1x1 transition conv
            (0: no shuffle; 16 for A, B and C).
        stem: "grouped" (three 3x3 convs, two of them grouped) or "plain" (one 7x7 conv).
        block: "melius" (Dense + Improvement Block) or "naive" (Dense + full-width
            Residual Block, the supplement's baseline).
        pad_values: padding value of the binary convs: 1.0 (one-padding, LCE-optimal) or
            0.0 (zero padding); none = the layout's (1.0 by default, 0.0 for "lqz").
        layout: "default" (the paper's) or "lqz" (larq-zoo's MeliusNet22: zero padding,
            stem ending with MaxPool 2x2/2, "same" transition pools).
    """

    blocks: tuple[int, ...] = (4, 5, 4, 4)
    transition_channels: tuple[int, ...] = (160, 224, 256)
    reductions: tuple[float, ...] = ()
    growth: int = 64
    stem_channels: int = 64
    transition_groups: int = 1
    shuffle_groups: int = 0
    stem: Literal["grouped", "plain"] = "grouped"
    block: Literal["melius", "naive"] = "melius"
    pad_values: Literal[1.0, 0.0] | None = None  # type: ignore[valid-type]  # checked by config
    layout: Literal["default", "lqz"] = "default"

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ConfigError(message)

        if not self.blocks or any(b < 1 for b in self.blocks):
            fail(f"blocks must be one positive count per stage, got {self.blocks}")
        if self.growth < 1:
            fail(f"growth must be positive, got {self.growth}")
        if self.stem_channels < 1:
            fail(f"stem_channels must be positive, got {self.stem_channels}")
        if self.stem == "grouped" and self.stem_channels % 8:
            fail(
                "stem_channels must be a multiple of 8 for the grouped stem (its convs have "
                f"4 and 8 groups), got {self.stem_channels}"
            )
        if self.transition_channels and self.reductions:
            fail(
                "give transition_channels or reductions, not both (clear one, e.g. "
                "--set transition_channels= reductions=2,2,2)"
            )
        n = len(self.blocks) - 1
        given = self.transition_channels or self.reductions
        if len(given) != n:
            which = "transition_channels" if self.transition_channels else "reductions"
            fail(
                f"{which} must have one value per transition ({n} for {len(self.blocks)} "
                f"stages), got {tuple(given)}"
            )
        if any(r <= 0 for r in self.reductions):
            fail(f"reductions must be positive, got {self.reductions}")
        if self.transition_groups < 1 or self.shuffle_groups < 0:
            fail("transition_groups must be >= 1 and shuffle_groups >= 0")
        for i, (c_in, c_out) in enumerate(self.transitions()):
            if c_out < 1:
                fail(
                    f"transition {i} has {c_out} output channels ({c_in} in); use a smaller "
                    "reduction"
                )
            if c_in % self.transition_groups or c_out % self.transition_groups:
                fail(
                    f"transition {i} ({c_in} -> {c_out} channels) is not divisible into "
                    f"transition_groups={self.transition_groups}"
                )
            if self.shuffle_groups and c_in % self.shuffle_groups:
                fail(
                    f"transition {i} input ({c_in} channels) is not divisible into "
                    f"shuffle_groups={self.shuffle_groups}"
                )

    @property
    def resolved_pad_values(self) -> float:
        """The binary convs' padding value (the layout's when ``pad_values`` is none)."""
        if self.pad_values is not None:
            return float(self.pad_values)
        return 0.0 if self.layout == "lqz" else 1.0

    def transitions(self) -> list[tuple[int, int]]:
        """(input, output) channels of each transition."""
        out = []
        c = self.stem_channels
        for i, n in enumerate(self.blocks[:-1]):
            c += n * self.growth
            if self.transition_channels:
                c_out = int(self.transition_channels[i])
            else:
                c_out = int(round((c / self.reductions[i]) / 32) * 32)
            out.append((c, c_out))
            c = c_out
        return out

    @property
    def final_channels(self) -> int:
        """Channels entering the head."""
        c = self.transitions()[-1][1] if len(self.blocks) > 1 else self.stem_channels
        return c + self.blocks[-1] * self.growth


# --- binary and full-precision building blocks ----------------------------------------


def _bn(x: tf.Tensor, name: str) -> tf.Tensor:
    return batch_norm(name)(x)


def binary_conv(x: tf.Tensor, filters: int, pad_values: float, name: str) -> tf.Tensor:
    """The authors' binary 3x3 convolution: sign(x) * sign(W), both with the gradient
    cancelled where |.| > 1.3, weights clipped to [-1.3, 1.3], no scaling, no bias."""
    return lq.layers.QuantConv2D(
        filters,
        3,
        padding="same",
        pad_values=pad_values,
        use_bias=False,
        input_quantizer=lq.quantizers.SteSign(clip_value=CLIP_VALUE),
        kernel_quantizer=lq.quantizers.SteSign(clip_value=CLIP_VALUE),
        kernel_constraint=lq.constraints.WeightClip(clip_value=CLIP_VALUE),
        kernel_initializer=_INIT,
        name=name,
    )(x)


def dense_block(x: tf.Tensor, growth: int, pad_values: float, name: str) -> tf.Tensor:
    """BN -> sign -> binary 3x3 conv to ``growth`` channels; returns only those features
    (the caller concatenates them with ``x``)."""
    y = _bn(x, f"{name}_bn")
    return binary_conv(y, growth, pad_values, f"{name}_binconv")


def improvement_block(x: tf.Tensor, features: tf.Tensor, pad_values: float, name: str) -> tf.Tensor:
    """Improvement Block on ``concat(x, features)``: BN -> sign -> binary 3x3 conv whose
    output is added to the last channels (``features``) only."""
    both = tf.keras.layers.Concatenate(name=f"{name}_input")([x, features])
    z = _bn(both, f"{name}_bn")
    z = binary_conv(z, int(features.shape[-1]), pad_values, f"{name}_binconv")
    improved = tf.keras.layers.Add(name=f"{name}_add")([features, z])
    return tf.keras.layers.Concatenate(name=f"{name}_concat")([x, improved])


def residual_block(x: tf.Tensor, pad_values: float, name: str) -> tf.Tensor:
    """The naive baseline's Residual Block: BN -> sign -> binary 3x3 conv c -> c, added to
    all c channels."""
    y = _bn(x, f"{name}_bn")
    y = binary_conv(y, int(x.shape[-1]), pad_values, f"{name}_binconv")
    return tf.keras.layers.Add(name=f"{name}_add")([x, y])


@_register
class ChannelShuffle(tf.keras.layers.Layer):
    """ShuffleNet's channel shuffle: reshape channels to (groups, c / groups), transpose,
    flatten. Used only where the spatial size is unknown when the model is built (the
    usual static case uses Keras Reshape/Permute layers, which need no registration)."""

    def __init__(self, groups: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.groups = int(groups)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        shape = tf.shape(inputs)
        c = inputs.shape[-1]
        x = tf.reshape(inputs, [shape[0], shape[1], shape[2], self.groups, c // self.groups])
        x = tf.transpose(x, [0, 1, 2, 4, 3])
        return tf.reshape(x, [shape[0], shape[1], shape[2], c])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "groups": self.groups}


def channel_shuffle(x: tf.Tensor, groups: int, name: str) -> tf.Tensor:
    """Channel shuffle with ``groups`` groups (output channel j*groups + i is input
    channel i*(c/groups) + j)."""
    h, w, c = x.shape[1], x.shape[2], int(x.shape[-1])
    if h is None or w is None:
        return ChannelShuffle(groups, name=name)(x)
    x = tf.keras.layers.Reshape((h, w, groups, c // groups), name=f"{name}_split")(x)
    x = tf.keras.layers.Permute((1, 2, 4, 3), name=f"{name}_transpose")(x)
    return tf.keras.layers.Reshape((h, w, c), name=f"{name}_merge")(x)


def transition(
    x: tf.Tensor, filters: int, groups: int, shuffle_groups: int, pool_padding: str, name: str
) -> tf.Tensor:
    """BN -> MaxPool 2x2/2 -> ReLU -> [channel shuffle] -> full-precision 1x1 conv."""
    x = _bn(x, f"{name}_bn")
    x = tf.keras.layers.MaxPool2D(2, strides=2, padding=pool_padding, name=f"{name}_maxpool")(x)
    x = tf.keras.layers.Activation("relu", name=f"{name}_relu")(x)
    if shuffle_groups:
        x = channel_shuffle(x, shuffle_groups, f"{name}_shuffle")
    return tf.keras.layers.Conv2D(
        filters, 1, groups=groups, use_bias=False, kernel_initializer=_INIT, name=f"{name}_pw"
    )(x)


def _conv(
    x: tf.Tensor, filters: int, kernel: int, name: str, strides: int = 1, groups: int = 1
) -> tf.Tensor:
    return tf.keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        groups=groups,
        use_bias=False,
        kernel_initializer=_INIT,
        name=name,
    )(x)


def _bn_relu(x: tf.Tensor, name: str) -> tf.Tensor:
    x = _bn(x, f"{name}_bn")
    return tf.keras.layers.Activation("relu", name=f"{name}_relu")(x)


def stem(x: tf.Tensor, config: MeliusNetConfig) -> tf.Tensor:
    """The full-precision stem (to 1/4 resolution)."""
    c = config.stem_channels
    if config.stem == "plain":
        x = _conv(x, c, 7, "stem_conv", strides=2)
        x = _bn_relu(x, "stem")
    else:
        x = _conv(x, c // 2, 3, "stem_s0_conv", strides=2)
        x = _bn_relu(x, "stem_s0")
        x = _conv(x, c // 2, 3, "stem_s1_groupconv", groups=4)
        x = _bn_relu(x, "stem_s1")
        x = _conv(x, c, 3, "stem_s2_groupconv", groups=8)
        x = _bn_relu(x, "stem_s2")
    if config.layout == "lqz":
        return tf.keras.layers.MaxPool2D(2, strides=2, padding="same", name="stem_pool")(x)
    # MaxPool 3x3/2 with padding 1 on both sides; the input is >= 0 (after ReLU), so
    # zero padding equals the -inf padding of max pooling.
    x = tf.keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    return tf.keras.layers.MaxPool2D(3, strides=2, padding="valid", name="stem_pool")(x)


def meliusnet_network(
    config: MeliusNetConfig,
    *,
    input_shape: Sequence[int | None] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    num_classes: int = 1000,
    name: str = "meliusnet",
) -> tf.keras.Model:
    """Build the MeliusNet network described by ``config`` as a Keras model."""
    inputs, x = model_input(input_shape, input_tensor, (224, 224, 3))
    pad_values = config.resolved_pad_values
    pool_padding = "same" if config.layout == "lqz" else "valid"
    transitions = config.transitions()

    x = stem(x, config)
    for i, n in enumerate(config.blocks):
        for j in range(n):
            prefix = f"section_{i}_block_{j}"
            y = dense_block(x, config.growth, pad_values, f"{prefix}_dense")
            if config.block == "melius":
                x = improvement_block(x, y, pad_values, f"{prefix}_improve")
            else:
                x = tf.keras.layers.Concatenate(name=f"{prefix}_dense_concat")([x, y])
                x = residual_block(x, pad_values, f"{prefix}_residual")
        if i < len(transitions):
            x = transition(
                x,
                transitions[i][1],
                config.transition_groups,
                config.shuffle_groups,
                pool_padding,
                f"section_{i}_transition",
            )

    x = _bn_relu(x, "head")
    if include_top:
        x = global_pool(x, name="head_globalpool")
        x = tf.keras.layers.Dense(num_classes, kernel_initializer=_INIT, name="head_dense")(x)
        x = tf.keras.layers.Activation("softmax", dtype="float32", name="predictions")(x)
    model_inputs = source_inputs(inputs) if input_tensor is not None else inputs
    return tf.keras.Model(model_inputs, x, name=name)


# --- larq-zoo weights -----------------------------------------------------------------

_GROUP_PART = re.compile(r"^(?P<base>.+_groupconv)_conv(?P<index>\d+)$")


def larq_zoo_weight_mapping(source: tf.keras.Model) -> dict[str, list[np.ndarray]]:
    """Our layer name -> weights, from a larq-zoo MeliusNet model.

    Every larq-zoo layer with weights has a layer of the same name in a ``layout="lqz"``
    MeliusNet, except the grouped stem convs: larq-zoo splits the input and runs one
    ``Conv2D`` per group (``stem_s1_groupconv_conv0`` ... ``_conv3``); ours is one grouped
    ``Conv2D`` (``stem_s1_groupconv``) whose kernel is theirs concatenated along the
    output channels in group order. ``head_softmax`` is our ``predictions``.
    """
    mapping: dict[str, list[np.ndarray]] = {}
    parts: dict[str, dict[int, np.ndarray]] = {}
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        match = _GROUP_PART.match(layer.name)
        if match:
            parts.setdefault(match["base"], {})[int(match["index"])] = weights[0]
        else:
            mapping[layer.name] = weights
    for base, kernels in parts.items():
        ordered = [kernels[i] for i in sorted(kernels)]
        mapping[base] = [np.concatenate(ordered, axis=-1)]
    return mapping


def load_larq_zoo_weights(model: tf.keras.Model, source: tf.keras.Model | str) -> None:
    """Copy the weights of larq-zoo's MeliusNet22 into ``model`` (a ``layout="lqz"``
    MeliusNet22 of the same input size, ``include_top`` and classes).

    Args:
        model: our model.
        source: a larq-zoo MeliusNet Keras model, or the path of a larq-zoo MeliusNet22
            weights file (for example its published ``meliusnet22_weights.h5``).

    Raises:
        ValueError: a layer is missing on either side or a weight's shape differs.
    """
    if isinstance(source, str | os.PathLike):
        import larq_zoo

        include_top = model.layers[-1].name == "predictions"
        source = larq_zoo.literature.MeliusNet22(
            weights=os.fspath(source),
            input_shape=tuple(model.input_shape[1:]),
            include_top=include_top,
            num_classes=int(model.output_shape[-1]) if include_top else 1000,
        )
    mapping = larq_zoo_weight_mapping(source)
    ours = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(mapping) - set(ours))
    extra = sorted(set(ours) - set(mapping))
    if missing or extra:
        raise ValueError(
            "The models' layers differ (build ours with layout='lqz' and the same "
            f"blocks, include_top and classes): only in larq-zoo's: {missing[:5]}, only in "
            f"ours: {extra[:5]}"
        )
    for name, weights in mapping.items():
        expected = [tuple(w.shape) for w in ours[name].weights]
        if expected != [w.shape for w in weights]:
            raise ValueError(
                f"Layer {name!r}: larq-zoo's weights have shapes "
                f"{[w.shape for w in weights]}, ours {expected}"
            )
    for name, weights in mapping.items():
        ours[name].set_weights(weights)


def config_fields() -> list[str]:
    """The names of ``MeliusNetConfig``'s options."""
    return [f.name for f in dataclasses.fields(MeliusNetConfig)]


__all__ = [
    "CLIP_VALUE",
    "ChannelShuffle",
    "MeliusNetConfig",
    "binary_conv",
    "channel_shuffle",
    "config_fields",
    "dense_block",
    "improvement_block",
    "larq_zoo_weight_mapping",
    "load_larq_zoo_weights",
    "meliusnet_network",
    "residual_block",
    "stem",
    "transition",
]
