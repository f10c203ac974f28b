"""The study's figures, from the aggregate tables. Each is written as PNG (for report.html) and SVG.

Every variant keeps one colour in all figures, fixed by its place in the config, and is named with
what sets it apart (lrstudy.analysis.variants.labels). Curves are the mean over the finished seeds with a +/-1 s.d.
band; a diverged run is drawn dashed up to where it stopped and is left out of the mean.

The figures scale with the grid: up to DISTINCT variants each has its own colour and legend entry; beyond,
the reference is black, the HIGHLIGHTED best are coloured and the rest grey, the final-accuracy figure
turns into one row per variant, and no figure is wider than MAX_WIDTH. A grid study also gets the sweep
plot (final accuracy against each window's factor). Every table is grouped once, so the cost grows
about linearly with the variants.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from lrstudy.analysis.variants import epochs_text, labels, recipe_of_row, window_text, windows  # noqa: E402
from lrstudy.atomic import atomic_path  # noqa: E402
from lrstudy.schedule import lr_at, steps_per_epoch  # noqa: E402

# Same input, same bytes: no timestamps, fixed SVG ids.
matplotlib.rcParams.update({"svg.hashsalt": "lrstudy", "font.size": 10.5, "axes.grid": True, "grid.alpha": 0.3})
_METADATA = {".svg": {"Date": None}, ".png": {"Software": None}}
_PALETTE = matplotlib.colormaps["tab10"].colors
DPI = 150  # PNG resolution: sharp on high-density screens at the size report.html shows them
# Up to DISTINCT variants each get a colour of their own (tab10 has ten that cannot be confused). Beyond,
# colours would repeat: the reference is drawn black, the HIGHLIGHTED best variants in colours, the rest
# thin and grey, and every variant keeps its row in the final-accuracy figure and in stats.csv.
DISTINCT = 10
HIGHLIGHTED = 5
REFERENCE_COLOUR = "black"
OTHERS_COLOUR = "0.7"
MAX_WIDTH = 15.0  # inches: 2250 px at DPI, whatever the number of variants
MAX_ROWS = 60  # variants listed in the final-accuracy figure beyond DISTINCT; the rest are named by count
FEW_EPOCHS = 3  # curves this short get a marker at each epoch (one epoch is a single point, no line)
STEP_POINTS = 4000  # a per-step lr curve is drawn through about this many steps, and every epoch's first and last
PANEL_HEIGHT = 3.4  # inches: a row of panels with their titles and axis labels, above the legend
LEGEND_ROW = 0.24  # inches per row of the legend under the panels

Tables = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Look:
    """How one variant is drawn in every figure."""

    colour: tuple | str
    lw: float
    legend: str | None  # the legend's label prefix ("" for none), None: not in the legend (a grey one)
    rank: int = 0  # place in the legend
    zorder: float = 2


def looks(tables: Tables, variants: Sequence[str]) -> dict[str, Look]:
    """Each variant's colour, width and legend entry; the same in every figure of a study."""
    if len(variants) <= DISTINCT:
        return {v: Look(_PALETTE[i], 1.5, "", rank=i) for i, v in enumerate(variants)}
    stats = tables["stats"].set_index("variant")
    reference = stats["reference"].iloc[0]
    best = stats.drop(index=reference)["final_mean_pct"].dropna().sort_values(ascending=False, kind="stable")
    out = {v: Look(OTHERS_COLOUR, 0.7, None, zorder=1) for v in variants}
    out[reference] = Look(REFERENCE_COLOUR, 2.0, "reference: ", rank=0, zorder=3)
    for rank, v in enumerate(best.index[:HIGHLIGHTED], start=1):
        out[v] = Look(_PALETTE[rank - 1], 1.6, f"best #{rank}: ", rank=rank, zorder=3)
    return out


def variant_labels(tables: Tables) -> dict[str, str]:
    """Variant -> "lr_x5 (x5 for epochs 50–99)"."""
    stats = tables["stats"].set_index("variant")
    return {v: f"{v} ({text})" for v, text in labels(stats, stats["reference"].iloc[0]).items()}


