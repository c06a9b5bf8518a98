"""The BNAS layer set: each candidate operation of a cell edge as a Keras layer.

Every operation is a registered, serializable Keras layer built from larq's quantized
layers, so models that use them save and load as ``.h5`` and SavedModel and convert with
Larq Compute Engine. The binary convolutions follow the BNAS reference order::

    BatchNorm -> sign (ste_sign) -> binary conv, sign(W) * mean|W| per output channel -> ReLU

Padding defaults to one-padding (``pad_values=1.0``), which LCE accelerates on every
target; ``pad_values=0.0`` gives the reference's zero padding.

Names (``OPS``) are the paper's; ``make_op(name, ...)`` builds one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import larq as lq
import tensorflow as tf

from larq_bnas._keras import batch_norm

#: The searched layer set, in the reference implementation's order (paper Table 3).
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "bin_dil_conv_3x3",
    "bin_dil_conv_5x5",
    "bin_conv_3x3",
    "bin_conv_5x5",
)
#: Operations that exist only for the ablation "BNAS-A with separable convs" (Table 11).
ABLATION_PRIMITIVES: tuple[str, ...] = ("sep_conv_3x3", "sep_conv_5x5")
#: Every operation name this module can build.
ALL_PRIMITIVES: tuple[str, ...] = PRIMITIVES + ABLATION_PRIMITIVES
#: The name of the Zeroise operation.
ZEROISE = "none"

_register = tf.keras.utils.register_keras_serializable(package="larq_bnas")

#: Why a ``BinaryConv(binary_kernel=False)`` has a float kernel (shown by the
#: acceleration report).
KEPT_FLOAT_REASON = (
    "kept float by the reference's BinOp (binary input, float kernel: the BNAS reference "
    "does not binarize this conv, in its published weights too)"
)


def binary_kernel_quantizer() -> lq.quantizers.Quantizer:
    """sign(W) scaled per output channel by mean |W| (XNOR-Net "sign + scale").

    Gradients pass straight through without clipping, as in the reference.
    """
    return lq.quantizers.MagnitudeAwareSign(clip_value=None)


def binary_input_quantizer() -> lq.quantizers.Quantizer:
    """sign(x) with a straight-through gradient zeroed where |x| >= 1; sign(0) = +1."""
    return lq.quantizers.SteSign(clip_value=1.0)


@contextmanager
def _unclipped_kernels() -> Iterator[None]:
    """Silence larq's "starved weights" warning: our kernel gradients are not clipped
    (``clip_value=None``), so they cannot starve without a kernel constraint."""
    logger = logging.getLogger("larq.layers_base")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def quant_conv(
    filters: int,
    kernel_size: int,
    *,
    strides: int = 1,
    dilation_rate: int = 1,
    pad_values: float = 1.0,
    groups: int = 1,
    binary_kernel: bool = True,
    name: str | None = None,
) -> lq.layers.QuantConv2D:
    """A binary (binary input, binary weight) convolution without bias.

    ``binary_kernel=False`` keeps the kernel float (binary input only), as the BNAS
    reference's ``BinOp`` does for the convolutions it leaves out of its binarization.
    """
    padding = "valid" if kernel_size == 1 and strides == 1 else "same"
    with _unclipped_kernels():
        return lq.layers.QuantConv2D(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            padding=padding,
            pad_values=pad_values if padding == "same" else 0.0,
            groups=groups,
            input_quantizer=binary_input_quantizer(),
            kernel_quantizer=binary_kernel_quantizer() if binary_kernel else None,
            kernel_initializer="glorot_normal",
            use_bias=False,
            name=name,
        )


def _odd_padded(inputs: tf.Tensor) -> tuple[tf.Tensor, int, int]:
    """Pad an even height/width by one row/column at the bottom/right.

    TensorFlow's "same" padding of a stride-2 window on an even size pads only after the
    input (reading rows 2o .. 2o+k-1); PyTorch pads (k-1)/2 on both sides (rows 2o-1 ..).
    On an odd size both agree, so padding an even size to odd, applying "same" and
    dropping the extra output row/column gives PyTorch's windows exactly; the appended
    row only reaches the dropped output. Needs static spatial sizes.
    """
    h, w = inputs.shape[1], inputs.shape[2]
    if h is None or w is None:
        raise ValueError("torch_padding needs a static input height and width")
    extra_h, extra_w = int(h % 2 == 0), int(w % 2 == 0)
    if extra_h or extra_w:
        inputs = tf.pad(inputs, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]])
    return inputs, extra_h, extra_w


def _crop(x: tf.Tensor, extra_h: int, extra_w: int) -> tf.Tensor:
    if extra_h or extra_w:
        x = x[:, : x.shape[1] - extra_h, : x.shape[2] - extra_w, :]
    return x


@_register
class BinaryConv(tf.keras.layers.Layer):
    """BatchNorm -> sign -> binary convolution (per-channel weight scale) -> ReLU.

    Args:
        filters: output channels.
        kernel_size: 1, 3 or 5.
        strides: 1, or 2 in reduction cells.
        dilation_rate: 1, or 2 for the dilated convolutions.
        pad_values: 1.0 (LCE-optimal one-padding) or 0.0 (the reference's zero padding).
        affine: whether the leading BatchNorm learns a scale and offset (False in the
            search supernet).
        binary_kernel: False keeps the kernel float (the input is still binarized), as
            the reference's ``BinOp`` does for the convolutions it does not binarize.
        torch_padding: stride-2 windows padded symmetrically as PyTorch does (TensorFlow
            pads an even size only after it); for models imported from PyTorch.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        dilation_rate: int = 1,
        pad_values: float = 1.0,
        affine: bool = True,
        binary_kernel: bool = True,
        torch_padding: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.dilation_rate = int(dilation_rate)
        self.pad_values = float(pad_values)
        self.affine = bool(affine)
        self.binary_kernel = bool(binary_kernel)
        self.torch_padding = bool(torch_padding)
        self.bn = batch_norm("bn", affine=affine)
        # A stride-2, dilation-2 convolution reads only even rows and columns, so it equals
        # a plain convolution on the input subsampled by 2 (Keras has no strided dilated
        # conv). Subsampling first also keeps the work and the cost count exact.
        self.subsample = self.strides > 1 and self.dilation_rate > 1
        self.conv = quant_conv(
            self.filters,
            self.kernel_size,
            strides=1 if self.subsample else self.strides,
            dilation_rate=1 if self.subsample else self.dilation_rate,
            pad_values=self.pad_values,
            binary_kernel=self.binary_kernel,
            name="conv",
        )
        if not self.binary_kernel:
            # Read by the acceleration report (larq_bnas.converters.acceleration).
            self.conv.kept_float_reason = KEPT_FLOAT_REASON

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.subsample:
            inputs = inputs[:, :: self.strides, :: self.strides, :]
        extra_h = extra_w = 0
        if self.torch_padding and self.strides > 1 and not self.subsample:
            inputs, extra_h, extra_w = _odd_padded(inputs)
        x = self.bn(inputs, training=training)
        x = _crop(self.conv(x), extra_h, extra_w)
        return tf.nn.relu(x)

    def get_config(self) -> dict[str, Any]:
        config = {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "dilation_rate": self.dilation_rate,
            "pad_values": self.pad_values,
            "affine": self.affine,
        }
        # Written only when set, so models saved before these options existed compare equal.
        if not self.binary_kernel:
            config["binary_kernel"] = False
        if self.torch_padding:
            config["torch_padding"] = True
        return config


@_register
class BinarySepConv(tf.keras.layers.Layer):
    """Binary separable convolution, for the ablation only (it fails in the binary domain).

    BatchNorm -> sign -> binary depthwise kxk -> BatchNorm -> sign -> binary 1x1 -> ReLU.
    LCE has no binary depthwise kernel, so this op stays float after conversion.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        pad_values: float = 1.0,
        affine: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.pad_values = float(pad_values)
        self.affine = bool(affine)
        self.bn1 = batch_norm("bn1", affine=affine)
        with _unclipped_kernels():
            self.depthwise = lq.layers.QuantDepthwiseConv2D(
                self.kernel_size,
                strides=self.strides,
                padding="same",
                pad_values=self.pad_values,
                input_quantizer=binary_input_quantizer(),
                depthwise_quantizer=binary_kernel_quantizer(),
                use_bias=False,
                name="depthwise",
            )
        self.bn2 = batch_norm("bn2", affine=affine)
        self.pointwise = quant_conv(self.filters, 1, name="pointwise")

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = self.depthwise(self.bn1(inputs, training=training))
        x = self.pointwise(self.bn2(x, training=training))
        return tf.nn.relu(x)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "pad_values": self.pad_values,
            "affine": self.affine,
        }


@_register
class Pool(tf.keras.layers.Layer):
    """3x3 max or average pooling (padding 1); average pooling excludes the padding.

    Args:
        mode: "max" or "avg".
        strides: 1 or 2.
        bn_after: follow the pool by a non-affine BatchNorm (the search supernet does).
        torch_padding: stride-2 windows padded symmetrically as PyTorch does.
    """

    def __init__(
        self,
        mode: str,
        strides: int = 1,
        bn_after: bool = False,
        torch_padding: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.torch_padding = bool(torch_padding)
        if mode not in ("max", "avg"):
            raise ValueError(f"Pool mode must be 'max' or 'avg', got {mode!r}")
        self.mode = mode
        self.strides = int(strides)
        self.bn_after = bool(bn_after)
        pool_cls = tf.keras.layers.MaxPool2D if mode == "max" else tf.keras.layers.AveragePooling2D
        # TensorFlow's "same" average pooling divides by the number of real cells.
        self.pool = pool_cls(3, strides=self.strides, padding="same", name="pool")
        self.bn = batch_norm("bn", affine=False) if self.bn_after else None

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.torch_padding and self.strides > 1:
            padded, extra_h, extra_w = _odd_padded(inputs)
            x = _crop(self.pool(padded), extra_h, extra_w)
        else:
            x = self.pool(inputs)
        if self.bn is not None:
            x = self.bn(x, training=training)
        return x

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "mode": self.mode,
            "strides": self.strides,
            "bn_after": self.bn_after,
            **({"torch_padding": True} if self.torch_padding else {}),
        }


@_register
class Zeroise(tf.keras.layers.Layer):
    """The Zeroise operation: zeros of the output shape, no parameters and no cost."""

    def __init__(self, strides: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strides = int(strides)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = inputs[:, :: self.strides, :: self.strides, :] if self.strides > 1 else inputs
        # Multiplying (rather than tf.zeros_like) keeps the zeros out of a converted
        # flatbuffer: constant-folded zero tensors cost file size for nothing.
        return x * 0.0

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "strides": self.strides}


OpFactory = Callable[..., tf.keras.layers.Layer]


def _conv(kernel_size: int, dilation: int) -> OpFactory:
    def build(
        channels: int, strides: int, pad_values: float, affine: bool, name: str, **options: Any
    ):
        return BinaryConv(
            channels,
            kernel_size,
            strides=strides,
            dilation_rate=dilation,
            pad_values=pad_values,
            affine=affine,
            name=name,
            **options,
        )

    return build


def _sep(kernel_size: int) -> OpFactory:
    def build(
        channels: int, strides: int, pad_values: float, affine: bool, name: str, **options: Any
    ):
        return BinarySepConv(
            channels,
            kernel_size,
            strides=strides,
            pad_values=pad_values,
            affine=affine,
            name=name,
        )

    return build


def _pool(mode: str) -> OpFactory:
    def build(
        channels: int, strides: int, pad_values: float, affine: bool, name: str, **options: Any
    ):
        # The supernet (affine=False) follows pools by a non-affine BatchNorm.
        return Pool(
            mode,
            strides=strides,
            bn_after=not affine,
            torch_padding=options.get("torch_padding", False),
            name=name,
        )

    return build


def _zero(channels: int, strides: int, pad_values: float, affine: bool, name: str, **options: Any):
    return Zeroise(strides=strides, name=name)


#: name -> factory(channels, strides, pad_values, affine, name, **options) -> Keras layer;
#: options: ``binary_kernel`` (convs) and ``torch_padding`` (convs and pools).
OPS: dict[str, OpFactory] = {
    "none": _zero,
    "max_pool_3x3": _pool("max"),
    "avg_pool_3x3": _pool("avg"),
    "bin_dil_conv_3x3": _conv(3, 2),
    "bin_dil_conv_5x5": _conv(5, 2),
    "bin_conv_3x3": _conv(3, 1),
    "bin_conv_5x5": _conv(5, 1),
    "sep_conv_3x3": _sep(3),
    "sep_conv_5x5": _sep(5),
}


def check_op_name(name: str, layer_set: tuple[str, ...] | list[str] = ALL_PRIMITIVES) -> str:
    """Return ``name`` if it is in ``layer_set``; otherwise raise a ValueError naming both."""
    if name not in layer_set:
        raise ValueError(
            f"Unknown operation {name!r}; valid operations are: {', '.join(layer_set)}"
        )
    return name


def make_op(
    name: str,
    channels: int,
    *,
    strides: int = 1,
    pad_values: float = 1.0,
    affine: bool = True,
    layer_name: str | None = None,
    **options: Any,
) -> tf.keras.layers.Layer:
    """Build the operation ``name`` mapping ``channels`` to ``channels`` channels.

    Args:
        name: one of ``ALL_PRIMITIVES``.
        channels: the cell's channel count C (input and output of the op).
        strides: 2 on reduction-cell edges from the cell inputs, else 1.
        pad_values: 1.0 (one-padding, LCE-optimal) or 0.0 (zero padding).
        affine: False gives the search supernet's non-affine BatchNorms.
        layer_name: the Keras name of the layer.
        **options: ``binary_kernel=False`` (a conv keeps float kernels) and
            ``torch_padding=True`` (PyTorch's symmetric stride-2 padding); ops without
            them ignore them.
    """
    check_op_name(name)
    return OPS[name](channels, strides, pad_values, affine, layer_name or name, **options)
