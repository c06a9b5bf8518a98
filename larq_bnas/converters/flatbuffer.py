"""Read a TFLite / LCE flatbuffer without the Keras model: its ops, tensors and sizes.

Uses the TFLite schema that TensorFlow ships (``tensorflow.lite.python.schema_py_generated``).
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size_bytes,
            "weights_bytes": self.buffer_bytes,
            "op_counts": self.op_counts,
            "inputs": [{"shape": list(s), "type": t}
                       for s, t in zip(self.input_shapes, self.input_types, strict=True)],
            "outputs": [{"shape": list(s), "type": t}
                        for s, t in zip(self.output_shapes, self.output_types, strict=True)],
        }

    def table(self) -> str:
        lines = [f"{'op':<28} {'count':>6}", "-" * 35]
        lines += [f"{name:<28} {count:>6}" for name, count in self.op_counts.items()]
        lines += [
            "",
            f"file size      {self.size_bytes:,} bytes ({self.size_bytes / 2**20:.3f} MiB)",
            f"weights        {self.buffer_bytes:,} bytes",
            f"inputs         {', '.join(f'{t}{list(s)}' for s, t in zip(self.input_shapes, self.input_types, strict=True))}",
            f"outputs        {', '.join(f'{t}{list(s)}' for s, t in zip(self.output_shapes, self.output_types, strict=True))}",
        ]
        return "\n".join(lines)


def _names() -> tuple[Any, dict[int, str], dict[int, str]]:
    from tensorflow.lite.python import schema_py_generated as schema

    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return schema, ops, types


def read(source: bytes | str | os.PathLike) -> FlatbufferInfo:
    """Parse a flatbuffer (bytes or a path); a ValueError if it is not a TFLite model."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"Flatbuffer {str(path)!r} does not exist")
        buf = path.read_bytes()
    else:
        buf = bytes(source)
    schema, op_names, type_names = _names()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError("Not a TFLite flatbuffer (no TFL3 identifier); pass a .tflite file")
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
        info.ops.append(OpInfo(n, codes[op.opcodeIndex], [shape(i) for i in inputs],
                               [shape(i) for i in op.outputs], [dtype(i) for i in inputs]))
    info.input_shapes = [shape(i) for i in graph.inputs]
    info.input_types = [dtype(i) for i in graph.inputs]
    info.output_shapes = [shape(i) for i in graph.outputs]
    info.output_types = [dtype(i) for i in graph.outputs]
    info.buffer_bytes = sum(len(b.data) for b in model.buffers if b.data is not None)
    return info
