"""The one cell schedule of a BNAS network, shared by the network and the search supernet.

Reductions fall at cells ``cells // 3`` and ``2 * cells // 3``, each doubling the
channels. The paper's inter-cell skip connection adds ``s1`` to a normal cell's output
(``"identity"``) and a BN -> 2x2 stride-2 conv of ``s1`` to a reduction cell's output
(``"projection"``); cell 0 has none, and neither has any cell with ``inter_cell_skip``
off ("No Skip").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Skip = Literal["none", "identity", "projection"]


@dataclass(frozen=True)
class CellPlan:
    """Where one cell sits in the stack and what it is wired to."""

    index: int
    channels: int
    reduction: bool
    reduction_prev: bool
    skip: Skip

    @property
    def name(self) -> str:
        return f"cell{self.index}{'_reduce' if self.reduction else ''}"


def reduction_cells(cells: int) -> tuple[int, int]:
    """Indices of the two reduction cells of a ``cells``-cell network."""
    return (cells // 3, 2 * cells // 3)


def cell_schedule(
    cells: int, channels: int, *, inter_cell_skip: bool = True, reduction_prev: bool = False
) -> Iterator[CellPlan]:
    """Yield the plan of each cell. ``reduction_prev`` says whether the stem reduced."""
    reductions = reduction_cells(cells)
    C = channels
    for i in range(cells):
        reduction = i in reductions
        if reduction:
            C *= 2
        skip: Skip
        if not inter_cell_skip or i == 0:
            skip = "none"
        else:
            skip = "projection" if reduction else "identity"
        yield CellPlan(i, C, reduction, reduction_prev, skip)
        reduction_prev = reduction
