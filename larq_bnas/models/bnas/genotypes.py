"""Genotypes: what a searched BNAS cell is, as a small typed value.

A genotype lists, for the normal and the reduction cell, 8 ``(operation, input)`` pairs:
two per intermediate node, nodes 2..5, where input 0 is the output of cell k-2, input 1
the output of cell k-1, and 2..5 the earlier nodes. ``normal_concat`` / ``reduce_concat``
name the nodes whose outputs the cell concatenates.

Genotypes round-trip through JSON (``to_json`` / ``from_json`` / ``load``) and validate
themselves on construction. The paper's two searched cells ship as ``BNAS_CIFAR``
(gamma = 1) and ``BNAS_IMAGENET`` (gamma = 3).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Operation names a genotype may use. Kept in sync with ``larq_bnas.models.bnas.ops.ALL_PRIMITIVES``
#: (a test checks it) so that this module imports no TensorFlow.
KNOWN_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "bin_dil_conv_3x3",
    "bin_dil_conv_5x5",
    "bin_conv_3x3",
    "bin_conv_5x5",
    "sep_conv_3x3",
    "sep_conv_5x5",
)
NODES = 4
PAIRS = 2 * NODES

Pair = tuple[str, int]


def _as_pairs(value: Any, what: str) -> tuple[Pair, ...]:
    try:
        pairs = tuple((str(op), int(idx)) for op, idx in value)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{what} must be a list of (operation, input index) pairs, got {value!r}"
        ) from err
    return pairs


@dataclass(frozen=True)
class Genotype:
    """A searched cell pair. Validates itself; errors name the bad entry."""

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...] = (2, 3, 4, 5)
    reduce: tuple[Pair, ...] = field(default=())
    reduce_concat: tuple[int, ...] = (2, 3, 4, 5)
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", _as_pairs(self.normal, "normal"))
        object.__setattr__(self, "reduce", _as_pairs(self.reduce, "reduce"))
        object.__setattr__(self, "normal_concat", tuple(int(i) for i in self.normal_concat))
        object.__setattr__(self, "reduce_concat", tuple(int(i) for i in self.reduce_concat))
        for kind in ("normal", "reduce"):
            _validate_cell(kind, getattr(self, kind), getattr(self, f"{kind}_concat"))

    def ops(self) -> set[str]:
        """Every operation name used by either cell."""
        return {op for op, _ in self.normal + self.reduce}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }
        if self.name:
            d["name"] = self.name
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Genotype:
        if not isinstance(d, dict):
            raise ValueError(f"A genotype must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {"normal", "normal_concat", "reduce", "reduce_concat", "name"}
        if unknown:
            raise ValueError(
                f"Unknown genotype keys {sorted(unknown)}; valid keys are normal, "
                "normal_concat, reduce, reduce_concat, name"
            )
        missing = {"normal", "reduce"} - set(d)
        if missing:
            raise ValueError(f"A genotype needs the keys {sorted(missing)}")
        return cls(
            normal=d["normal"],
            normal_concat=d.get("normal_concat", (2, 3, 4, 5)),
            reduce=d["reduce"],
            reduce_concat=d.get("reduce_concat", (2, 3, 4, 5)),
            name=d.get("name"),
        )

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> Path:
        """Write this genotype as JSON (atomically)."""
        from larq_bnas._io import write_text

        return write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Genotype:
        """Read a genotype JSON file written by ``save`` or by a search."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        # A search result file may wrap the genotype: {"genotype": {...}, ...}
        if isinstance(data, dict) and "genotype" in data and "normal" not in data:
            data = data["genotype"]
        return cls.from_dict(data)


def _validate_cell(kind: str, pairs: tuple[Pair, ...], concat: tuple[int, ...]) -> None:
    if len(pairs) != PAIRS:
        raise ValueError(f"{kind} cell needs {PAIRS} (operation, input) pairs, got {len(pairs)}")
    for i, (op, idx) in enumerate(pairs):
        node = i // 2
        if op not in KNOWN_OPS:
            raise ValueError(
                f"{kind}[{i}] = ({op!r}, {idx}): unknown operation {op!r}; "
                f"valid operations are: {', '.join(KNOWN_OPS)}"
            )
        if not 0 <= idx < node + 2:
            raise ValueError(
                f"{kind}[{i}] = ({op!r}, {idx}): node {node + 2} may only take inputs 0..{node + 1}"
            )
    if not concat or any(not 0 <= c < NODES + 2 for c in concat):
        raise ValueError(f"{kind}_concat must name nodes in 0..{NODES + 1}, got {list(concat)}")


def resolve_genotype(value: Genotype | dict | str | os.PathLike) -> Genotype:
    """Turn a Genotype, a dict, a path to a JSON file, a JSON string or a shipped
    genotype's name (``"bnas_cifar"``, ``"bnas_imagenet"``) into a Genotype."""
    if isinstance(value, Genotype):
        return value
    if isinstance(value, dict):
        return Genotype.from_dict(value)
    text = os.fspath(value)
    if text.lower() in GENOTYPES:
        return GENOTYPES[text.lower()]
    if text.lstrip().startswith("{"):
        return Genotype.from_json(text)
    if os.path.exists(text):
        return Genotype.load(text)
    raise ValueError(
        f"Genotype {text!r} is neither a file nor a known genotype; known genotypes are: "
        f"{', '.join(GENOTYPES)} (or pass a path to a genotype JSON file)"
    )


#: The CIFAR-10 cell searched with gamma = 1 (the reference's "latest_cell_zeroise").
BNAS_CIFAR = Genotype(
    normal=(
        ("none", 1),
        ("bin_dil_conv_3x3", 0),
        ("bin_conv_3x3", 1),
        ("none", 2),
        ("none", 2),
        ("none", 3),
        ("none", 3),
        ("none", 4),
    ),
    reduce=(
        ("max_pool_3x3", 0),
        ("none", 1),
        ("max_pool_3x3", 0),
        ("none", 2),
        ("none", 3),
        ("none", 2),
        ("none", 3),
        ("none", 4),
    ),
    name="bnas_cifar",
)

#: The cell derived with gamma = 3 and used for ImageNet (the reference's "latest_cell").
BNAS_IMAGENET = Genotype(
    normal=(
        ("bin_conv_3x3", 1),
        ("bin_dil_conv_3x3", 0),
        ("bin_conv_3x3", 1),
        ("bin_conv_3x3", 2),
        ("bin_conv_3x3", 2),
        ("bin_dil_conv_3x3", 1),
        ("bin_dil_conv_3x3", 1),
        ("bin_conv_3x3", 0),
    ),
    reduce=(
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 0),
        ("bin_conv_3x3", 2),
        ("max_pool_3x3", 0),
        ("bin_dil_conv_3x3", 3),
        ("max_pool_3x3", 0),
        ("bin_dil_conv_3x3", 4),
    ),
    name="bnas_imagenet",
)

#: Shipped genotypes by name.
GENOTYPES: dict[str, Genotype] = {"bnas_cifar": BNAS_CIFAR, "bnas_imagenet": BNAS_IMAGENET}
