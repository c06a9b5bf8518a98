"""Small Keras helpers shared by the network builders (input handling, BatchNorm, the head)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

#: BatchNorm settings of every network here: PyTorch's defaults (momentum 0.1 there is
#: 0.9 here; eps 1e-5), as the BNAS reference and MeliusNet train with them.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(name: str, *, affine: bool = True, **kwargs: object) -> tf.keras.layers.Layer:
    """A ``BatchNormalization`` layer with this library's momentum and epsilon;
    ``affine=False`` drops its scale and offset."""
    return tf.keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, center=affine, scale=affine, name=name, **kwargs
    )


def model_input(
    input_shape: Sequence[int | None] | None,
    input_tensor: tf.Tensor | None,
    default_shape: Sequence[int],
) -> tuple[tf.Tensor, tf.Tensor]:
    """Return ``(model_inputs, x)`` the lqz way: an Input layer of ``input_shape`` (or the
    default), or the given ``input_tensor`` (a Keras tensor is used as it is)."""
    shape = tuple(input_shape) if input_shape is not None else tuple(default_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {shape}")
    if input_tensor is None:
        inputs = tf.keras.layers.Input(shape=shape)
        return inputs, inputs
    if tf.keras.backend.is_keras_tensor(input_tensor):
        return input_tensor, input_tensor
    inputs = tf.keras.layers.Input(tensor=input_tensor, shape=shape)
    return inputs, inputs


def source_inputs(inputs: tf.Tensor) -> list[tf.Tensor] | tf.Tensor:
    """The model inputs that ``inputs`` was derived from (for a given ``input_tensor``)."""
    try:
        from tf_keras.src.utils.layer_utils import get_source_inputs
    except ImportError:  # pragma: no cover
        get_source_inputs = tf.keras.utils.get_source_inputs
    return get_source_inputs(inputs)


def global_pool(x: tf.Tensor, name: str = "global_pool") -> tf.Tensor:
    """Global average pooling as AveragePooling2D + Flatten where the size is static
    (LCE runs that much faster than GlobalAveragePooling2D), else GlobalAveragePooling2D."""
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        return tf.keras.layers.GlobalAveragePooling2D(name=name)(x)
    x = tf.keras.layers.AveragePooling2D(pool_size=(h, w), name=name)(x)
    return tf.keras.layers.Flatten(name=f"{name}_flatten")(x)
