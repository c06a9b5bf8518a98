"""The BNAS search supernet: every cell edge is a mixed operation over the whole layer set.

Paper section 4.3 / 5.1 and the reference search model: a node of a search cell takes
a *mixed operation* from every earlier state (s0, s1 and the earlier nodes: 14 edges per
cell with 4 nodes). The mixed operation on edge e outputs

    sum_k softmax(alpha_e)_k * op_k(x)

over all operations k of the layer set. ``alpha_normal`` and ``alpha_reduce`` (each
14 x len(layer_set), initialised 1e-3 * N(0, 1)) are shared by all normal and by all
reduction cells. In the supernet the preprocessing is full precision
(ReLU -> conv -> non-affine BN; a 3x3 stride-2 conv when the previous cell reduced) and
every BatchNorm of the operations is non-affine; pools are followed by a non-affine BN.
The cell keeps the paper's inter-cell skip connection (cell 0: none; normal cells: + s1;
reduction cells: + BN -> 2x2 stride-2 full-precision conv of s1), as the reference
search model does. The stem is a 3x3 conv to 3C followed by BN.

Two implementations of a search cell compute the same function:

- ``fused=False``: one Keras layer per operation and edge (``larq_bnas.models.bnas.ops.make_op`` with
  ``affine=False``), the reference's structure, 98 operation layers per cell;
- ``fused=True`` (default): per *source state*, the work its outgoing edges share is done
  once. With non-affine BatchNorm, the "BN -> sign" of every binary conv reading the same
  state computes the same tensor (same batch statistics, same moving statistics), and so
  does each pool and its BN: they are computed once per state. The binary convolutions of
  one kind on all outgoing edges of a state become one convolution with the edges' kernels
  concatenated along the output channels (the per-output-channel weight scale keeps each
  edge's binarization exactly as before), and Zeroise contributes exactly nothing, so it
  is skipped (its alpha still enters every softmax). The fused cell runs the same
  arithmetic in 20 convolutions instead of 56 (test: ``fused`` matches ``fused=False``
  with copied weights).

One difference from the per-op layers: for the stride-2 dilated convolutions of a
reduction cell the fused cell normalises the full-resolution input (as the reference
does: BN, then a stride-2 dilated conv) and subsamples after the sign, whereas
``BinaryConv`` subsamples before its BN; in inference mode both are identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import larq as lq
import tensorflow as tf

from larq_bnas._keras import batch_norm
from larq_bnas.config import ModelConfig
from larq_bnas.models.bnas.ops import (
    ALL_PRIMITIVES,
    PRIMITIVES,
    ZEROISE,
    check_op_name,
    make_op,
)
from larq_bnas.models.bnas.schedule import cell_schedule, reduction_cells

#: Intermediate nodes per cell, and the number of edges they take (2 + 3 + 4 + 5).
STEPS = 4
NUM_EDGES = sum(2 + i for i in range(STEPS))

#: Binary convolutions of the layer set: name -> (kernel size, dilation).
_CONVS: dict[str, tuple[int, int]] = {
    "bin_conv_3x3": (3, 1),
    "bin_conv_5x5": (5, 1),
    "bin_dil_conv_3x3": (3, 2),
    "bin_dil_conv_5x5": (5, 2),
}
_POOLS: dict[str, str] = {"max_pool_3x3": "max", "avg_pool_3x3": "avg"}

#: Named layer sets for the paper's ablations (Table 10, 11).
LAYER_SETS: dict[str, tuple[str, ...]] = {
    "bnas": PRIMITIVES,
    "no_dilated": tuple(op for op in PRIMITIVES if "dil" not in op),
    "with_sep": PRIMITIVES + ("sep_conv_3x3", "sep_conv_5x5"),
}


def edge_index(node: int, source: int) -> int:
    """Row of the alpha matrices for the edge ``source -> node`` (node 2..5, source < node)."""
    if not 2 <= node < 2 + STEPS or not 0 <= source < node:
        raise ValueError(f"No edge from state {source} to node {node}")
    return sum(range(2, node)) + source


def edge_list() -> list[tuple[int, int]]:
    """``(node, source)`` of every edge, in alpha-row order."""
    return [(node, src) for node in range(2, 2 + STEPS) for src in range(node)]


def resolve_layer_set(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """A layer set from a preset name (``bnas``, ``no_dilated``, ``with_sep``), a
    comma-separated string of operation names, or a sequence of names.

    Raises ValueError for an unknown operation, duplicates, or a set without any
    operation besides Zeroise.
    """
    if value is None:
        return PRIMITIVES
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_")
        if key in LAYER_SETS:
            return LAYER_SETS[key]
        names = [p.strip() for p in value.split(",") if p.strip()]
    else:
        names = [str(p).strip() for p in value]
    if not names:
        raise ValueError(
            "The layer set is empty; give operation names (comma-separated) or one of the "
            f"presets: {', '.join(LAYER_SETS)}"
        )
    for name in names:
        if name not in ALL_PRIMITIVES:
            raise ValueError(
                f"Unknown operation {name!r} in the layer set; valid operations are: "
                f"{', '.join(ALL_PRIMITIVES)} (or a preset: {', '.join(LAYER_SETS)})"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"The layer set names an operation twice: {names}")
    if all(name == ZEROISE for name in names):
        raise ValueError("The layer set needs at least one operation besides 'none'")
    return tuple(names)


@dataclass(frozen=True)
class SupernetConfig(ModelConfig):
    """Every option of the search supernet.

    Attributes:
        cells: number of search cells; reductions at ``cells // 3`` and ``2 * cells // 3``.
        channels: C, the channels of every node in the first stage (doubled per reduction).
        layer_set: the candidate operations of every edge (default: the paper's 7).
        input_size: square input size in pixels.
        input_channels: input image channels.
        num_classes: classifier outputs.
        inter_cell_skip: the paper's inter-cell skip connections.
        pad_values: padding of the binary convolutions (1.0, as the zoo networks; 0.0 as
            the PyTorch reference).
        fused: share per-state work between the edges (see the module docstring).
    """

    cells: int = 8
    channels: int = 16
    layer_set: tuple[str, ...] = PRIMITIVES
    input_size: int = 32
    input_channels: int = 3
    num_classes: int = 10
    inter_cell_skip: bool = True
    pad_values: float = 1.0
    fused: bool = True

    def __post_init__(self) -> None:
        if self.cells < 3:
            raise ValueError(f"cells must be at least 3 (two are reductions), got {self.cells}")
        if self.channels < 1:
            raise ValueError(f"channels must be positive, got {self.channels}")
        if self.input_size < 4:
            raise ValueError(f"input_size must be at least 4 pixels, got {self.input_size}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        layer_set = self.layer_set
        if not isinstance(layer_set, str):
            layer_set = tuple(layer_set)
        object.__setattr__(self, "layer_set", resolve_layer_set(layer_set))

    @property
    def reduction_cells(self) -> tuple[int, int]:
        return reduction_cells(self.cells)

    @property
    def alpha_shape(self) -> tuple[int, int]:
        return (NUM_EDGES, len(self.layer_set))


def magnitude_aware_sign(kernel: tf.Tensor) -> tf.Tensor:
    """sign(W) * mean|W| per output channel, gradient straight through (unclipped).

    The same function as ``larq_bnas.models.bnas.ops.binary_kernel_quantizer()``
    (larq ``MagnitudeAwareSign(clip_value=None)``) without a Keras layer call per use.
    """
    scale = tf.stop_gradient(tf.reduce_mean(tf.abs(kernel), axis=(0, 1, 2)))
    return scale * lq.quantizers.ste_sign(kernel, clip_value=None)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (the convention of larq and ``larq_bnas.models.bnas.ops``)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ReLUConvBN(tf.keras.layers.Layer):
    """Full-precision preprocessing of the supernet: ReLU -> conv (no bias) -> non-affine BN."""

    def __init__(self, filters: int, kernel_size: int = 1, strides: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv = tf.keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding="same", use_bias=False, name="conv"
        )
        self.bn = batch_norm("bn", affine=False)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.bn(self.conv(tf.nn.relu(inputs)), training=training)


class MixedOp(tf.keras.layers.Layer):
    """One edge of the reference supernet: ``sum_k w_k * op_k(x)`` with one layer per op."""

    def __init__(
        self,
        channels: int,
        strides: int,
        layer_set: Sequence[str],
        pad_values: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.op_layers = [
            make_op(
                name,
                channels,
                strides=strides,
                pad_values=pad_values,
                affine=False,
                layer_name=name,
            )
            for name in layer_set
        ]

    @tf.autograph.experimental.do_not_convert
    def call(
        self, inputs: tf.Tensor, weights: tf.Tensor, training: bool | None = None
    ) -> tf.Tensor:
        total = None
        for k, layer in enumerate(self.op_layers):
            h = weights[k] * layer(inputs, training=training)
            total = h if total is None else total + h
        return total


class FusedEdges(tf.keras.layers.Layer):
    """All mixed operations reading one state of a search cell, computed together.

    Args:
        channels: C (input and output channels of every edge).
        rows: the alpha rows of the outgoing edges (one per target node, in node order).
        strides: 2 for edges from the cell inputs of a reduction cell, else 1.
        layer_set: the candidate operations.
        pad_values: padding value of the binary convolutions.

    ``call(x, weights)`` returns one tensor per outgoing edge: that edge's mixed-op output.
    """

    def __init__(
        self,
        channels: int,
        rows: Sequence[int],
        strides: int,
        layer_set: Sequence[str],
        pad_values: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.rows = [int(r) for r in rows]
        self.strides = int(strides)
        self.layer_set = tuple(layer_set)
        self.pad_values = float(pad_values)
        self.column = {name: k for k, name in enumerate(self.layer_set)}
        self.conv_names = [n for n in self.layer_set if n in _CONVS]
        self.pool_names = [n for n in self.layer_set if n in _POOLS]
        self.other_names = [
            n for n in self.layer_set if n not in _CONVS and n not in _POOLS and n != ZEROISE
        ]
        # One non-affine BN for the "BN -> sign" shared by every binary conv on this input.
        self.bn = batch_norm("bn", affine=False) if self.conv_names else None
        self.pool_bns = {name: batch_norm(f"{name}_bn", affine=False) for name in self.pool_names}
        # Ops without a fused form (the separable convs of the ablation): one per edge.
        self.edge_ops = {
            name: [
                make_op(
                    name,
                    channels,
                    strides=strides,
                    pad_values=pad_values,
                    affine=False,
                    layer_name=f"{name}_e{row}",
                )
                for row in self.rows
            ]
            for name in self.other_names
        }

    def build(self, input_shape: Any) -> None:
        n, C = len(self.rows), self.channels
        self.kernels = {}
        for name in self.conv_names:
            k, _ = _CONVS[name]
            # Glorot normal of each per-edge (k, k, C, C) kernel: fan_in = fan_out = k*k*C.
            self.kernels[name] = self.add_weight(
                name=f"{name}_kernel",
                shape=(k, k, C, n * C),
                initializer=tf.keras.initializers.VarianceScaling(
                    1.0, "fan_in", "truncated_normal"
                ),
                trainable=True,
            )
        super().build(input_shape)

    def _pad(
        self, xq: tf.Tensor, kernel: int, strides: int, cache: dict[tuple[int, int], tf.Tensor]
    ) -> tf.Tensor:
        """``xq`` padded for a "same" conv of effective size ``kernel`` (shared per size)."""
        key = (kernel, strides)
        if key not in cache:
            pads = [
                [0, 0],
                list(_same_padding(xq.shape[1], kernel, strides)),
                list(_same_padding(xq.shape[2], kernel, strides)),
                [0, 0],
            ]
            cache[key] = tf.pad(xq, pads, constant_values=self.pad_values)
        return cache[key]

    @tf.autograph.experimental.do_not_convert
    def call(
        self, inputs: tf.Tensor, weights: tf.Tensor, training: bool | None = None
    ) -> list[tf.Tensor]:
        n, C = len(self.rows), self.channels
        rows = tf.gather(weights, self.rows)  # (n, K): the softmax weights of the edges
        columns = tf.unstack(rows, axis=1)  # K vectors of n weights
        outs: list[tf.Tensor | None] = [None] * n

        def add(m: int, value: tf.Tensor) -> None:
            outs[m] = value if outs[m] is None else outs[m] + value

        if self.conv_names:
            assert self.bn is not None
            xq = lq.quantizers.ste_sign(self.bn(inputs, training=training), clip_value=1.0)
            full: dict[tuple[int, int], tf.Tensor] = {}
            sub: dict[tuple[int, int], tf.Tensor] = {}
            total = None
            for name in self.conv_names:
                size, dilation = _CONVS[name]
                kernel = magnitude_aware_sign(self.kernels[name])
                if dilation > 1 and self.strides > 1:
                    # A stride-2 dilation-2 conv reads only even pixels: conv the subsample.
                    if not sub:
                        sub["x"] = xq[:, ::2, ::2, :]  # type: ignore[index]
                    x = self._pad(sub["x"], size, 1, sub)  # type: ignore[index]
                    y = tf.nn.conv2d(x, kernel, 1, "VALID")
                else:
                    x = self._pad(xq, (size - 1) * dilation + 1, self.strides, full)
                    y = tf.nn.conv2d(x, kernel, self.strides, "VALID", dilations=dilation)
                # Each edge's output channels scaled by its weight of this op.
                scale = tf.reshape(
                    tf.broadcast_to(columns[self.column[name]][:, None], (n, C)), (n * C,)
                )
                y = tf.nn.relu(y) * scale
                total = y if total is None else total + y
            for m, part in enumerate(tf.split(total, n, axis=-1) if n > 1 else [total]):
                add(m, part)
        for name in self.pool_names:
            pool = tf.nn.max_pool2d if _POOLS[name] == "max" else tf.nn.avg_pool2d
            p = self.pool_bns[name](pool(inputs, 3, self.strides, "SAME"), training=training)
            w = tf.unstack(columns[self.column[name]]) if n > 1 else [columns[self.column[name]][0]]
            for m in range(n):
                add(m, w[m] * p)
        for name, layers in self.edge_ops.items():
            w = tf.unstack(columns[self.column[name]]) if n > 1 else [columns[self.column[name]][0]]
            for m, layer in enumerate(layers):
                add(m, w[m] * layer(inputs, training=training))
        return outs


class SearchCell(tf.keras.layers.Layer):
    """A cell of the supernet: 4 nodes, each the sum of mixed ops from all earlier states.

    Args:
        channels: C of this cell.
        reduction: stride 2 on the edges from s0 and s1.
        reduction_prev: the previous cell reduced (s0 is then preprocessed by a stride-2 conv).
        skip: "none", "identity" (+ s1) or "projection" (+ BN -> 2x2/2 conv of s1).
        layer_set: candidate operations of every edge.
        pad_values: padding of the binary convolutions.
        fused: compute per-state shared work once (see the module docstring).

    ``call([s0, s1], weights)`` takes the softmax of the cell type's alphas (14 x K).
    """

    def __init__(
        self,
        channels: int,
        reduction: bool = False,
        reduction_prev: bool = False,
        skip: str = "identity",
        layer_set: Sequence[str] = PRIMITIVES,
        pad_values: float = 1.0,
        fused: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if skip not in ("none", "identity", "projection"):
            raise ValueError(f"skip must be none, identity or projection, got {skip!r}")
        C = self.channels = int(channels)
        self.reduction = bool(reduction)
        self.reduction_prev = bool(reduction_prev)
        self.skip = skip
        self.layer_set = tuple(layer_set)
        self.fused = bool(fused)
        for name in self.layer_set:
            check_op_name(name)
        self.preprocess0 = (
            ReLUConvBN(C, 3, 2, name="preprocess0")
            if reduction_prev
            else ReLUConvBN(C, 1, 1, name="preprocess0")
        )
        self.preprocess1 = ReLUConvBN(C, 1, 1, name="preprocess1")
        if self.fused:
            self.sources = []
            for src in range(2 + STEPS - 1):
                rows = [edge_index(node, src) for node in range(max(2, src + 1), 2 + STEPS)]
                strides = 2 if reduction and src < 2 else 1
                self.sources.append(
                    FusedEdges(C, rows, strides, self.layer_set, pad_values, name=f"from{src}")
                )
        else:
            self.edges = [
                MixedOp(
                    C,
                    2 if reduction and src < 2 else 1,
                    self.layer_set,
                    pad_values,
                    name=f"edge{node}_{src}",
                )
                for node, src in edge_list()
            ]
        if skip == "projection":
            self.skip_bn = batch_norm("skip_bn")
            self.skip_conv = tf.keras.layers.Conv2D(
                STEPS * C, 2, strides=2, padding="same", use_bias=True, name="skip_conv"
            )

    @tf.autograph.experimental.do_not_convert
    def call(
        self, inputs: Sequence[tf.Tensor], weights: tf.Tensor, training: bool | None = None
    ) -> tf.Tensor:
        s0, s1 = inputs
        states = [self.preprocess0(s0, training=training), self.preprocess1(s1, training=training)]
        if self.fused:
            pending: dict[int, list[tf.Tensor]] = {n: [] for n in range(2, 2 + STEPS)}
            for src, edges in enumerate(self.sources):
                outs = edges(states[src], weights, training=training)
                for m, node in enumerate(range(max(2, src + 1), 2 + STEPS)):
                    if outs[m] is not None:
                        pending[node].append(outs[m])
                node = src + 1  # every input of this node is now computed
                if node >= 2:
                    # Every layer set has an op besides Zeroise, so each node has inputs.
                    states.append(tf.add_n(pending.pop(node)))
        else:
            for node in range(2, 2 + STEPS):
                parts = [
                    self.edges[edge_index(node, src)](
                        states[src], weights[edge_index(node, src)], training=training
                    )
                    for src in range(node)
                ]
                states.append(tf.add_n(parts))
        out = tf.concat(states[2:], axis=-1)
        if self.skip == "identity":
            out = out + s1
        elif self.skip == "projection":
            out = out + self.skip_conv(self.skip_bn(s1, training=training))
        return out


class Supernet(tf.keras.Model):
    """The BNAS search supernet (logits out), with its architecture parameters.

    ``alpha_normal`` and ``alpha_reduce`` are variables of this model (14 x K each,
    1e-3 * N(0, 1)); ``weight_variables`` lists every other trainable variable.

    Args:
        config: a ``SupernetConfig`` (keyword overrides are applied on top of it).
    """

    def __init__(
        self, config: SupernetConfig | None = None, *, name: str = "bnas_supernet", **overrides: Any
    ) -> None:
        super().__init__(name=name)
        config = config or SupernetConfig()
        if overrides:
            config = config.override(overrides)  # type: ignore[assignment]
        self.config = config
        C = config.channels
        self.stem_conv = tf.keras.layers.Conv2D(
            3 * C, 3, padding="same", use_bias=False, name="stem_conv"
        )
        self.stem_bn = batch_norm("stem_bn")
        self.search_cells = []
        for plan in cell_schedule(config.cells, C, inter_cell_skip=config.inter_cell_skip):
            self.search_cells.append(
                SearchCell(
                    plan.channels,
                    plan.reduction,
                    plan.reduction_prev,
                    plan.skip,
                    config.layer_set,
                    config.pad_values,
                    config.fused,
                    name=plan.name,
                )
            )
        self.global_pool = tf.keras.layers.GlobalAveragePooling2D(name="global_pool")
        self.classifier = tf.keras.layers.Dense(config.num_classes, name="classifier")
        # One initializer each: a reused unseeded initializer repeats its values.
        self.alpha_normal = self.add_weight(
            name="alpha_normal",
            shape=config.alpha_shape,
            trainable=True,
            initializer=tf.keras.initializers.RandomNormal(stddev=1e-3),
        )
        self.alpha_reduce = self.add_weight(
            name="alpha_reduce",
            shape=config.alpha_shape,
            trainable=True,
            initializer=tf.keras.initializers.RandomNormal(stddev=1e-3),
        )
        size = config.input_size
        self(tf.zeros((1, size, size, config.input_channels)), training=False)  # build

    @property
    def arch_parameters(self) -> list[tf.Variable]:
        """``[alpha_normal, alpha_reduce]``."""
        return [self.alpha_normal, self.alpha_reduce]

    @property
    def weight_variables(self) -> list[tf.Variable]:
        """Every trainable variable except the architecture parameters."""
        arch = {v.ref() for v in self.arch_parameters}
        return [v for v in self.trainable_variables if v.ref() not in arch]

    @property
    def layer_set(self) -> tuple[str, ...]:
        return self.config.layer_set

    def arch_weights(self) -> tuple[tf.Tensor, tf.Tensor]:
        """softmax(alpha_normal), softmax(alpha_reduce) row-wise."""
        return tf.nn.softmax(self.alpha_normal, axis=-1), tf.nn.softmax(self.alpha_reduce, axis=-1)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        w_normal, w_reduce = self.arch_weights()
        s0 = s1 = self.stem_bn(self.stem_conv(inputs), training=training)
        for cell in self.search_cells:
            weights = w_reduce if cell.reduction else w_normal
            s0, s1 = s1, cell([s0, s1], weights, training=training)
        return self.classifier(self.global_pool(s1))

    def get_config(self) -> dict[str, Any]:
        return self.config.to_dict()
