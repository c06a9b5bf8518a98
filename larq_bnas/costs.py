"""Cost report of any Keras model: parameters, model size, BOPs, FLOPs and OPs.

The convention is the MeliusNet authors' (it reproduces their published numbers):

- a convolution costs ``kh * kw * (c_in / groups) * c_out * out_h * out_w`` multiply-
  accumulates; a depthwise one ``kh * kw * c_in * multiplier * out_h * out_w``;
- a convolution with binary input *and* binary weights counts as BOPs, every other one
  as FLOPs; ``OPs = BOPs / 64 + FLOPs``;
- dense layers are listed but not added to the totals unless ``count_dense=True`` (the
  convention leaves the final classifier out);
- size = binary weights at 1 bit + every other trainable parameter at 32 bits, in MiB
  (BatchNorm moving statistics are not trainable and are left out).

Shapes come from tracing the model once with a batch of 1 (no computation runs), so the
report works for any Keras model, nested layers included, not only for this package's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

MIB = 2**20
_CONV_TYPES = ("Conv1D", "Conv2D", "Conv3D")


@dataclass
class LayerCost:
    """The cost of one leaf layer (a layer without sublayers)."""

    name: str
    kind: str
    binary: bool = False
    trainable_params: int = 0
    binary_params: int = 0
    float_params: int = 0
    macs: int = 0
    bops: int = 0
    flops: int = 0
    output_shape: tuple[int | None, ...] = ()

    @property
    def size_bytes(self) -> float:
        return self.binary_params / 8 + self.float_params * 4


@dataclass
class CostReport:
    """Per-layer costs and their totals. ``to_dict()`` is the JSON form."""

    name: str
    input_shape: tuple[int, ...]
    layers: list[LayerCost] = field(default_factory=list)
    count_dense: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def _counted(self) -> Iterator[LayerCost]:
        for layer in self.layers:
            if layer.kind == "Dense" and not self.count_dense:
                continue
            yield layer

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def binary_params(self) -> int:
        return sum(layer.binary_params for layer in self.layers)

    @property
    def float_params(self) -> int:
        return sum(layer.float_params for layer in self.layers)

    @property
    def size_bytes(self) -> float:
        return sum(layer.size_bytes for layer in self.layers)

    @property
    def size_mib(self) -> float:
        return self.size_bytes / MIB

    @property
    def bops(self) -> int:
        return sum(layer.bops for layer in self._counted())

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self._counted())

    @property
    def ops(self) -> float:
        return self.bops / 64 + self.flops

    @property
    def binary_convs(self) -> int:
        return sum(1 for layer in self.layers if layer.binary)

    def recount(
        self,
        count_as_binary: Callable[[LayerCost], bool] | None = None,
        count_dense: bool | None = None,
    ) -> dict[str, float]:
        """BOPs, FLOPs and OPs under another convention.

        ``count_as_binary`` picks full-precision convolutions to count as BOPs (as a paper
        may do for layers it considers binary); ``count_dense`` overrides the report's.
        """
        dense = self.count_dense if count_dense is None else count_dense
        bops = flops = 0
        for layer in self.layers:
            if layer.kind == "Dense":
                flops += layer.macs if dense else 0
            elif layer.binary or (count_as_binary is not None and count_as_binary(layer)):
                bops += layer.macs
            else:
                flops += layer.macs
        return {"bops": bops, "flops": flops, "ops": bops / 64 + flops}

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "trainable_params": self.trainable_params,
            "binary_params": self.binary_params,
            "float_params": self.float_params,
            "size_mib": round(self.size_mib, 4),
            "bops": self.bops,
            "flops": self.flops,
            "ops": self.ops,
            "binary_convs": self.binary_convs,
            "dense_counted": self.count_dense,
            **self.extras,
        }
        if per_layer:
            out["layers"] = [
                {**dataclasses.asdict(layer), "output_shape": list(layer.output_shape)}
                for layer in self.layers
            ]
        return out

    def table(self, per_layer: bool = True) -> str:
        """A human-readable report: one row per costed layer, then the totals."""
        lines = []
        if per_layer:
            header = (
                f"{'layer':<58} {'kind':<20} {'params':>10} {'bin':>3} {'BOPs':>10} {'FLOPs':>10}"
            )
            lines += [header, "-" * len(header)]
            for layer in self.layers:
                if not (layer.trainable_params or layer.macs):
                    continue
                lines.append(
                    f"{layer.name[-58:]:<58} {layer.kind[:20]:<20} {layer.trainable_params:>10,}"
                    f" {'yes' if layer.binary else '':>3} {_sci(layer.bops):>10} "
                    f"{_sci(layer.flops):>10}"
                )
            lines.append("")
        lines += [
            f"model             {self.name} (input {'x'.join(str(d) for d in self.input_shape)})",
            f"trainable params  {self.trainable_params:,}",
            f"  binary          {self.binary_params:,}",
            f"  float           {self.float_params:,}",
            f"size              {self.size_mib:.2f} MiB (binary at 1 bit, float at 32 bits)",
            f"BOPs              {_sci(self.bops)}",
            f"FLOPs             {_sci(self.flops)}"
            + ("" if self.count_dense else " (final dense layers not counted)"),
            f"OPs               {_sci(self.ops)} (BOPs / 64 + FLOPs)",
        ]
        for key, value in self.extras.items():
            shown = _sci(value) if isinstance(value, (int, float)) else value
            lines.append(f"{key:<17} {shown}")
        return "\n".join(lines)


def _sci(x: float) -> str:
    return f"{x:.3e}" if x else "0"


def is_binary_quantizer(quantizer: Any) -> bool:
    """True for a 1-bit larq quantizer (``precision == 1``), as larq itself decides."""
    return getattr(quantizer, "precision", None) == 1 and type(quantizer).__name__ != "NoOp"


def is_binary_layer(layer: tf.keras.layers.Layer) -> bool:
    """True for a larq layer with binary inputs and binary weights (a BOP layer)."""
    kernel_q = getattr(layer, "kernel_quantizer", None) or getattr(
        layer, "depthwise_quantizer", None
    )
    return is_binary_quantizer(getattr(layer, "input_quantizer", None)) and is_binary_quantizer(
        kernel_q
    )


def has_binary_weights(layer: tf.keras.layers.Layer) -> bool:
    """True for a larq layer whose kernel is binarized (stored at 1 bit)."""
    kernel_q = getattr(layer, "kernel_quantizer", None) or getattr(
        layer, "depthwise_quantizer", None
    )
    return is_binary_quantizer(kernel_q)


def leaf_layers(model: tf.keras.layers.Layer) -> list[tuple[str, tf.keras.layers.Layer]]:
    """All layers without sublayers, depth first, with a path name ("cell3/node2_0/conv")."""
    out: list[tuple[str, tf.keras.layers.Layer]] = []
    seen: set[int] = set()

    def visit(layer: tf.keras.layers.Layer, prefix: str) -> None:
        children = list(layer._flatten_layers(include_self=False, recursive=False))
        # Convolutions and dense layers are leaves even though larq's hold quantizers.
        if not children or (_macs_kind(layer) is not None and prefix):
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append((prefix, layer))
            return
        for child in children:
            visit(child, f"{prefix}/{child.name}" if prefix else child.name)

    visit(model, "")
    return out


def _count(weights: Sequence[tf.Variable]) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def _trace_shapes(
    model: tf.keras.Model, layers: list[tf.keras.layers.Layer], input_shape: Sequence[int]
) -> dict[int, tuple[tf.TensorShape, tf.TensorShape]]:
    """Record (input shape, output shape) of each of ``layers`` by tracing the model."""
    shapes: dict[int, tuple[tf.TensorShape, tf.TensorShape]] = {}
    originals = {}

    def wrap(layer: tf.keras.layers.Layer) -> Callable[..., Any]:
        original = layer.call

        def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
            outputs = original(inputs, *args, **kwargs)
            first = tf.nest.flatten(inputs)[0]
            shapes[id(layer)] = (first.shape, tf.nest.flatten(outputs)[0].shape)
            return outputs

        return call

    for layer in layers:
        originals[id(layer)] = layer
        layer.call = wrap(layer)
    try:
        spec = tf.TensorSpec((1, *input_shape), tf.float32)
        # autograph off: the shapes need one plain trace, not converted control flow
        trace = tf.function(lambda x: model(x, training=False), autograph=False)
        trace.get_concrete_function(spec)
    finally:
        for layer in layers:
            del layer.call  # back to the class's method
    return shapes


def model_costs(
    model: tf.keras.Model,
    *,
    input_shape: Sequence[int] | None = None,
    count_dense: bool = False,
    name: str | None = None,
) -> CostReport:
    """Compute the cost report of ``model``.

    Args:
        model: any Keras model (larq layers, nested layers and plain Keras all work).
        input_shape: (height, width, channels) to cost at; the model's own by default.
        count_dense: add dense layers' multiply-accumulates to the FLOPs.
        name: the report's name (the model's name by default).
    """
    if input_shape is None:
        input_shape = tuple(model.input_shape[1:])
    if any(d is None for d in input_shape):
        raise ValueError(
            f"The model's input shape {tuple(model.input_shape)} is not fully known; "
            "pass input_shape=(height, width, channels)"
        )
    leaves = leaf_layers(model)
    costed = [layer for _, layer in leaves if _macs_kind(layer) is not None]
    shapes = _trace_shapes(model, costed, input_shape)
    report = CostReport(
        name=name or model.name, input_shape=tuple(input_shape), count_dense=count_dense
    )
    for path, layer in leaves:
        trainable = _count(layer.trainable_weights)
        binary_w = 0
        if has_binary_weights(layer):
            kernel = getattr(layer, "kernel", None)
            if kernel is None:
                kernel = getattr(layer, "depthwise_kernel", None)
            binary_w = _count([kernel]) if kernel is not None else 0
        cost = LayerCost(
            name=path,
            kind=type(layer).__name__,
            binary=is_binary_layer(layer),
            trainable_params=trainable,
            binary_params=binary_w,
            float_params=trainable - binary_w,
        )
        if id(layer) in shapes:
            in_shape, out_shape = shapes[id(layer)]
            cost.macs = _macs(layer, in_shape, out_shape)
            cost.output_shape = tuple(out_shape.as_list()[1:])
            if cost.binary:
                cost.bops = cost.macs
            else:
                cost.flops = cost.macs
        if cost.trainable_params or cost.macs or id(layer) in shapes:
            report.layers.append(cost)
    return report


def _macs_kind(layer: tf.keras.layers.Layer) -> str | None:
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, tf.keras.layers.SeparableConv2D):
        return "separable"
    if isinstance(layer, tf.keras.layers.Conv2D):  # includes larq's QuantConv2D
        return "conv"
    if isinstance(layer, tf.keras.layers.Dense):
        return "dense"
    return None


def _macs(layer: tf.keras.layers.Layer, in_shape: tf.TensorShape, out_shape: tf.TensorShape) -> int:
    kind = _macs_kind(layer)
    out = out_shape.as_list()
    spatial = math.prod(d for d in out[1:-1])
    c_in = in_shape.as_list()[-1]
    if kind == "conv":
        kh, kw = layer.kernel_size
        groups = getattr(layer, "groups", 1) or 1
        return int(kh * kw * (c_in // groups) * out[-1] * spatial)
    if kind == "depthwise":
        kh, kw = layer.kernel_size
        return int(kh * kw * out[-1] * spatial)
    if kind == "separable":
        kh, kw = layer.kernel_size
        mult = layer.depth_multiplier
        return int(kh * kw * c_in * mult * spatial + c_in * mult * out[-1] * spatial)
    if kind == "dense":
        return int(c_in * out[-1] * max(spatial, 1))
    return 0