class PlainLogLocator(Locator):
    """Major ticks of a log axis at values that read as plain decimals: 1, 2 and 5 of each decade (only
    1 over more than three decades), or, where fewer than three of those fall in view (a short run's loss
    spans 1.3 to 2.1), evenly spaced round values."""

    def __init__(self):
        self._decades = LogLocator(subs=(1.0,))
        self._one_two_five = LogLocator(subs=(1.0, 2.0, 5.0))
        self._linear = MaxNLocator(nbins=5)

    def set_axis(self, axis):
        super().set_axis(axis)
        self._decades.set_axis(axis)
        self._one_two_five.set_axis(axis)

    def __call__(self):
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, vmin, vmax):
        vmin, vmax = sorted((vmin, vmax))
        log = self._decades if vmax > 1000 * vmin else self._one_two_five
        ticks = log.tick_values(vmin, vmax)
        if ((ticks >= vmin) & (ticks <= vmax)).sum() >= 3:
            return ticks
        ticks = self._linear.tick_values(vmin, vmax)
        return ticks[ticks > 0]


def plain_number(value: float, _pos=None) -> str:
    """0.2, 1, 2.5: never 2x10^-1."""
    return np.format_float_positional(value, precision=6, trim="-")


def _plain_log_axis(axis) -> None:
    axis.set_major_locator(PlainLogLocator())
    axis.set_major_formatter(FuncFormatter(plain_number))
    axis.set_minor_formatter(NullFormatter())


