"""Acceleration report: which binary layers of a Keras model became LCE binary ops.

Each binary Keras convolution (binary inputs and binary weights) is matched to an
``LceBconv2d`` op of the flatbuffer with the same output channels, kernel size and
output size. What does not match is explained:

- a float ``CONV_2D`` of that shape exists: it stayed float, and the reason is the first
  that applies: zero padding on xcore; a grouped conv whose input channels per group are
  not a multiple of 32; otherwise an op sits between the sign quantizer and the conv;
- nothing of that shape exists: the converter removed it because its output is unused
  (for example a BNAS preprocessing conv whose state feeds only Zeroise).

Binary dense and depthwise layers are listed as not accelerated (LCE has no such ops).
The predicted size counts binary kernels as LCE stores them (bit-packed in 32-bit words
along the input channels), every other trainable parameter at 32 bits, and leaves out
layers the converter removed.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

from larq_bnas.converters.flatbuffer import FlatbufferInfo
from larq_bnas.costs import is_binary_layer, leaf_layers, model_costs

UNUSED = "removed by the converter: its output is unused (e.g. it feeds only Zeroise)"


def _conv_key(filters: int, kh: int, kw: int, out_h: int, out_w: int) -> tuple[int, ...]:
    return (int(filters), int(kh), int(kw), int(out_h), int(out_w))


def _float_reason(layer: tf.keras.layers.Layer, target: str) -> str:
    groups = getattr(layer, "groups", 1) or 1
    in_channels = int(layer.kernel.shape[2]) if hasattr(layer, "kernel") else 0
    if target == "xcore" and getattr(layer, "padding", "") == "same" and not getattr(
        layer, "pad_values", 0.0
    ):
        return "zero padding is not supported on xcore: build with pad_values=1.0"
    if groups > 1 and in_channels % 32:
        return (f"grouped binary conv with {in_channels} input channels per group: LCE needs "
                "a multiple of 32")
    return "an op sits between the sign quantizer and the convolution"


def acceleration_report(model: tf.keras.Model, info: FlatbufferInfo, *,
                        target: str = "arm") -> dict[str, Any]:
    """Compare ``model``'s binary layers with the ops of its flatbuffer (see module doc)."""
    costs = {c.name: c for c in model_costs(model).layers}
    bconvs: dict[tuple[int, ...], int] = {}
    float_convs: dict[tuple[int, ...], int] = {}
    for op in info.ops:
        if op.name in ("LceBconv2d", "CONV_2D") and len(op.inputs) > 1 and op.outputs:
            out, kh, kw = op.inputs[1][:3]
            _, oh, ow, _ = op.outputs[0]
            key = _conv_key(out, kh, kw, oh, ow)
            target_map = bconvs if op.name == "LceBconv2d" else float_convs
            target_map[key] = target_map.get(key, 0) + 1

    binary, accelerated, not_accelerated, removed = [], [], [], []
    total_bops = accelerated_bops = removed_bops = 0
    predicted = 0.0
    for path, layer in leaf_layers(model):
        cost = costs.get(path)
        params = sum(int(math.prod(w.shape)) for w in layer.trainable_weights)
        if not is_binary_layer(layer):
            predicted += 4 * params
            continue
        kind = type(layer).__name__
        bops = cost.bops if cost is not None else 0
        if "Dense" in kind or "Depthwise" in kind:
            reason = ("LCE has no binary fully-connected op" if "Dense" in kind
                      else "LCE has no binary depthwise convolution")
            not_accelerated.append({"layer": path, "reason": reason})
            predicted += 4 * params
            continue
        binary.append(path)
        total_bops += bops
        kh, kw = layer.kernel_size
        shape = cost.output_shape if cost is not None else ()
        key = _conv_key(layer.filters, kh, kw, shape[0], shape[1]) if len(shape) == 3 else None
        if key is not None and bconvs.get(key, 0) > 0:
            bconvs[key] -= 1
            accelerated.append(path)
            accelerated_bops += bops
            groups = getattr(layer, "groups", 1) or 1
            in_per_group = int(layer.kernel.shape[2])
            words = math.ceil(in_per_group / 32)
            predicted += 4 * words * layer.filters * kh * kw + 4 * (params - layer.kernel.shape.num_elements())
            del groups
        elif key is not None and float_convs.get(key, 0) > 0:
            float_convs[key] -= 1
            not_accelerated.append({"layer": path, "reason": _float_reason(layer, target)})
            predicted += 4 * params
        else:
            removed.append({"layer": path, "reason": UNUSED})
            removed_bops += bops
    present_bops = total_bops - removed_bops
    report: dict[str, Any] = {
        "target": target,
        "op_counts": info.op_counts,
        "binary_convs": len(binary),
        "accelerated_convs": len(accelerated),
        "removed_convs": len(removed),
        "accelerated_bops_share": accelerated_bops / present_bops if present_bops else 1.0,
        "not_accelerated": not_accelerated,
        "removed": removed,
        "size_bytes": info.size_bytes,
        "predicted_size_bytes": int(round(predicted)),
    }
    report["size_ratio"] = report["size_bytes"] / max(report["predicted_size_bytes"], 1)
    report["warnings"] = [
        f"{item['layer']} stayed float: {item['reason']}" for item in not_accelerated
    ]
    return report


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form of ``acceleration_report``'s result."""
    present = report["binary_convs"] - report["removed_convs"]
    lines = [
        f"target                {report['target']}",
        f"binary convs          {report['binary_convs']} in the Keras model, "
        f"{report['removed_convs']} removed as unused, "
        f"{report['accelerated_convs']}/{present} became LceBconv2d",
        f"accelerated BOPs      {100 * report['accelerated_bops_share']:.1f} %",
        f"file size             {report['size_bytes']:,} bytes "
        f"(predicted {report['predicted_size_bytes']:,}, ratio {report['size_ratio']:.3f})",
    ]
    for key in ("max_abs_diff", "mean_abs_diff", "top1_agreement"):
        if key in report:
            lines.append(f"{key:<21} {report[key]:.3g}")
    lines.append("ops                   " + ", ".join(
        f"{name} x{count}" for name, count in report["op_counts"].items()))
    for item in report["not_accelerated"]:
        lines.append(f"NOT ACCELERATED       {item['layer']}: {item['reason']}")
    return "\n".join(lines)
