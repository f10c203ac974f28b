"""A sweep read as a sweep: the variants of each cross entry of the grid (lrstudy/grid.py) with their
swept values, the entry's best cell with its verdict, and which swept keys the best cell has at the edge
of their range (then the optimum may lie beyond it).

The values come from the Sweep (the config as written), the numbers from stats.csv (one row per variant).
The best cell is the one with the highest mean final accuracy; no test compares the cells with each other,
so its verdict is its comparison with the reference, nothing more.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from lrstudy.grid import Sweep


@dataclass(frozen=True)
class Cell:
    """One variant of a sweep: its swept values (one per key) and its row of stats.csv."""

    variant: str
    values: tuple
    row: pd.Series


@dataclass(frozen=True)
class Edge:
    """The best cell's value of a numeric key is the largest or the smallest the entry tried."""

    key: str
    side: str  # "largest" | "smallest"
    value: object


@dataclass(frozen=True)
class SweepResult:
    sweep: Sweep
    cells: list[Cell]
    best: Cell | None  # None where no cell has a finished run
    edges: list[Edge]


def cells_of(stats: pd.DataFrame, sweep: Sweep) -> list[Cell]:
    """The entry's variants in its order (the first key slowest), each with its row of `stats` (one row
    per variant, a `variant` column); variants missing from `stats` are left out."""
    rows = stats.set_index("variant", drop=False)
    return [Cell(name, combo, rows.loc[name]) for name, combo in sweep.variants if name in rows.index]


def best_cell(cells: Sequence[Cell]) -> Cell | None:
    """The cell with the highest mean final accuracy (the first of equal ones, in the entry's order)."""
    finished = [c for c in cells if pd.notna(c.row["final_mean_pct"])]
    return max(finished, key=lambda c: c.row["final_mean_pct"], default=None)


def edges(sweep: Sweep, best: Cell | None) -> list[Edge]:
    """Each numeric swept key (of at least two values) whose best value is the largest or smallest tried."""
    if best is None:
        return []
    out = []
    for key, values, value in zip(sweep.keys, sweep.values, best.values, strict=True):
        numeric = [v for v in values if _is_number(v)]
        if len(numeric) < 2 or len(numeric) != len(values):
            continue
        if value == max(numeric):
            out.append(Edge(key, "largest", value))
        elif value == min(numeric):
            out.append(Edge(key, "smallest", value))
    return out


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def results(stats: pd.DataFrame, sweeps: Sequence[Sweep]) -> list[SweepResult]:
    """Every cross entry's cells, best cell and edges."""
    out = []
    for sweep in sweeps:
        cells = cells_of(stats, sweep)
        best = best_cell(cells)
        out.append(SweepResult(sweep, cells, best, edges(sweep, best)))
    return out


def swept_variants(sweeps: Sequence[Sweep]) -> set[str]:
    """The variants some cross entry made: the per-variant tables show them in their entry's table."""
    return {name for s in sweeps for name in s.names}


def value_text(value) -> str:
    """A swept value as a cell reads it: 0.0005, 101;151 (milestones), true."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ";".join(":".join(map(value_text, v)) if isinstance(v, (tuple, list)) else value_text(v) for v in value)
    return str(value)


def shared_text(sweep: Sweep) -> str:
    """The entry's shared recipe in a line: schedule {name: onecycle}, lr_update step."""
    return ", ".join(f"{k} {_inline(v)}" for k, v in sweep.recipe.items())


def _inline(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_inline(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(map(_inline, v)) + "]"
    return value_text(v)


def title(sweep: Sweep) -> str:
    """grid[0]: lr x weight_decay (3 x 2)."""
    times = " \u00d7 "
    return f"grid[{sweep.entry}]: {times.join(sweep.keys)} ({times.join(str(len(v)) for v in sweep.values)})"
