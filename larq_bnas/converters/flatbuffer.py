"""Read a TFLite / LCE flatbuffer without the Keras model: its ops, tensors and sizes.

Uses the TFLite schema that TensorFlow ships (``tensorflow.lite.python.schema_py_generated``).
Operators are named by their builtin name (``CONV_2D``, ...) or their custom name (LCE's
``LceQuantize``, ``LceBconv2d``, ``LceBMaxPool2d``, ``LceDequantize``). Convolutions also
carry their options: for ``LceBconv2d`` the flexbuffer custom options LCE writes
(``channels_in``, strides, dilations, ``padding``, ``pad_values``, fused activation),
for ``CONV_2D`` / ``DEPTHWISE_CONV_2D`` the builtin ones.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: LCE's custom operators.
LCE_OPS = ("LceQuantize", "LceBconv2d", "LceBMaxPool2d", "LceDequantize")


@dataclass
class OpInfo:
    index: int
    name: str
    inputs: list[tuple[int, ...]]
    outputs: list[tuple[int, ...]]
    input_types: list[str]
    #: decoded options of convolutions (see the module docstring); empty for other ops
    options: dict[str, Any] = field(default_factory=dict)
    output_types: list[str] = field(default_factory=list)


@dataclass
class FlatbufferInfo:
    """What a flatbuffer holds."""

    size_bytes: int
    ops: list[OpInfo] = field(default_factory=list)
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    input_types: list[str] = field(default_factory=list)
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    output_types: list[str] = field(default_factory=list)
    buffer_bytes: int = 0

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(Counter(op.name for op in self.ops).most_common())

    @property
    def custom_ops(self) -> list[str]:
        """The custom operator names in the file (LCE's and any other), sorted."""
        return sorted({op.name for op in self.ops if op.name not in _builtin_names()})

    @property
    def graph_bytes(self) -> int:
        """Bytes that are not constant tensors: operators, tensor names, signatures."""
        return self.size_bytes - self.buffer_bytes

    @property
    def bconv_ops(self) -> list[OpInfo]:
        """The LCE binary convolutions (``LceBconv2d``), in execution order."""
        return [op for op in self.ops if op.name == "LceBconv2d"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size_bytes,
            "weights_bytes": self.buffer_bytes,
            "graph_bytes": self.graph_bytes,
            "num_ops": len(self.ops),
            "op_counts": self.op_counts,
            "custom_ops": self.custom_ops,
            "lce": any(name in LCE_OPS for name in self.custom_ops),
            "bconvs": [_bconv_row(op) for op in self.bconv_ops],
            "inputs": [
                {"shape": list(s), "type": t}
                for s, t in zip(self.input_shapes, self.input_types, strict=True)
            ],
            "outputs": [
                {"shape": list(s), "type": t}
                for s, t in zip(self.output_shapes, self.output_types, strict=True)
            ],
        }

    def table(self) -> str:
        lines = [f"{'op':<28} {'count':>6}", "-" * 35]
        lines += [f"{name:<28} {count:>6}" for name, count in self.op_counts.items()]
        inputs = ", ".join(
            f"{t}{list(s)}" for s, t in zip(self.input_shapes, self.input_types, strict=True)
        )
        outputs = ", ".join(
            f"{t}{list(s)}" for s, t in zip(self.output_shapes, self.output_types, strict=True)
        )
        lines += [
            "",
            f"file size      {self.size_bytes:,} bytes ({self.size_bytes / 2**20:.3f} MiB)",
            f"weights        {self.buffer_bytes:,} bytes (constant tensors)",
            f"graph          {self.graph_bytes:,} bytes (operators, tensor names, ...)",
            f"inputs         {inputs}",
            f"outputs        {outputs}",
        ]
        if self.bconv_ops:
            lines += [
                "",
                "LceBconv2d ops:",
                f"  {'op':>4} {'in->out':>11} {'kernel':>6} {'stride':>6} {'dil':>4} "
                f"{'padding':>7} {'pad':>3} {'output':>12} {'bitpacked':>9}",
            ]
            for op in self.bconv_ops:
                r = _bconv_row(op)
                lines.append(
                    f"  {op.index:>4} {r['channels_in']:>5}->{r['filters']:<5} "
                    f"{'x'.join(map(str, r['kernel_size'])):>6} "
                    f"{'x'.join(map(str, r['strides'])):>6} "
                    f"{'x'.join(map(str, r['dilation'])):>4} {r['padding']:>7} "
                    f"{r['pad_values']:>3} {'x'.join(map(str, r['output_shape'])):>12} "
                    f"{'yes' if r['bitpacked_output'] else 'no':>9}"
                )
        return "\n".join(lines)


def _bconv_row(op: OpInfo) -> dict[str, Any]:
    o = op.options
    filt = op.inputs[1] if len(op.inputs) > 1 else ()
    out = op.outputs[0] if op.outputs else ()
    return {
        "op": op.index,
        "channels_in": int(o.get("channels_in", 0)),
        "filters": int(filt[0]) if filt else 0,
        "kernel_size": [int(filt[1]), int(filt[2])] if len(filt) == 4 else [],
        "strides": [int(o.get("stride_height", 1)), int(o.get("stride_width", 1))],
        "dilation": [
            int(o.get("dilation_height_factor", 1)),
            int(o.get("dilation_width_factor", 1)),
        ],
        "padding": _PADDING.get(int(o.get("padding", -1)), str(o.get("padding"))),
        "pad_values": int(o.get("pad_values", 0)),
        "output_shape": [int(d) for d in out[1:]],
        # A bconv writes bitpacked int32 output when its only consumer is a quantizer.
        "bitpacked_output": bool(op.output_types) and op.output_types[0] == "int32",
    }


_PADDING = {0: "SAME", 1: "VALID"}


def _builtin_names() -> set[str]:
    return set(_names()[1].values())


def _decode_custom_options(raw: Any) -> dict[str, Any]:
    """LCE writes its custom options as a flexbuffer map."""
    if raw is None or not len(raw):
        return {}
    try:
        from flatbuffers import flexbuffers

        value = flexbuffers.Loads(bytes(bytearray(raw)))
    except Exception:  # not a flexbuffer map: keep only its size
        return {"raw_options_bytes": len(raw)}
    return dict(value) if isinstance(value, dict) else {}


def _builtin_conv_options(options: Any) -> dict[str, Any]:
    if options is None or not hasattr(options, "strideH"):
        return {}
    return {
        "stride_height": int(options.strideH),
        "stride_width": int(options.strideW),
        "dilation_height_factor": int(getattr(options, "dilationHFactor", 1) or 1),
        "dilation_width_factor": int(getattr(options, "dilationWFactor", 1) or 1),
        "padding": int(options.padding),
    }


def _names() -> tuple[Any, dict[int, str], dict[int, str]]:
    from tensorflow.lite.python import schema_py_generated as schema

    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return schema, ops, types


def read(source: bytes | str | os.PathLike) -> FlatbufferInfo:
    """Parse a flatbuffer (bytes or a path); a ValueError if it is not a TFLite model."""
    what = "The given bytes are"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise ValueError(f"{str(path)!r} is a directory, not a .tflite file")
        if not path.is_file():
            raise FileNotFoundError(f"Flatbuffer {str(path)!r} does not exist")
        buf = path.read_bytes()
        what = f"{str(path)!r} is"
    else:
        buf = bytes(source)
    schema, op_names, type_names = _names()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError(
            f"{what} not a TFLite flatbuffer (no TFL3 identifier); pass a "
            ".tflite file written by `larq_bnas convert` or a TFLite converter"
        )
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    codes = []
    for oc in model.operatorCodes:
        if oc.customCode:
            codes.append(oc.customCode.decode())
        else:
            codes.append(op_names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "UNKNOWN"))
    graph = model.subgraphs[0]

    def shape(i: int) -> tuple[int, ...]:
        t = graph.tensors[i]
        return tuple(int(d) for d in t.shape) if t.shape is not None else ()

    def dtype(i: int) -> str:
        return type_names.get(graph.tensors[i].type, "?").lower()

    info = FlatbufferInfo(size_bytes=len(buf))
    for n, op in enumerate(graph.operators):
        inputs = [i for i in op.inputs if i >= 0]
        name = codes[op.opcodeIndex]
        if name in LCE_OPS:
            options = _decode_custom_options(op.customOptions)
        else:
            options = _builtin_conv_options(op.builtinOptions)
        info.ops.append(
            OpInfo(
                n,
                name,
                [shape(i) for i in inputs],
                [shape(i) for i in op.outputs],
                [dtype(i) for i in inputs],
                options=options,
                output_types=[dtype(i) for i in op.outputs],
            )
        )
    info.input_shapes = [shape(i) for i in graph.inputs]
    info.input_types = [dtype(i) for i in graph.inputs]
    info.output_shapes = [shape(i) for i in graph.outputs]
    info.output_types = [dtype(i) for i in graph.outputs]
    info.buffer_bytes = sum(len(b.data) for b in model.buffers if b.data is not None)
    return info