def _epoch_axis(ax, last: int, first: int = 1) -> None:
    """Integer epochs; a few epochs (a short run, or a short run's zoom from `first`) get one tick each and
    room either side (a single epoch would otherwise sit on an axis of fractional ticks)."""
    if last - first < 5:
        ax.set_xlim(first - 0.5, last + 0.5)
        ax.set_xticks(range(first, last + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _curves(
    ax,
    epochs: pd.DataFrame,
    variants: Sequence[str],
    look: dict[str, Look],
    column: str,
    scale: float = 1.0,
    seed_lines: bool = False,
) -> None:
    """Mean over finished seeds with a +-1 s.d. band per variant (grey ones: the mean only); diverged runs
    dashed; with `seed_lines`, each finished seed of a coloured variant as a thin line under its mean.
    One groupby over all rows, so the cost grows with the rows, not with rows x variants."""
    marker = "o" if epochs["epoch"].nunique() <= FEW_EPOCHS else None
    done = epochs[~epochs["diverged"]]
    moments = done.groupby(["variant", "epoch"], sort=False)[column].agg(["mean", "std"]) * scale
    by_variant = {v: m.droplevel(0) for v, m in moments.groupby(level="variant", sort=False)}
    for v in variants:
        if v not in by_variant:
            continue
        m, style = by_variant[v], look[v]
        ax.plot(m.index, m["mean"], color=style.colour, lw=style.lw, marker=marker, ms=4, zorder=style.zorder)
        if style.legend is not None:
            ax.fill_between(
                m.index, m["mean"] - m["std"], m["mean"] + m["std"], color=style.colour, alpha=0.2, lw=0, zorder=1
            )
    if seed_lines:
        for (v, _), run in done.groupby(["variant", "seed"], sort=False):
            if look[v].legend is not None:
                ax.plot(
                    run["epoch"],
                    run[column] * scale,
                    color=look[v].colour,
                    lw=0.5,
                    alpha=0.45,
                    marker=marker,
                    ms=2,
                    zorder=1.5,
                )
    for (v, _), run in epochs[epochs["diverged"]].groupby(["variant", "seed"], sort=False):
        ax.plot(run["epoch"], run[column] * scale, color=look[v].colour, ls="--", lw=1, marker=marker, ms=3)
    _epoch_axis(ax, int(epochs["epoch"].max()), int(epochs["epoch"].min()))


def _legend(
    fig: Figure,
    tables: Tables,
    variants: Sequence[str],
    look: dict[str, Look],
    curves: bool = True,
    seed_lines: bool = False,
) -> None:
    """One legend under the panels: each coloured variant (in highlight mode the reference, then the
    best by final mean), for mean curves (`curves`) its finished seeds and the line styles, and how many
    variants are drawn grey."""
    names = variant_labels(tables)
    summary = tables["summary"]
    finished = summary.loc[~summary["diverged"].astype(bool), "variant"].value_counts()
    shown = sorted((v for v in variants if look[v].legend is not None), key=lambda v: look[v].rank)
    handles = []
    for v in shown:
        n = int(finished.get(v, 0))
        label = look[v].legend + names[v] + (f", {n} seed{'s' * (n != 1)}" if curves else "")
        handles.append(Line2D([], [], color=look[v].colour, lw=2, label=label))
    grey = len(variants) - len(shown)
    if grey:
        handles.append(
            Line2D(
                [],
                [],
                color=OTHERS_COLOUR,
                lw=1,
                label=f"the other {grey} variants (each in the final accuracy figure)",
            )
        )
    if curves:
        handles.append(Patch(color="0.5", alpha=0.3, label="mean \u00b1 1 s.d. over seeds"))
    if curves and seed_lines:
        handles.append(Line2D([], [], color="0.5", lw=0.5, label="one seed"))
    if curves and summary["diverged"].any():
        handles.append(Line2D([], [], color="0.3", ls="--", lw=1, label="diverged run (not in the mean)"))
    # As many columns as the labels' length lets the figure's width hold (about 9 characters an inch).
    longest = max(len(h.get_label()) for h in handles)
    ncols = max(1, min(len(handles), int(fig.get_figwidth() * 9 // (longest + 4))))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)
    # The legend takes its rows from the figure's height: add them, so that the panels (and their axis
    # labels) keep their size however many variants are named.
    rows = math.ceil(len(handles) / ncols)
    fig.set_figheight(PANEL_HEIGHT + LEGEND_ROW * rows)


def _last_quarter(epochs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    start = max(1, math.ceil(0.75 * epochs["epoch"].max()))
    return epochs[epochs["epoch"] >= start], start


def _panels(n: int) -> Figure:
    return Figure(figsize=(min(MAX_WIDTH, 0.5 + 3.8 * n), 4.2), layout="constrained")


def plot_accuracy(tables: Tables, variants: Sequence[str], seed_lines: bool = False) -> Figure:
    """Test and train accuracy, and the last quarter zoomed (left out where it would hold one epoch)."""
    epochs, look = tables["epochs"], looks(tables, variants)
    tail, start = _last_quarter(epochs)
    last = epochs["epoch"].max()
    panels = [(epochs, "test_acc", "Test accuracy"), (epochs, "train_acc", "Train accuracy")]
    if last > start:
        panels.append((tail, "test_acc", f"Test accuracy, epochs {start}\u2013{last} (zoom)"))
    fig = _panels(len(panels))
    for ax, (rows, column, title) in zip(fig.subplots(1, len(panels)), panels, strict=True):
        _curves(ax, rows, variants, look, column, 100, seed_lines)
        ax.set(title=title, xlabel="epoch", ylabel="accuracy (%)")
    _legend(fig, tables, variants, look, seed_lines=seed_lines)
    return fig


def plot_loss(tables: Tables, variants: Sequence[str], seed_lines: bool = False) -> Figure:
    epochs, look = tables["epochs"], looks(tables, variants)
    fig = _panels(3)
    for ax, column, title in zip(
        fig.subplots(1, 2), ("train_loss", "test_loss"), ("Train loss", "Test loss"), strict=True
    ):
        _curves(ax, epochs, variants, look, column, seed_lines=seed_lines)
        ax.set(title=title, xlabel="epoch", ylabel="cross-entropy (nats, log scale)", yscale="log")
        _plain_log_axis(ax.yaxis)
    _legend(fig, tables, variants, look, seed_lines=seed_lines)
    return fig


def plot_lr(tables: Tables, variants: Sequence[str]) -> Figure:
    """The lr of every epoch, and of every step where the schedule advanced at each step (as the runs'
    recipes compute it, for the epochs they ran: validation checked it against each epoch's first and last
    step). Beyond DISTINCT variants, where the reference and the highlighted best stay below half the
    largest lr, a second panel holds them on their own scale: a grid's large factors would press them flat
    at 0."""
    epochs = tables["epochs"]
    lr = epochs.groupby(["variant", "epoch"], sort=False)["lr"].first()  # the same for every seed of a variant
    by_variant = {v: s.droplevel(0) for v, s in lr.groupby(level="variant", sort=False)}
    described = tables["stats"].set_index("variant")
    look = looks(tables, variants)
    marker = "o" if epochs["epoch"].nunique() <= FEW_EPOCHS else None
    drawn = [v for v in variants if v in by_variant]
    curves = {
        v: _step_curve(described.loc[v], int(by_variant[v].index.max()))
        if described.loc[v, "lr_update"] == "step"
        else None
        for v in drawn
    }
    peak = {v: (by_variant[v] if curves[v] is None else curves[v][1]).max() for v in drawn}
    title = (
        "Learning rate at every step"
        if any(c is not None for c in curves.values())
        else ("Learning rate used in each epoch")
    )
    panels = [(drawn, title)]
    named = [v for v in drawn if look[v].legend is not None]
    top = max((peak[v] for v in drawn), default=0)
    if len(variants) > DISTINCT and max((peak[v] for v in named), default=top) < top / 2:
        panels = [
            (drawn, "Every variant"),
            (named, f"The reference and the {HIGHLIGHTED} best means,\nown scale (an untested order)"),
        ]
    fig = _panels(len(panels)) if len(panels) > 1 else Figure(figsize=(8, 4.2), layout="constrained")
    for ax, (shown, name) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        # Variants share the base schedule outside their windows: the colours are drawn over each other
        # from wide to narrow (at most 6 pt) so that every one stays visible where they coincide; in
        # highlight mode the reference is a wide black line under the highlighted ones.
        wider = min(0.9, 4.5 / max(len(shown) - 1, 1))
        for i, v in enumerate(shown):
            style = look[v]
            if len(variants) <= DISTINCT:
                lw = 1.2 + wider * (len(shown) - 1 - i)
            else:
                lw = 4.0 if style.colour == REFERENCE_COLOUR else style.lw
            line = dict(color=style.colour, lw=lw, zorder=style.zorder if style.colour != REFERENCE_COLOUR else 2)
            if curves[v] is not None:
                ax.plot(*curves[v], **line)
            else:
                ax.step(by_variant[v].index, by_variant[v], where="mid", marker=marker, **line)
        _epoch_axis(ax, int(epochs["epoch"].max()))
        ax.set(title=name, xlabel="epoch", ylabel="learning rate (SGD step size)")
    if len(panels) > 1:
        fig.suptitle(title)
    _legend(fig, tables, variants, look, curves=False)
    return fig


def _step_curve(row: pd.Series, last_epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(epoch axis position, lr) of the steps of the epochs 1..last_epoch of the run a stats row describes:
    step k of an epoch of S steps sits at epoch + (k + 0.5) / S - 0.5, so that an epoch spans its tick's
    half-width either side, as in the per-epoch curves. About STEP_POINTS steps, and every epoch's first and
    last (where windows and milestones act)."""
    recipe = recipe_of_row(row)
    steps = steps_per_epoch(int(row["train_size"]), recipe.batch_size)
    total = last_epoch * steps
    stride = max(1, total // STEP_POINTS)
    ends = {k for e in range(last_epoch) for k in (e * steps, e * steps + steps - 1)}
    picked = np.array(sorted(set(range(0, total, stride)) | ends))
    return picked / steps + 0.5 + 0.5 / steps, np.array([lr_at(recipe, int(k), steps) for k in picked])


def plot_final(tables: Tables, variants: Sequence[str]) -> Figure:
    """Final accuracy of each seed, each variant's mean and CI: a column per variant up to DISTINCT, a
    row per variant (best first) beyond."""
    if len(variants) > DISTINCT:
        return _final_rows(tables, variants)
    summary, stats = tables["summary"], tables["stats"].set_index("variant")
    look, texts = looks(tables, variants), labels(stats, stats["reference"].iloc[0])
    fig = Figure(figsize=(min(MAX_WIDTH, max(7.0, 1.5 * len(variants) + 2)), 4.2), layout="constrained")
    ax = fig.subplots()
    reference = stats["reference"].iloc[0]
    ax.axhline(stats.loc[reference, "final_mean_pct"], color="0.5", ls=":", lw=1)
    finished = summary[~summary["diverged"]]
    ax.set_ylim(*_final_limits(finished, stats))
    for i, v in enumerate(variants):
        runs = finished[finished["variant"] == v]
        offsets = np.linspace(-0.15, 0.15, len(runs)) if len(runs) > 1 else np.zeros(len(runs))
        colour = look[v].colour
        ax.scatter(i - 0.1 + offsets, 100 * runs["final_test_acc"], color=colour, s=22, alpha=0.8, zorder=3)
        row = stats.loc[v]
        ax.errorbar(
            i + 0.25,
            row["final_mean_pct"],
            yerr=_ci_bar(row),
            fmt="D",
            ms=6,
            color=colour,
            mec="black",
            capsize=4,
            zorder=4,
        )
        if row["n"] >= 2:
            _mark_clipped_ci(ax, i + 0.25, row["final_ci_low_pct"], row["final_ci_high_pct"], colour)
    ax.set_xticks(range(len(variants)), [_final_tick(v, texts[v], stats.loc[v]) for v in variants])
    ax.set_xlim(-0.6, len(variants) - 0.4)
    ax.set(title="Final test accuracy per seed; mean and 95% CI", ylabel="final test accuracy (%)")
    ax.grid(axis="x", visible=False)
    _final_legend(fig, reference)
    return fig


def _ci_bar(row) -> list[list[float]] | None:
    """A variant's 95% CI of the final accuracy as error-bar lengths below and above its mean; none
    with fewer than two runs."""
    if row["n"] < 2:
        return None
    return [[row["final_mean_pct"] - row["final_ci_low_pct"]], [row["final_ci_high_pct"] - row["final_mean_pct"]]]


def _final_rows(tables: Tables, variants: Sequence[str]) -> Figure:
    """Many variants: one row each, best mean at the top, the reference's CI as a band across all rows.
    Beyond MAX_ROWS rows, the best and the worst are drawn and the count of those left out is said."""
    summary, stats = tables["summary"], tables["stats"].set_index("variant").loc[list(variants)]
    reference = stats["reference"].iloc[0]
    look, texts = looks(tables, variants), labels(stats, reference)
    order = list(stats["final_mean_pct"].sort_values(ascending=False, na_position="last", kind="stable").index)
    if len(order) > MAX_ROWS:  # the best, the worst 10 and the reference, in their order
        kept = {*order[: MAX_ROWS - 10], *order[-10:], reference}
        order = [v for v in order if v in kept]
    left_out = len(variants) - len(order)
    fig = Figure(figsize=(10, 1.8 + 0.22 * len(order)), layout="constrained")
    ax = fig.subplots()
    ref = stats.loc[reference]
    if ref["n"] >= 2:
        ax.axvspan(ref["final_ci_low_pct"], ref["final_ci_high_pct"], color="0.85", lw=0, zorder=0)
    ax.axvline(ref["final_mean_pct"], color="0.4", ls=":", lw=1)
    finished = summary[~summary["diverged"]]
    ax.set_xlim(*_final_limits(finished[finished["variant"].isin(order)], stats.loc[order]))
    seeds = {v: 100 * r["final_test_acc"].to_numpy() for v, r in finished.groupby("variant", sort=False)}
    for y, v in enumerate(order):
        row, colour = stats.loc[v], look[v].colour if look[v].legend is not None else "0.35"
        x = seeds.get(v, np.array([]))
        ax.scatter(x, np.full(len(x), y + 0.15), color=colour, s=10, alpha=0.7, zorder=3)
        ax.errorbar(
            row["final_mean_pct"],
            y - 0.1,
            xerr=_ci_bar(row),
            fmt="D",
            ms=4,
            color=colour,
            mec="black",
            mew=0.5,
            capsize=2,
            lw=1,
            zorder=4,
        )
        if row["n"] >= 2:
            _mark_clipped_ci(ax, y - 0.1, row["final_ci_low_pct"], row["final_ci_high_pct"], colour, across=True)
    ax.set_yticks(range(len(order)), [_row_label(v, texts[v], stats.loc[v], look[v]) for v in order], fontsize=8)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.grid(axis="y", visible=False)
    # The order invites comparisons between variants that no verdict makes: the title says so.
    title = f"Final test accuracy per seed; mean and 95% CI ({len(variants)} variants)"
    title += "\nhighest mean first: an order no test controls"
    if left_out:
        title += f"\n{left_out} variants between the best {MAX_ROWS - 10} and the worst 10 left out: see stats.csv"
    ax.set(title=title, xlabel="final test accuracy (%)")
    _final_legend(fig, reference, band=ref["n"] >= 2)
    return fig


def _row_label(variant: str, text: str, row: pd.Series, look: Look) -> str:
    prefix = look.legend.removesuffix(": ") + "  " if look.legend else ""
    diverged = f", {row['n_diverged']} diverged" if row["n_diverged"] else ""
    return f"{prefix}{variant} ({textwrap.shorten(text, 40)}), n={row['n']}{diverged}"


def _final_limits(finished: pd.DataFrame, stats: pd.DataFrame) -> tuple[float, float]:
    bars = stats[stats["n"] >= 2]
    return _zoomed(
        [*(100 * finished["final_test_acc"]), *stats["final_mean_pct"]],
        [*bars["final_ci_low_pct"], *bars["final_ci_high_pct"]],
    )


def _final_legend(fig: Figure, reference: str, band: bool = False) -> None:
    handles = [
        Line2D([], [], ls="", marker="o", color="0.4", label="one seed"),
        Line2D([], [], ls="", marker="D", color="0.4", mec="black", label="mean, 95% CI bar"),
        Line2D([], [], color="0.5", ls=":", label=f"{reference} (reference) mean"),
    ]
    if band:
        handles.append(Patch(color="0.85", label=f"{reference} 95% CI"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)


def sweep_points(stats: pd.DataFrame) -> dict[tuple[int, int], pd.DataFrame]:
    """(start, end) of a window -> its variants' final accuracy (factor, mean, CI, n), sorted by factor.
    A variant counts when a single lr window is all that sets it apart from the reference (as a grid
    makes them); `stats` has one row per variant (index: variant) with the description columns."""
    reference = stats["reference"].iloc[0]
    texts = labels(stats, reference)
    rows: dict[tuple[int, int], list] = {}
    for v, row in stats.iterrows():
        ws = windows(row)
        if v != reference and len(ws) == 1 and texts[v] == window_text(*ws[0]):
            start, end, factor = ws[0]
            rows.setdefault((start, end), []).append(
                (v, factor, row["final_mean_pct"], row["final_ci_low_pct"], row["final_ci_high_pct"], row["n"])
            )
    columns = ["variant", "factor", "mean", "ci_low", "ci_high", "n"]
    return {w: pd.DataFrame(r, columns=columns).sort_values("factor") for w, r in sorted(rows.items())}


def plot_sweep(tables: Tables, variants: Sequence[str]) -> Figure:
    """Final accuracy (mean, 95% CI band) against the lr factor, one line per window; the reference's
    mean and CI as a horizontal band."""
    stats = tables["stats"].set_index("variant").loc[list(variants)]
    reference = stats["reference"].iloc[0]
    points = sweep_points(stats)
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.subplots()
    ref = stats.loc[reference]
    handles = [Line2D([], [], color="black", ls=":", label=f"{reference} (reference) mean")]
    ax.axhline(ref["final_mean_pct"], color="black", ls=":", lw=1)
    if ref["n"] >= 2:
        ax.axhspan(ref["final_ci_low_pct"], ref["final_ci_high_pct"], color="0.85", lw=0, zorder=0)
        handles.append(Patch(color="0.85", label=f"{reference} 95% CI"))
    factors = sorted({f for p in points.values() for f in p["factor"]})
    if len(factors) == 1 and len(points) > 1:
        return _sweep_over_windows(fig, ax, points, factors[0], handles)
    colours = _PALETTE if len(points) <= DISTINCT else matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(points)))
    for colour, ((start, end), p) in zip(colours, points.items(), strict=False):
        ax.plot(p["factor"], p["mean"], color=colour, marker="o", ms=4, lw=1.5, zorder=3)
        ci = p[p["n"] >= 2]
        # A band joins the intervals along the line; a window with one factor has a bar instead.
        if len(ci) >= 2:
            ax.fill_between(ci["factor"], ci["ci_low"], ci["ci_high"], color=colour, alpha=0.15, lw=0, zorder=1)
        else:
            ax.errorbar(
                ci["factor"],
                ci["mean"],
                yerr=[ci["mean"] - ci["ci_low"], ci["ci_high"] - ci["mean"]],
                fmt="none",
                color=colour,
                capsize=4,
                alpha=0.7,
            )
        handles.append(Line2D([], [], color=colour, marker="o", label=epochs_text(start, end)))
    if not points:
        ax.text(
            0.5,
            0.5,
            "no variant differs from the reference by a single lr window only",
            ha="center",
            transform=ax.transAxes,
        )
    if factors and factors[0] > 0 and factors[-1] >= 4 * factors[0]:
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis)
    if factors and len(factors) <= 12:
        ax.set_xticks(factors, [plain_number(f) for f in factors])
    ax.set(
        title="Final test accuracy against the lr window's factor; mean and 95% CI over seeds",
        xlabel="lr factor inside the window",
        ylabel="final test accuracy (%)",
    )
    _sweep_legend(fig, handles)
    return fig


def _sweep_over_windows(fig: Figure, ax, points: dict, factor: float, handles: list) -> Figure:
    """A sweep of one factor over several windows: final accuracy against the window (against the factor
    they would be dots on one x)."""
    rows = pd.concat([p.assign(start=start, end=end) for (start, end), p in points.items()], ignore_index=True)
    x = np.arange(len(rows))
    ax.plot(x, rows["mean"], color=_PALETTE[0], marker="o", ms=5, lw=1.5, zorder=3)
    ci = rows[rows["n"] >= 2]
    ax.errorbar(
        x[ci.index],
        ci["mean"],
        yerr=[ci["mean"] - ci["ci_low"], ci["ci_high"] - ci["mean"]],
        fmt="none",
        color=_PALETTE[0],
        capsize=4,
        alpha=0.7,
    )
    ax.set_xticks(x, [epochs_text(s, e) for s, e in zip(rows["start"], rows["end"], strict=True)])
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.grid(axis="x", visible=False)
    ax.set(
        title=f"Final test accuracy against the lr window (x{plain_number(factor)} inside it); mean and 95% CI",
        xlabel="lr window",
        ylabel="final test accuracy (%)",
    )
    handles.append(Line2D([], [], color=_PALETTE[0], marker="o", label=f"x{plain_number(factor)} in the window"))
    _sweep_legend(fig, handles)
    return fig


def _sweep_legend(fig: Figure, handles: list) -> None:
    longest = max(len(h.get_label()) for h in handles)
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=max(1, min(len(handles), int(8 * 9 // (longest + 4)))),
        frameon=False,
    )


def _zoomed(points: Sequence[float], bar_ends: Sequence[float], pad: float = 0.08) -> tuple[float, float]:
    """y limits around the points, widened for CI bar ends that lie within the points' range again beyond
    them (farther ones, as two seeds give, would squash the points), with a little room each side."""
    points = [x for x in points if np.isfinite(x)]
    if not points:
        return 0.0, 100.0
    low, high = min(points), max(points)
    reach = max(high - low, 0.2)
    near = [x for x in bar_ends if np.isfinite(x) and low - reach <= x <= high + reach]
    low, high = min([low, *near]), max([high, *near])
    room = pad * max(high - low, 0.2)
    return low - room, high + room


def _mark_clipped_ci(ax, at: float, low: float, high: float, colour, across: bool = False) -> None:
    """A CI bar that runs past the zoomed axis (two seeds give wide ones) ends in an arrow at the edge,
    with the value where it ends. The bar is vertical at x = `at`, or with `across` horizontal at y = `at`."""
    bottom, top = ax.get_xlim() if across else ax.get_ylim()
    for beyond, value, edge in ((high > top, high, 1), (low < bottom, low, 0)):
        if not beyond:
            continue
        if across:
            text = f"{value:.1f} \u2192" if edge else f"\u2190 {value:.1f}"
            where, coords, offset = (edge, at), ("axes fraction", "data"), (2 - 4 * edge, -2)
            ha, va = ("right" if edge else "left"), "top"  # under the bar, clear of the row above
        else:
            text = f"\u2191 {value:.1f}" if edge else f"\u2193 {value:.1f}"
            where, coords, offset = (at, edge), ("data", "axes fraction"), (3, 2 - 4 * edge)
            ha, va = "left", ("top" if edge else "bottom")
        ax.annotate(
            text,
            where,
            xycoords=coords,
            xytext=offset,
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=8,
            color=colour,
        )


def _final_tick(variant: str, text: str, row: pd.Series) -> str:
    lines = [variant, *textwrap.wrap(text, 22), f"n={row['n']}"]
    if row["n_diverged"]:
        lines[-1] += f", {row['n_diverged']} diverged"
    return "\n".join(lines)


PLOTS: dict[str, Callable[..., Figure]] = {
    "accuracy": plot_accuracy,
    "loss": plot_loss,
    "lr": plot_lr,
    "final_accuracy": plot_final,
    "sweep": plot_sweep,  # drawn for a grid study (workflow/rules/analysis.smk)
}
SEED_LINES = ("accuracy", "loss")  # the figures that draw each seed's curve when asked to


def write_figures(
    tables: Tables,
    variants: Sequence[str],
    paths: Iterable[str | Path],
    seed_lines: bool = False,
    plots: Mapping[str, Callable[..., Figure]] | None = None,
) -> None:
    """Draw each figure once and save it to every path named after it (e.g. lr.png and lr.svg); with
    `seed_lines`, the curves show each finished seed thinly under the means. `plots`: more figures by name
    beside PLOTS (a sweep's, lrstudy.analysis.sweep_figures.sweep_plots)."""
    known = {**PLOTS, **(plots or {})}
    by_name: dict[str, list[Path]] = {}
    for p in map(Path, paths):
        by_name.setdefault(p.stem, []).append(p)
    unknown = set(by_name) - set(known)
    if unknown:
        raise ValueError(f"no figure called {sorted(unknown)} (known: {sorted(known)})")
    for name, targets in by_name.items():
        options = {"seed_lines": seed_lines} if name in SEED_LINES else {}
        fig = known[name](tables, variants, **options)
        for target in targets:
            with atomic_path(target) as tmp:
                fig.savefig(tmp, dpi=DPI, metadata=_METADATA.get(target.suffix.lower()))
