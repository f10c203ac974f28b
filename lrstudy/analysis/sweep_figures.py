"""The figures of a sweep over any recipe keys (the grid's cross entries, lrstudy/grid.py):

- sweep_<key>.png: final test accuracy (mean and 95% CI over seeds) against the key's values, one line per
  combination of the entry's other keys, the reference's mean and CI as a band; a log axis where the
  values span a decade or more;
- heatmap_<key1>_<key2>.png, for a cross of two keys: the mean final accuracy of each cell (key1 across,
  key2 up), the cell's seeds, and the cells better or worse than the reference by the verdict of
  stats.csv (family-wise under Holm) marked.

Both are drawn from the aggregate tables and the sweeps (the rule's params); sweep_plots gives
figures.write_figures the ones a study has. Readable from 3 x 3 to 10 x 10 cells: the cells and the
lettering shrink with the grid, and beyond DISTINCT lines a sweep plot colours only the best cell's.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from lrstudy.analysis import stats as st
from lrstudy.analysis.figures import _PALETTE, DISTINCT, OTHERS_COLOUR, Tables, _plain_log_axis, _zoomed
from lrstudy.analysis.sweeps import Cell, best_cell, cells_of, value_text
from lrstudy.config import ALPHA
from lrstudy.grid import Sweep, figure_names

BETTER_COLOUR, WORSE_COLOUR = "#1e8a3a", "#c0392b"
# The cells' colour scale: blue to yellow, no green or red in it, so that the verdicts' frames stand out
# (and readable without colour vision).
CELL_COLOURS = "cividis"
BANDS = 3  # lines up to which each CI is a band along its line (more bands cover each other: bars)
SEED_VALUES_UP_TO = 6  # columns of a heatmap up to which each cell lists its seeds' accuracies (beyond: n)


def sweep_plots(sweeps: Sequence[Sweep]) -> dict[str, Callable[..., Figure]]:
    """Figure name -> a plot(tables, variants) for each sweep figure of these cross entries."""
    plots: dict[str, Callable[..., Figure]] = {}
    for name in figure_names([], sweeps):
        if name.startswith("heatmap_"):
            pair = next(s.keys for s in sweeps if len(s.keys) == 2 and name == f"heatmap_{s.keys[0]}_{s.keys[1]}")
            plots[name] = functools.partial(plot_heatmap, sweeps=sweeps, keys=pair)
        else:
            plots[name] = functools.partial(plot_key_sweep, sweeps=sweeps, key=name.removeprefix("sweep_"))
    return plots


# ------------------------------------------------------------------------------------ against one key


def _lines(stats: pd.DataFrame, sweeps: Sequence[Sweep], key: str) -> list[tuple[str, list[Cell], int]]:
    """(label, cells in the key's order, entry) of each line: a combination of the entry's other keys."""
    entries = [s for s in sweeps if key in s.keys]
    out = []
    for sweep in entries:
        j = sweep.keys.index(key)
        groups: dict[tuple, list[Cell]] = {}
        for cell in cells_of(stats, sweep):
            groups.setdefault(cell.values[:j] + cell.values[j + 1 :], []).append(cell)
        others = sweep.keys[:j] + sweep.keys[j + 1 :]
        for rest, cells in groups.items():
            label = ", ".join(f"{k} {value_text(v)}" for k, v in zip(others, rest, strict=True))
            if len(entries) > 1:
                label = f"grid[{sweep.entry}]" + (f": {label}" if label else "")
            out.append((label or key, cells, sweep.entry))
    return out


def _x_of(values: list) -> tuple[Callable, bool, list]:
    """Where a value goes on the x axis, whether the axis is logarithmic, and the ticks: numbers at
    themselves (log where all are positive and span a decade), anything else in order of appearance."""
    distinct = list(dict.fromkeys(values))
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in distinct):
        log = min(distinct) > 0 and max(distinct) >= 10 * min(distinct)
        return float, log, sorted(distinct)
    position = {v: i for i, v in enumerate(distinct)}
    return position.__getitem__, False, distinct


def plot_key_sweep(tables: Tables, variants: Sequence[str], sweeps: Sequence[Sweep], key: str) -> Figure:
    """Final accuracy against `key`: a line per combination of the other keys of each entry that sweeps it.
    Up to BANDS lines, each CI is a band along its line; more lines get bars, each line's points moved a
    little sideways so that the bars stay apart, and colours in the order of the lines (viridis)."""
    stats = tables["stats"]
    lines = _lines(stats, sweeps, key)
    x_of, log, ticks = _x_of([c.values[s.keys.index(key)] for s in sweeps if key in s.keys for c in cells_of(stats, s)])
    best = best_cell([c for _, cells, _ in lines for c in cells])
    many = len(lines) > DISTINCT
    colours = _line_colours(len(lines))
    dodge = _dodge(sorted({x_of(v) for v in ticks}), log, len(lines))
    fig = Figure(figsize=(8.5, 5.0), layout="constrained")
    ax = fig.subplots()
    handles = _reference_band(ax, stats)
    for i, (label, cells, entry) in enumerate(lines):
        j = next(s.keys.index(key) for s in sweeps if s.entry == entry)
        xs = np.array([dodge(x_of(c.values[j]), i) for c in cells])
        rows = pd.DataFrame([c.row for c in cells])
        highlight = not many or best in cells
        colour = colours[i] if not many else (_PALETTE[0] if highlight else OTHERS_COLOUR)
        _line_with_ci(ax, xs, rows, colour, lw=1.8 if highlight else 0.8, band=len(lines) <= BANDS)
        if highlight:
            handles.append(
                Line2D([], [], color=colour, marker="o", label=label + (" (holds the best cell)" if many else ""))
            )
    if many:
        handles.append(Line2D([], [], color=OTHERS_COLOUR, label=f"the other {len(lines) - 1} combinations"))
    _key_axis(ax, key, log, ticks, x_of)
    ax.set_ylim(*_y_limits(stats, [c for _, cells, _ in lines for c in cells]))
    ax.set(title=f"Final test accuracy against {key}; mean and 95% CI over seeds", ylabel="final test accuracy (%)")
    _bottom_legend(fig, handles)
    return fig


def _line_colours(n: int) -> list:
    """tab10's distinct colours for a few lines; beyond BANDS, an ordered scale (the lines are the values
    of the other keys, in order)."""
    if n <= BANDS:
        return list(_PALETTE[:n])
    return list(matplotlib.colormaps["viridis"](np.linspace(0, 0.92, n)))


def _dodge(positions: list[float], log: bool, lines: int) -> Callable[[float, int], float]:
    """x of line i's point at x, moved sideways by up to a quarter of the closest gap between values
    (on a log axis, by a factor), so that many lines' CI bars do not cover each other."""
    if lines <= BANDS or len(positions) < 2:
        return lambda x, i: x
    where = np.log10(positions) if log else np.array(positions)
    step = 0.5 * float(np.min(np.diff(where))) / lines

    def moved(x: float, i: int) -> float:
        offset = (i - (lines - 1) / 2) * step
        return x * 10**offset if log else x + offset

    return moved


