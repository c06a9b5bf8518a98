"""Acceleration report: which binary layers of a Keras model became LCE binary ops.

A binary layer is one with binary inputs and binary weights (``costs.is_binary_layer``);
its BOPs are the cost report's. The report matches every binary Keras convolution to an
``LceBconv2d`` op of the flatbuffer.

Matching rule: a binary ``Conv2D`` (larq ``QuantConv2D``) matches an unused
``LceBconv2d`` with the same output channels, kernel size, strides and output height and
width (the output size stands for the input size and padding). Layers are taken in the
model's order, each takes the first unused op with its key, so ``n`` identical convs need
``n`` identical ops. What does not match is explained by the first reason that applies:

1. binary ``QuantDense``: LCE has no binary fully-connected op (it runs as a float
   FULLY_CONNECTED); binary depthwise, transposed, 1D and 3D convs: no LCE op either;
2. target "xcore" and zero padding ("same" with ``pad_values=0``): not supported there;
3. grouped conv whose input channels per group are not a multiple of 32;
4. an input quantizer that is not a sign (LCE matches ste_sign, approx_sign, swish_sign)
   or a kernel quantizer that does not give +-(per-channel scale) weights;
5. a dilated conv while the file holds SPACE_TO_BATCH_ND: TensorFlow lowered it to
   SpaceToBatchND -> Conv2D -> BatchToSpaceND and LCE did not fuse that back (this
   happens when two such convs share one SpaceToBatchND: with untrained BatchNorms, whose
   parameters are all equal, TensorFlow merges identical branches);
6. a float ``CONV_2D`` with its key exists: it stayed float because an op sits between
   the sign quantizer and the convolution;
7. nothing with its key exists: the converter removed it (its output is unused).

A layer the converter removed (7) is left out of the BOPs share. The share counts every
binary layer's BOPs, dense and depthwise ones included.

Predicted size (``predicted_size_bytes``), the deployment form of the cost report's size:
binary kernels that became ``LceBconv2d`` as LCE stores them (bit-packed into 32-bit words
along each group's input channels, so 36 input channels take 64 bits) plus their float32
per-output-channel multiplier and bias (8 bytes each; BatchNorm folds into them); every
other trainable parameter at 32 bits (BatchNorm's moving statistics fold into the scale
and offset, and so add nothing); plus the graph itself (operators, tensor names,
shapes), estimated as ``GRAPH_BYTES_BASE + GRAPH_BYTES_PER_LAYER`` per leaf layer.
The cost report's own figure (binary weights at exactly 1 bit, float at 32) is
``cost_report_size_bytes``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from larq_bnas.converters.flatbuffer import FlatbufferInfo
from larq_bnas.costs import is_binary_layer, leaf_layers, model_costs

UNUSED = "removed by the converter: its output is unused (e.g. it feeds only Zeroise)"
#: Graph bytes of a flatbuffer besides its constants: a fixed part and a part per Keras
#: leaf layer (operators, tensors, names). Measured on BNAS, MeliusNet and larq-zoo files.
GRAPH_BYTES_BASE = 1500
GRAPH_BYTES_PER_LAYER = 280
#: Sign quantizers whose pattern the LCE converter matches as a binary input.
SIGN_INPUT_QUANTIZERS = ("SteSign", "ApproxSign", "SwishSign")
#: Kernel quantizers giving +-(scale per output channel) weights.
SIGN_KERNEL_QUANTIZERS = ("SteSign", "ApproxSign", "SwishSign", "MagnitudeAwareSign")
_DEFAULT = object()


def _key(filters: int, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int) -> tuple[int, ...]:
    return (int(filters), int(kh), int(kw), int(sh), int(sw), int(oh), int(ow))


def _op_key(op: Any) -> tuple[int, ...] | None:
    if len(op.inputs) < 2 or not op.outputs or len(op.inputs[1]) != 4:
        return None
    out_ch, kh, kw = op.inputs[1][:3]
    out = op.outputs[0]
    if len(out) != 4:
        return None
    return _key(
        out_ch,
        kh,
        kw,
        op.options.get("stride_height", 1),
        op.options.get("stride_width", 1),
        out[1],
        out[2],
    )


def _quantizer_name(quantizer: Any) -> str:
    return type(quantizer).__name__ if quantizer is not None else "None"


def untrained_batchnorm(model: tf.keras.Model) -> bool:
    """True if the model has BatchNorms and all of them are as initialised (mean 0,
    variance 1, scale 1, offset 0): a freshly built, untrained model."""
    found = False
    for layer in model.submodules:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        found = True
        for weight in layer.weights:
            name = weight.name.split("/")[-1]
            value = weight.numpy()
            expected = 1.0 if ("gamma" in name or "variance" in name) else 0.0
            if not np.all(value == expected):
                return False
    return found


def randomize_batchnorm(model: tf.keras.Model, seed: int = 0) -> tf.keras.Model:
    """Give every BatchNorm random statistics and parameters, like a trained model's.

    For conversion and latency tests of untrained models: their BatchNorms are all
    equal, so TensorFlow merges identical branches during conversion (which can keep
    dilated binary convs from becoming ``LceBconv2d``) and sign ties make LCE and Keras
    disagree more often. Changes ``model`` in place and returns it.
    """
    rng = np.random.RandomState(seed)
    for layer in model.submodules:
        if not isinstance(layer, tf.keras.layers.BatchNormalization):
            continue
        for weight in layer.weights:
            name = weight.name.split("/")[-1]
            shape = tuple(weight.shape)
            if "gamma" in name or "variance" in name:
                value = rng.uniform(0.5, 1.5, shape)
            else:
                value = rng.normal(0.0, 0.2, shape)
            weight.assign(value.astype(weight.dtype.as_numpy_dtype))
    return model


def _reason(
    layer: tf.keras.layers.Layer,
    key: tuple[int, ...] | None,
    target: str,
    info: FlatbufferInfo,
    float_keys: dict[tuple[int, ...], int],
    untrained: bool,
) -> str | None:
    """Why a binary conv did not become an LceBconv2d; None if the converter removed it."""
    groups = getattr(layer, "groups", 1) or 1
    in_per_group = int(layer.kernel.shape[2]) if getattr(layer, "kernel", None) is not None else 0
    padding = getattr(layer, "padding", "valid")
    pad_values = float(getattr(layer, "pad_values", 0.0) or 0.0)
    if target == "xcore" and padding == "same" and pad_values == 0.0:
        return "zero padding is not supported on xcore: build with pad_values=1.0"
    if groups > 1 and in_per_group % 32:
        return (
            f"grouped binary conv with {in_per_group} input channels per group: LCE "
            "needs a multiple of 32"
        )
    input_q = _quantizer_name(getattr(layer, "input_quantizer", None))
    if input_q not in SIGN_INPUT_QUANTIZERS:
        return (
            f"input quantizer {input_q} is not a sign quantizer LCE recognises "
            f"({', '.join(SIGN_INPUT_QUANTIZERS)})"
        )
    kernel_q = _quantizer_name(getattr(layer, "kernel_quantizer", None))
    if kernel_q not in SIGN_KERNEL_QUANTIZERS:
        return (
            f"kernel quantizer {kernel_q} does not give +-(per-channel scale) weights "
            f"({', '.join(SIGN_KERNEL_QUANTIZERS)} do)"
        )
    dilated = max(getattr(layer, "dilation_rate", (1, 1))) > 1
    if dilated and "SPACE_TO_BATCH_ND" in info.op_counts:
        reason = (
            "dilated conv lowered to SpaceToBatchND -> CONV_2D -> BatchToSpaceND, "
            "which LCE did not fuse (two dilated convs sharing one SpaceToBatchND)"
        )
        if untrained:
            reason += (
                "; this model's BatchNorms are untrained and all equal, so "
                "TensorFlow merged identical branches: a trained model (or "
                "--random-batchnorm) converts fully"
            )
        return reason
    if key is not None and float_keys.get(key, 0) > 0:
        float_keys[key] -= 1
        reason = (
            "an op sits between the sign quantizer and the convolution (it stayed a float CONV_2D)"
        )
        if untrained:
            reason += (
                "; the model's BatchNorms are untrained and all equal, so TensorFlow "
                "may have merged identical branches: try a trained model or "
                "--random-batchnorm"
            )
        return reason
    return None


def acceleration_report(
    model: tf.keras.Model, info: FlatbufferInfo, *, target: str = "arm"
) -> dict[str, Any]:
    """Compare ``model``'s binary layers with the ops of its flatbuffer (see module doc)."""
    cost_report = model_costs(model)
    costs = {c.name: c for c in cost_report.layers}
    bconvs: dict[tuple[int, ...], int] = {}
    float_keys: dict[tuple[int, ...], int] = {}
    for op in info.ops:
        if op.name in ("LceBconv2d", "CONV_2D"):
            key = _op_key(op)
            if key is None:
                continue
            counts = bconvs if op.name == "LceBconv2d" else float_keys
            counts[key] = counts.get(key, 0) + 1
    untrained = untrained_batchnorm(model)

    binary: list[str] = []
    accelerated: list[str] = []
    not_accelerated: list[dict[str, str]] = []
    removed: list[dict[str, str]] = []
    kept_float: list[dict[str, str]] = []
    binary_layers = 0
    total_bops = accelerated_bops = removed_bops = 0
    weights = 0.0
    leaves = leaf_layers(model)
    for path, layer in leaves:
        cost = costs.get(path)
        params = sum(int(math.prod(w.shape)) for w in layer.trainable_weights)
        if not is_binary_layer(layer):
            weights += 4 * params
            # A conv that a model keeps float on purpose says why (e.g. the BNAS
            # reference's BinOp leaves some convs float in its published weights).
            if getattr(layer, "kept_float_reason", None):
                kept_float.append({"layer": path, "reason": layer.kept_float_reason})
            continue
        binary_layers += 1
        kind = type(layer).__name__
        bops = cost.bops if cost is not None else 0
        total_bops += bops
        if not isinstance(layer, tf.keras.layers.Conv2D) or isinstance(
            layer, (tf.keras.layers.Conv2DTranspose, tf.keras.layers.DepthwiseConv2D)
        ):
            if "Dense" in kind:
                reason = "LCE has no binary fully-connected op (it runs as a float FULLY_CONNECTED)"
            elif "Depthwise" in kind:
                reason = "LCE has no binary depthwise convolution"
            else:
                reason = f"LCE has no binary op for {kind} (only 2D convolutions)"
            not_accelerated.append({"layer": path, "reason": reason})
            weights += 4 * params
            continue
        binary.append(path)
        kh, kw = layer.kernel_size
        sh, sw = layer.strides
        shape: tuple[Any, ...] = tuple(cost.output_shape) if cost is not None else ()
        key = _key(layer.filters, kh, kw, sh, sw, shape[0], shape[1]) if len(shape) == 3 else None
        kernel_params = int(layer.kernel.shape.num_elements())
        if key is not None and bconvs.get(key, 0) > 0:
            bconvs[key] -= 1
            accelerated.append(path)
            accelerated_bops += bops
            words = math.ceil(int(layer.kernel.shape[2]) / 32)
            weights += 4 * words * layer.filters * kh * kw  # bit-packed kernel
            weights += 8 * layer.filters  # float32 output multiplier and bias
            weights += 4 * (params - kernel_params)
            continue
        why = _reason(layer, key, target, info, float_keys, untrained)
        if why is None:
            removed.append({"layer": path, "reason": UNUSED})
            removed_bops += bops
        else:
            not_accelerated.append({"layer": path, "reason": why})
            weights += 4 * params
    present_bops = total_bops - removed_bops
    graph = GRAPH_BYTES_BASE + GRAPH_BYTES_PER_LAYER * len(leaves)
    predicted = int(round(weights + graph))
    report: dict[str, Any] = {
        "target": target,
        "op_counts": info.op_counts,
        "binary_layers": binary_layers,
        "binary_convs": len(binary),
        "accelerated_convs": len(accelerated),
        "removed_convs": len(removed),
        "binary_bops": total_bops,
        "accelerated_bops": accelerated_bops,
        "accelerated_bops_share": accelerated_bops / present_bops if present_bops else 1.0,
        "not_accelerated": not_accelerated,
        "kept_float": kept_float,
        "removed": removed,
        "untrained_batchnorm": untrained,
        "size_bytes": info.size_bytes,
        "predicted_size_bytes": predicted,
        "weights_bytes": info.buffer_bytes,
        "predicted_weights_bytes": int(round(weights)),
        "graph_bytes": info.graph_bytes,
        "cost_report_size_bytes": int(round(cost_report.size_bytes)),
    }
    report["size_ratio"] = report["size_bytes"] / max(report["predicted_size_bytes"], 1)
    warnings = []
    if not_accelerated:
        share = 100 * (1 - report["accelerated_bops_share"])
        warnings.append(
            f"{len(not_accelerated)} of {binary_layers - len(removed)} binary layers "
            f"({share:.1f} % of their BOPs) stayed float"
        )
    warnings += [f"{item['layer']} stayed float: {item['reason']}" for item in not_accelerated]
    report["warnings"] = warnings
    return report


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form of ``acceleration_report``'s result."""
    present = report["binary_convs"] - report["removed_convs"]
    lines = [
        f"target                {report['target']}",
        f"binary convs          {report['binary_convs']} in the Keras model, "
        f"{report['removed_convs']} removed as unused, "
        f"{report['accelerated_convs']}/{present} became LceBconv2d",
    ]
    others = report.get("binary_layers", report["binary_convs"]) - report["binary_convs"]
    if others:
        lines.append(f"other binary layers   {others} (dense / depthwise: no LCE binary op)")
    lines += [
        f"accelerated BOPs      {100 * report['accelerated_bops_share']:.1f} %",
        f"file size             {report['size_bytes']:,} bytes "
        f"(predicted {report['predicted_size_bytes']:,}, ratio {report['size_ratio']:.3f})",
    ]
    if "weights_bytes" in report:
        lines.append(
            f"  constants           {report['weights_bytes']:,} bytes (predicted "
            f"{report['predicted_weights_bytes']:,}); graph {report['graph_bytes']:,} bytes"
        )
        lines.append(
            f"  cost report size    {report['cost_report_size_bytes']:,} bytes "
            "(binary weights at 1 bit, float at 32)"
        )
    for key in ("max_abs_diff", "mean_abs_diff", "top1_agreement"):
        if key in report:
            lines.append(f"{key:<21} {report[key]:.3g}")
    if "n" in report:
        lines.append(
            f"verified on           {report['n']} inputs"
            + (f" (LCE kernel {report['kernel']})" if "kernel" in report else "")
        )
    lines.append(
        "ops                   "
        + ", ".join(f"{name} x{count}" for name, count in report["op_counts"].items())
    )
    for item in report["not_accelerated"]:
        lines.append(f"NOT ACCELERATED       {item['layer']}: {item['reason']}")
    for item in report.get("kept_float", []):
        lines.append(f"KEPT FLOAT            {item['layer']}: {item['reason']}")
    if report.get("untrained_batchnorm") and report["not_accelerated"]:
        lines.append(
            "note                  the BatchNorms are untrained (all equal); "
            "convert a trained model or use --random-batchnorm for latency tests"
        )
    return "\n".join(lines)
