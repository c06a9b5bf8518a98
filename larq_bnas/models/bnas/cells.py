"""The BNAS cell template: a genotype's cell as one Keras layer.

A cell takes ``[s0, s1]`` (the outputs of cells k-2 and k-1), preprocesses each with a
binary convolution to C channels (1x1, or 3x3 stride 2 for s0 when cell k-1 reduced),
computes 4 nodes as the sum of two operations each, concatenates them, and adds the
inter-cell skip connection (the paper's template change):

- ``skip="none"``: output = concat (cell 0, and the "No Skip" ablation);
- ``skip="identity"``: output = concat + s1 (normal cells after cell 0);
- ``skip="projection"``: output = concat + P(s1) with P = BatchNorm -> full-precision
  2x2 stride-2 conv with bias (reduction cells).

Drop path (training only) drops each operation output per sample with probability
``drop_path_rate``, a non-trainable variable of the cell that ``DropPathSchedule`` ramps.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from larq_bnas._keras import batch_norm
from larq_bnas.models.bnas.genotypes import Genotype
from larq_bnas.models.bnas.ops import PRIMITIVES, BinaryConv, Zeroise, check_op_name, make_op

SKIP_KINDS = ("none", "identity", "projection")


def edge_layer_names(pairs: Any) -> list[str]:
    """The Keras names of a cell's edge operations, in genotype order."""
    return [f"node{i // 2 + 2}_{i % 2}_{op}" for i, (op, _) in enumerate(pairs)]