def _line_with_ci(ax, xs: np.ndarray, rows: pd.DataFrame, colour, lw: float, band: bool) -> None:
    """Means joined by a line; the CIs as a band along it, or as bars (`band` False, or where fewer than
    two points have one)."""
    means = rows["final_mean_pct"].to_numpy(float)
    ax.plot(xs, means, color=colour, marker="o", ms=4, lw=lw, zorder=3)
    has_ci = (rows["n"] >= 2).to_numpy()
    low, high = rows["final_ci_low_pct"].to_numpy(float), rows["final_ci_high_pct"].to_numpy(float)
    if band and has_ci.sum() >= 2:
        ax.fill_between(xs[has_ci], low[has_ci], high[has_ci], color=colour, alpha=0.13, lw=0, zorder=1)
    elif has_ci.any():
        ax.errorbar(
            xs[has_ci],
            means[has_ci],
            yerr=[means[has_ci] - low[has_ci], high[has_ci] - means[has_ci]],
            fmt="none",
            color=colour,
            capsize=2.5,
            lw=0.9,
            alpha=0.8,
            zorder=2,
        )


def _key_axis(ax, key: str, log: bool, ticks: list, x_of: Callable) -> None:
    if log:
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis)
    positions = [x_of(v) for v in ticks]
    if len(ticks) <= 12:
        ax.set_xticks(positions, [value_text(v) for v in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in ticks):
        ax.set_xlim(-0.5, len(ticks) - 0.5)
        ax.grid(axis="x", visible=False)
    ax.set_xlabel(key + (" (log scale)" if log else ""))


def _reference(stats: pd.DataFrame) -> pd.Series:
    rows = stats.set_index("variant", drop=False)
    return rows.loc[rows["reference"].iloc[0]]


def _reference_band(ax, stats: pd.DataFrame) -> list:
    """The reference's mean (dotted) and 95% CI (a grey band) across the axes."""
    ref = _reference(stats)
    handles = [Line2D([], [], color="black", ls=":", label=f"{ref['variant']} (reference) mean")]
    if pd.notna(ref["final_mean_pct"]):
        ax.axhline(ref["final_mean_pct"], color="black", ls=":", lw=1, zorder=2)
    if ref["n"] >= 2:
        ax.axhspan(ref["final_ci_low_pct"], ref["final_ci_high_pct"], color="0.85", lw=0, zorder=0)
        handles.append(Patch(color="0.85", label=f"{ref['variant']} 95% CI"))
    return handles


def _y_limits(stats: pd.DataFrame, cells: Sequence[Cell]) -> tuple[float, float]:
    ref = _reference(stats)
    rows = [c.row for c in cells] + [ref]
    means = [r["final_mean_pct"] for r in rows]
    ends = [x for r in rows if r["n"] >= 2 for x in (r["final_ci_low_pct"], r["final_ci_high_pct"])]
    return _zoomed(means, ends)


def _bottom_legend(fig: Figure, handles: list) -> None:
    longest = max(len(h.get_label()) for h in handles)
    ncols = max(1, min(len(handles), int(fig.get_figwidth() * 9 // (longest + 4))))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)


# ---------------------------------------------------------------------------------------------- heatmap


def plot_heatmap(tables: Tables, variants: Sequence[str], sweeps: Sequence[Sweep], keys: tuple[str, str]) -> Figure:
    """Mean final accuracy of each cell of the two-key crosses of `keys` (a panel per entry that crosses
    them), its seeds, and the verdict against the reference marked."""
    stats, summary = tables["stats"], tables["summary"]
    entries = [s for s in sweeps if s.keys == keys]
    columns, rows = max(len(s.values[0]) for s in entries), max(len(s.values[1]) for s in entries)
    cell = max(0.75, min(1.5, 9.0 / columns))
    fig = Figure(figsize=(len(entries) * (1.6 + cell * columns) + 1.2, 1.9 + cell * 0.72 * rows), layout="constrained")
    axes = fig.subplots(1, len(entries), squeeze=False)[0]
    means = [c.row["final_mean_pct"] for s in entries for c in cells_of(stats, s)]
    norm = Normalize(*_colour_range(means))
    seeds = _seed_accuracies(summary)
    for ax, sweep in zip(axes, entries, strict=True):
        image = _heatmap_panel(ax, stats, sweep, norm, seeds, font=max(8.0, min(10.5, 7.5 * cell)))
        if len(entries) > 1:
            ax.set_title(f"grid[{sweep.entry}]", fontsize=10)
    bar = fig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.02)
    bar.set_label("mean final test accuracy (%)")
    ref = _reference(stats)
    if pd.notna(ref["final_mean_pct"]) and norm.vmin <= ref["final_mean_pct"] <= norm.vmax:
        bar.ax.axhline(ref["final_mean_pct"], color="black", ls=":", lw=1.5)
    fig.suptitle(f"Mean final test accuracy per cell: {keys[0]} \u00d7 {keys[1]}")
    _bottom_legend(fig, _heatmap_legend(stats, columns <= SEED_VALUES_UP_TO))
    return fig


def _colour_range(means: list[float]) -> tuple[float, float]:
    finite = [m for m in means if pd.notna(m)]
    if not finite:
        return 0.0, 100.0
    low, high = min(finite), max(finite)
    return (low - 0.5, high + 0.5) if high - low < 1e-9 else (low, high)


def _seed_accuracies(summary: pd.DataFrame) -> dict[str, list[float]]:
    finished = summary[~summary["diverged"].astype(bool)]
    return {v: list(100 * r["final_test_acc"].astype(float)) for v, r in finished.groupby("variant", sort=False)}


def _heatmap_panel(ax, stats: pd.DataFrame, sweep: Sweep, norm: Normalize, seeds: dict, font: float):
    """One entry's cells: key 1 across, key 2 upwards, each with its mean, its seeds and its verdict."""
    xs, ys = sweep.values
    grid = np.full((len(ys), len(xs)), np.nan)
    cells = cells_of(stats, sweep)
    for c in cells:
        grid[ys.index(c.values[1]), xs.index(c.values[0])] = c.row["final_mean_pct"]
    cmap = matplotlib.colormaps[CELL_COLOURS].with_extremes(bad="0.88")
    image = ax.imshow(grid, cmap=cmap, norm=norm, origin="lower", aspect="auto")
    for c in cells:
        x, y = xs.index(c.values[0]), ys.index(c.values[1])
        _cell_text(ax, x, y, c, seeds.get(c.variant, []), cmap(norm(c.row["final_mean_pct"])), font, len(xs))
        _cell_mark(ax, x, y, c.row)
    ax.set_xticks(range(len(xs)), [value_text(v) for v in xs])
    ax.set_yticks(range(len(ys)), [value_text(v) for v in ys])
    ax.set(xlabel=sweep.keys[0], ylabel=sweep.keys[1])
    ax.grid(False)
    return image


def _cell_text(ax, x: int, y: int, cell: Cell, seeds: list[float], colour, font: float, columns: int) -> None:
    row = cell.row
    if pd.isna(row["final_mean_pct"]):
        ax.text(x, y, "all diverged" if row["n_runs"] else "no runs", ha="center", va="center", fontsize=font * 0.8)
        return
    ink = "white" if _luminance(colour) < 0.5 else "black"
    mark = {st.BETTER: "\u25b2 ", st.WORSE: "\u25bc "}.get(row["verdict"], "")
    ax.text(
        x,
        y + 0.1,
        f"{mark}{row['final_mean_pct']:.2f}",
        ha="center",
        va="center",
        fontsize=font,
        color=ink,
        fontweight="bold",
    )
    if columns <= SEED_VALUES_UP_TO and len(seeds) <= 4:
        detail = " ".join(f"{s:.1f}" for s in seeds)
    else:
        detail = f"n={int(row['n'])}"
    if row["n_diverged"]:
        detail += f" +{int(row['n_diverged'])} div."
    ax.text(x, y - 0.22, detail, ha="center", va="center", fontsize=max(6.5, font * 0.72), color=ink)


def _cell_mark(ax, x: int, y: int, row: pd.Series) -> None:
    """A frame round a cell better or worse than the reference, dashed round the reference itself."""
    style = {
        st.BETTER: dict(edgecolor=BETTER_COLOUR, lw=3.0),
        st.WORSE: dict(edgecolor=WORSE_COLOUR, lw=3.0),
        st.REFERENCE: dict(edgecolor="black", lw=1.5, ls="--"),
    }.get(row["verdict"])
    if style:
        ax.add_patch(Rectangle((x - 0.46, y - 0.46), 0.92, 0.92, fill=False, zorder=3, **style))


def _luminance(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _heatmap_legend(stats: pd.DataFrame, seed_values: bool) -> list:
    ref = stats["reference"].iloc[0]
    multiplicity = stats["multiplicity"].iloc[0] if "multiplicity" in stats else "holm"
    how = (
        f"Holm over all {len(stats) - 1} comparisons with {ref}: family-wise \u03b1 = {ALPHA}"
        if multiplicity == "holm"
        else f"each comparison with {ref} on its own at \u03b1 = {ALPHA} (no correction)"
    )
    detail = "each seed's final accuracy" if seed_values else "n = finished seeds"
    return [
        Patch(fill=False, edgecolor=BETTER_COLOUR, lw=2.5, label=f"\u25b2 better than {ref}"),
        Patch(fill=False, edgecolor=WORSE_COLOUR, lw=2.5, label=f"\u25bc worse than {ref}"),
        Line2D([], [], color="none", label=f"verdicts: {how}"),
        Line2D([], [], color="black", ls=":", label=f"{ref} (reference) mean, on the colour bar"),
        Line2D([], [], color="none", label=f"under each mean: {detail}"),
    ]
