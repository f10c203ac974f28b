"""The study's figures, from the aggregate tables. Each is written as PNG (for report.html) and SVG.

Every variant keeps one colour in all figures, fixed by its place in the config, and is named with
what sets it apart (lrstudy.analysis.variants.labels). Curves are the mean over the finished seeds with a +/-1 s.d.
band; a diverged run is drawn dashed up to where it stopped and is left out of the mean.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from lrstudy.analysis.variants import labels  # noqa: E402
from lrstudy.atomic import atomic_path  # noqa: E402

# Same input, same bytes: no timestamps, fixed SVG ids.
matplotlib.rcParams.update({"svg.hashsalt": "lrstudy", "font.size": 10.5, "axes.grid": True, "grid.alpha": 0.3})
_METADATA = {".svg": {"Date": None}, ".png": {"Software": None}}
_PALETTE = matplotlib.colormaps["tab10"].colors
DPI = 150  # PNG resolution: sharp on high-density screens at the size report.html shows them

Tables = dict[str, pd.DataFrame]


def variant_colours(variants: Sequence[str]) -> dict[str, tuple]:
    return {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(variants)}


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


def _curves(ax, epochs: pd.DataFrame, variants: Sequence[str], column: str, scale: float = 1.0) -> None:
    colours = variant_colours(variants)
    for v in variants:
        runs = epochs[epochs["variant"] == v]
        done = runs[~runs["diverged"]]
        if len(done):
            by_epoch = done.groupby("epoch")[column]
            mean, std = by_epoch.mean() * scale, by_epoch.std() * scale
            ax.plot(mean.index, mean, color=colours[v], lw=1.5)
            ax.fill_between(mean.index, mean - std, mean + std, color=colours[v], alpha=0.2, lw=0)
        for _, run in runs[runs["diverged"]].groupby("seed"):
            ax.plot(run["epoch"], run[column] * scale, color=colours[v], ls="--", lw=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _legend(fig: Figure, tables: Tables, variants: Sequence[str], curves: bool = True) -> None:
    """One legend under the panels: each variant's colour, and for mean curves (`curves`) its finished
    seeds and the line styles."""
    colours, names = variant_colours(variants), variant_labels(tables)
    summary = tables["summary"]
    handles = []
    for v in variants:
        n = int((~summary.loc[summary["variant"] == v, "diverged"]).sum())
        label = f"{names[v]}, {n} seed{'s' * (n != 1)}" if curves else names[v]
        handles.append(Line2D([], [], color=colours[v], lw=2, label=label))
    if curves:
        handles.append(Patch(color="0.5", alpha=0.3, label="mean \u00b1 1 s.d. over seeds"))
    if curves and summary["diverged"].any():
        handles.append(Line2D([], [], color="0.3", ls="--", lw=1, label="diverged run (not in the mean)"))
    # As many columns as the labels' length lets the figure's width hold (about 9 characters an inch).
    longest = max(len(h.get_label()) for h in handles)
    ncols = max(1, min(len(handles), int(fig.get_figwidth() * 9 // (longest + 4))))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)


def _last_quarter(epochs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    start = max(1, math.ceil(0.75 * epochs["epoch"].max()))
    return epochs[epochs["epoch"] >= start], start


def plot_accuracy(tables: Tables, variants: Sequence[str]) -> Figure:
    epochs = tables["epochs"]
    fig = Figure(figsize=(11.5, 4.2), layout="constrained")
    ax_test, ax_train, ax_zoom = fig.subplots(1, 3)
    _curves(ax_test, epochs, variants, "test_acc", 100)
    _curves(ax_train, epochs, variants, "train_acc", 100)
    tail, start = _last_quarter(epochs)
    _curves(ax_zoom, tail, variants, "test_acc", 100)
    for ax, title in (
        (ax_test, "Test accuracy"),
        (ax_train, "Train accuracy"),
        (ax_zoom, f"Test accuracy, epochs {start}\u2013{epochs['epoch'].max()} (zoom)"),
    ):
        ax.set(title=title, xlabel="epoch", ylabel="accuracy (%)")
    _legend(fig, tables, variants)
    return fig


def plot_loss(tables: Tables, variants: Sequence[str]) -> Figure:
    epochs = tables["epochs"]
    fig = Figure(figsize=(11.5, 4.2), layout="constrained")
    for ax, column, title in zip(
        fig.subplots(1, 2), ("train_loss", "test_loss"), ("Train loss", "Test loss"), strict=True
    ):
        _curves(ax, epochs, variants, column)
        ax.set(title=title, xlabel="epoch", ylabel="cross-entropy loss (nats, log scale)", yscale="log")
        _plain_log_axis(ax.yaxis)
    _legend(fig, tables, variants)
    return fig


def plot_lr(tables: Tables, variants: Sequence[str]) -> Figure:
    lr = tables["epochs"].groupby(["variant", "epoch"])["lr"].first()  # the same for every seed of a variant
    colours = variant_colours(variants)
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, v in enumerate(variants):
        if v in lr.index.get_level_values("variant"):
            # Variants share the base schedule outside their windows: earlier ones are drawn wider so
            # that every line stays visible where they coincide.
            ax.step(lr[v].index, lr[v], where="mid", color=colours[v], lw=1.2 + 0.9 * (len(variants) - 1 - i))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Learning rate used in each epoch", xlabel="epoch", ylabel="learning rate (SGD step size)")
    _legend(fig, tables, variants, curves=False)
    return fig


def plot_final(tables: Tables, variants: Sequence[str]) -> Figure:
    summary, stats = tables["summary"], tables["stats"].set_index("variant")
    colours, texts = variant_colours(variants), labels(stats, stats["reference"].iloc[0])
    fig = Figure(figsize=(max(7.0, 1.6 * len(variants) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    reference = stats["reference"].iloc[0]
    ax.axhline(stats.loc[reference, "final_mean_pct"], color="0.5", ls=":", lw=1)
    finished = summary[~summary["diverged"]]
    bars = stats[stats["n"] >= 2]
    ax.set_ylim(
        *_zoomed(
            [*(100 * finished["final_test_acc"]), *stats["final_mean_pct"]],
            [*bars["final_ci_low_pct"], *bars["final_ci_high_pct"]],
        )
    )
    for i, v in enumerate(variants):
        runs = finished[finished["variant"] == v]
        offsets = np.linspace(-0.15, 0.15, len(runs)) if len(runs) > 1 else np.zeros(len(runs))
        ax.scatter(i - 0.1 + offsets, 100 * runs["final_test_acc"], color=colours[v], s=22, alpha=0.8, zorder=3)
        row = stats.loc[v]
        ci = [[row["final_mean_pct"] - row["final_ci_low_pct"]], [row["final_ci_high_pct"] - row["final_mean_pct"]]]
        ax.errorbar(
            i + 0.25,
            row["final_mean_pct"],
            yerr=ci if row["n"] >= 2 else None,
            fmt="D",
            ms=6,
            color=colours[v],
            mec="black",
            capsize=4,
            zorder=4,
        )
        if row["n"] >= 2:
            _mark_clipped_ci(ax, i + 0.25, row["final_ci_low_pct"], row["final_ci_high_pct"], colours[v])
    ax.set_xticks(range(len(variants)), [_final_tick(v, texts[v], stats.loc[v]) for v in variants])
    ax.set_xlim(-0.6, len(variants) - 0.4)
    ax.set(title="Final test accuracy per seed; mean and 95% CI", ylabel="final test accuracy (%)")
    ax.grid(axis="x", visible=False)
    fig.legend(
        handles=[
            Line2D([], [], ls="", marker="o", color="0.4", label="one seed"),
            Line2D([], [], ls="", marker="D", color="0.4", mec="black", label="mean, 95% CI bar"),
            Line2D([], [], color="0.5", ls=":", label=f"{reference} (reference) mean"),
        ],
        loc="outside lower center",
        ncols=3,
        frameon=False,
    )
    return fig


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


def _mark_clipped_ci(ax, x: float, low: float, high: float, colour) -> None:
    """A CI bar that runs past the zoomed axis (two seeds give wide ones) ends in an arrow at the edge,
    with the value where it ends."""
    bottom, top = ax.get_ylim()
    ends = ((high > top, f"\u2191 {high:.1f}", 1, "top"), (low < bottom, f"\u2193 {low:.1f}", 0, "bottom"))
    for beyond, text, y, va in ends:
        if beyond:
            ax.annotate(
                text,
                (x, y),
                xycoords=("data", "axes fraction"),
                xytext=(3, 2 - 4 * y),
                textcoords="offset points",
                ha="left",
                va=va,
                fontsize=8,
                color=colour,
            )


def _final_tick(variant: str, text: str, row: pd.Series) -> str:
    lines = [variant, *textwrap.wrap(text, 22), f"n={row['n']}"]
    if row["n_diverged"]:
        lines[-1] += f", {row['n_diverged']} diverged"
    return "\n".join(lines)


PLOTS: dict[str, Callable[[Tables, Sequence[str]], Figure]] = {
    "accuracy": plot_accuracy,
    "loss": plot_loss,
    "lr": plot_lr,
    "final_accuracy": plot_final,
}


def write_figures(tables: Tables, variants: Sequence[str], paths: Iterable[str | Path]) -> None:
    """Draw each figure once and save it to every path named after it (e.g. lr.png and lr.svg)."""
    by_name: dict[str, list[Path]] = {}
    for p in map(Path, paths):
        by_name.setdefault(p.stem, []).append(p)
    unknown = set(by_name) - set(PLOTS)
    if unknown:
        raise ValueError(f"no figure called {sorted(unknown)} (known: {sorted(PLOTS)})")
    for name, targets in by_name.items():
        fig = PLOTS[name](tables, variants)
        for target in targets:
            with atomic_path(target) as tmp:
                fig.savefig(tmp, dpi=DPI, metadata=_METADATA.get(target.suffix.lower()))