@tf.keras.utils.register_keras_serializable(package="larq_bnas")
class Cell(tf.keras.layers.Layer):
    """One BNAS cell built from a genotype.

    Args:
        genotype: the searched cells (a ``Genotype`` or its dict form).
        channels: C, the channels of every node; the output has ``len(concat) * C``.
        reduction: whether this is a reduction cell (stride 2 on edges from s0 and s1).
        reduction_prev: whether cell k-1 reduced (s0 is then twice s1's size).
        skip: "none", "identity" or "projection" (see the module docstring).
        pad_values: 1.0 (LCE-optimal one-padding) or 0.0 (zero padding).
        layer_set: the operations allowed in this cell (all known ones by default).
        float_kernels: names of this cell's binary convolutions that keep float kernels
            (``"preprocess0"``, ``"node5_1_bin_conv_3x3"``, ...): the reference's
            ``BinOp`` selection, see ``binop_float_kernels``.
        torch_padding: pad stride-2 windows symmetrically, as PyTorch does.
    """

    def __init__(
        self,
        genotype: Genotype | dict[str, Any],
        channels: int,
        reduction: bool = False,
        reduction_prev: bool = False,
        skip: str = "identity",
        pad_values: float = 1.0,
        layer_set: tuple[str, ...] | list[str] | None = None,
        float_kernels: tuple[str, ...] | list[str] = (),
        torch_padding: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.genotype = genotype if isinstance(genotype, Genotype) else Genotype.from_dict(genotype)
        if skip not in SKIP_KINDS:
            raise ValueError(f"skip must be one of {SKIP_KINDS}, got {skip!r}")
        self.channels = int(channels)
        self.reduction = bool(reduction)
        self.reduction_prev = bool(reduction_prev)
        self.skip = skip
        self.pad_values = float(pad_values)
        self.layer_set = tuple(layer_set) if layer_set is not None else None
        self.float_kernels = tuple(float_kernels)
        self.torch_padding = bool(torch_padding)

        pairs = self.genotype.reduce if reduction else self.genotype.normal
        self.concat = self.genotype.reduce_concat if reduction else self.genotype.normal_concat
        if self.layer_set is not None:
            for op, _ in pairs:
                check_op_name(op, self.layer_set)
        C = self.channels
        names = {"preprocess0", "preprocess1"} | set(edge_layer_names(pairs))
        unknown = sorted(set(self.float_kernels) - names)
        if unknown:
            raise ValueError(f"float_kernels names no layer of this cell: {unknown}")

        def options(name: str) -> dict[str, Any]:
            return {
                "binary_kernel": name not in self.float_kernels,
                "torch_padding": self.torch_padding,
            }

        self.preprocess0 = (
            BinaryConv(
                C, 3, strides=2, pad_values=pad_values, name="preprocess0", **options("preprocess0")
            )
            if reduction_prev
            else BinaryConv(
                C, 1, pad_values=pad_values, name="preprocess0", **options("preprocess0")
            )
        )
        self.preprocess1 = BinaryConv(
            C, 1, pad_values=pad_values, name="preprocess1", **options("preprocess1")
        )
        self.edge_layers: list[tf.keras.layers.Layer] = []
        self.edge_inputs: list[int] = [idx for _, idx in pairs]
        for (op, idx), layer_name in zip(pairs, edge_layer_names(pairs), strict=True):
            strides = 2 if reduction and idx < 2 else 1
            layer = make_op(
                op,
                C,
                strides=strides,
                pad_values=pad_values,
                layer_name=layer_name,
                **options(layer_name),
            )
            self.edge_layers.append(layer)
        if skip == "projection":
            self.skip_bn = batch_norm("skip_bn")
            self.skip_conv = tf.keras.layers.Conv2D(
                len(self.concat) * C,
                2,
                strides=2,
                padding="same",
                use_bias=True,
                name="skip_conv",
            )

    def build(self, input_shape: Any) -> None:
        self.drop_path_rate = self.add_weight(
            name="drop_path_rate", shape=(), initializer="zeros", trainable=False
        )
        super().build(input_shape)

    def _drop_path(self, x: tf.Tensor) -> tf.Tensor:
        keep = 1.0 - self.drop_path_rate
        mask_shape = tf.stack([tf.shape(x)[0], 1, 1, 1])
        mask = tf.floor(keep + tf.random.uniform(mask_shape, dtype=x.dtype))
        return x * mask / keep

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: list[tf.Tensor], training: bool | None = None) -> tf.Tensor:
        s0, s1 = inputs
        states = [
            self.preprocess0(s0, training=training),
            self.preprocess1(s1, training=training),
        ]
        for node in range(len(self.edge_layers) // 2):
            total = None
            for e in (2 * node, 2 * node + 1):
                layer = self.edge_layers[e]
                h = layer(states[self.edge_inputs[e]], training=training)
                if training and not isinstance(layer, Zeroise):
                    h = self._drop_path(h)
                total = h if total is None else total + h
            states.append(total)
        out = tf.concat([states[i] for i in self.concat], axis=-1)
        if self.skip == "identity":
            out = out + s1
        elif self.skip == "projection":
            out = out + self.skip_conv(self.skip_bn(s1, training=training))
        return out

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        s1 = tf.TensorShape(input_shape[1])
        h, w = s1[1], s1[2]
        if self.reduction:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return tf.TensorShape([s1[0], h, w, len(self.concat) * self.channels])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "genotype": self.genotype.to_dict(),
            "channels": self.channels,
            "reduction": self.reduction,
            "reduction_prev": self.reduction_prev,
            "skip": self.skip,
            "pad_values": self.pad_values,
            "layer_set": list(self.layer_set) if self.layer_set is not None else None,
            **({"float_kernels": list(self.float_kernels)} if self.float_kernels else {}),
            **({"torch_padding": True} if self.torch_padding else {}),
        }


def set_drop_path_rate(model: tf.keras.Model, rate: float) -> int:
    """Set the drop-path probability of every ``Cell`` in ``model``; return how many."""
    count = 0
    for layer in model.submodules:
        if isinstance(layer, Cell):
            layer.drop_path_rate.assign(rate)
            count += 1
    return count


class DropPathSchedule(tf.keras.callbacks.Callback):
    """Ramp the drop-path probability linearly from 0 to ``max_rate`` over ``epochs``.

    At the start of epoch e the rate is ``max_rate * e / epochs`` (the BNAS CIFAR recipe:
    0 -> 0.2 over training).
    """

    def __init__(self, max_rate: float = 0.2, epochs: int = 600) -> None:
        super().__init__()
        self.max_rate = float(max_rate)
        self.epochs = int(epochs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        rate = self.max_rate * epoch / max(self.epochs, 1)
        set_drop_path_rate(self.model, rate)


__all__ = [
    "Cell",
    "DropPathSchedule",
    "edge_layer_names",
    "set_drop_path_rate",
    "SKIP_KINDS",
    "PRIMITIVES",
]
