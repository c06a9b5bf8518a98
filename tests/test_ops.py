import numpy as np
import pytest
import tensorflow as tf

from larq_bnas.models.bnas import ops


def _x(shape=(2, 8, 8, 4), seed=0):
    return tf.constant(np.random.RandomState(seed).randn(*shape).astype("float32"))


@pytest.mark.parametrize("name", ops.ALL_PRIMITIVES)
@pytest.mark.parametrize("strides", [1, 2])
def test_every_op_keeps_channels_and_applies_stride(name, strides):
    layer = ops.make_op(name, 4, strides=strides)
    y = layer(_x(), training=False)
    assert y.shape == (2, 8 // strides, 8 // strides, 4)


@pytest.mark.parametrize("name", [n for n in ops.ALL_PRIMITIVES if "conv" in n])
def test_binary_convs_end_in_relu(name):
    y = ops.make_op(name, 4)(_x(), training=True)
    assert float(tf.reduce_min(y)) >= 0.0
    assert float(tf.reduce_max(y)) > 0.0


def test_zeroise_outputs_zeros_of_the_reduced_shape():
    layer = ops.make_op("none", 4, strides=2)
    y = layer(_x())
    assert y.shape == (2, 4, 4, 4)
    assert not np.any(y.numpy())
    assert layer.count_params() == 0


def _numpy_binary_conv3x3(x, kernel, pad_value):
    """BN at initial statistics, sign (0 -> +1), pad, conv with sign(W) * mean|W|, ReLU."""
    xb = np.where(x / np.sqrt(1 + 1e-5) >= 0, 1.0, -1.0)
    xp = np.pad(xb, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=pad_value)
    scale = np.mean(np.abs(kernel), axis=(0, 1, 2))
    wb = np.where(kernel >= 0, 1.0, -1.0) * scale
    n, h, w, _ = x.shape
    out = np.zeros((n, h, w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            patch = xp[:, i : i + 3, j : j + 3, :]
            out[:, i, j, :] = np.tensordot(patch, wb, axes=([1, 2, 3], [0, 1, 2]))
    return np.maximum(out, 0)


@pytest.mark.parametrize("pad_value", [1.0, 0.0])
def test_binary_conv_matches_a_numpy_reference(pad_value):
    layer = ops.BinaryConv(5, 3, pad_values=pad_value)
    x = _x((2, 6, 6, 3), seed=1)
    y = layer(x, training=False).numpy()
    kernel = layer.conv.kernel.numpy()
    np.testing.assert_allclose(y, _numpy_binary_conv3x3(x.numpy(), kernel, pad_value), atol=1e-4)


def test_one_padding_is_the_default():
    assert ops.make_op("bin_conv_3x3", 4).conv.pad_values == 1.0
    assert ops.make_op("bin_dil_conv_5x5", 4).conv.dilation_rate == (2, 2)


def test_average_pool_excludes_padding():
    x = tf.ones((1, 4, 4, 1))
    y = ops.make_op("avg_pool_3x3", 1)(x).numpy()
    np.testing.assert_allclose(y, np.ones_like(y))  # corners would be 4/9 with padding counted


def test_supernet_flavour_is_non_affine():
    conv = ops.make_op("bin_conv_3x3", 4, affine=False)
    conv(_x())
    assert not conv.bn.trainable_weights
    pool = ops.make_op("max_pool_3x3", 4, affine=False)
    assert pool.bn is not None and not pool.bn.scale


@pytest.mark.parametrize("name", ops.ALL_PRIMITIVES)
def test_ops_serialize(name):
    layer = ops.make_op(name, 4, strides=2, pad_values=0.0)
    x = _x()
    y = layer(x, training=False)
    config = tf.keras.layers.serialize(layer)
    clone = tf.keras.layers.deserialize(config)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x, training=False), y, atol=1e-6)


def test_unknown_op_lists_valid_ones():
    with pytest.raises(ValueError, match="Unknown operation 'conv_7x7'.*bin_conv_3x3"):
        ops.make_op("conv_7x7", 4)
    with pytest.raises(ValueError, match="mode must be"):
        ops.Pool("min")


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_strided_dilated_conv_equals_dilated_conv_sampled_at_stride(kernel_size):
    x = _x((1, 9, 9, 3), seed=2)
    strided = ops.BinaryConv(4, kernel_size, strides=2, dilation_rate=2, pad_values=0.0)
    dense = ops.BinaryConv(4, kernel_size, strides=1, dilation_rate=2, pad_values=0.0)
    y = strided(x, training=False)
    dense(x, training=False)
    dense.set_weights(strided.get_weights())
    expected = dense(x, training=False)[:, ::2, ::2, :]
    np.testing.assert_allclose(y, expected, atol=1e-5)
