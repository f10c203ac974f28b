"""`lrstudy-compare`: two or more studies' per-variant results side by side, from their stats.csv.

One row per variant of any study. First what the variants are: each recipe key (and the lr windows) as one
column where every study that has the variant agrees on it, one column per study where they do not; then,
per study, the final accuracy (mean, s.d.), the seeds, the difference from the reference and the verdict.
A variant a study lacks has empty cells there. The Markdown and LaTeX tables print each value as the
config writes it (integers as integers, 0.0005 as 0.0005, booleans as true and false, as the CSV does) and
name the keys that are the same in every variant of every study once, under the table, instead of a column
each (a key that no study sets is left out).

A study is shown as current only when the workflow's own staleness check (a dry run of the study,
lrstudy.study_status) finds nothing to do; otherwise its columns say "out of date", with why, and the CSV
has `up_to_date [study]` columns.
"""

from __future__ import annotations

import argparse
import numbers
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lrstudy.analysis.tables import BREAK, MINUS, latex, markdown
from lrstudy.analysis.variants import RECIPE_KEYS, WINDOW_COLUMNS
from lrstudy.atomic import atomic_write_text
from lrstudy.study_status import StatusError, study_status

KEYS = [*WINDOW_COLUMNS, *RECIPE_KEYS]
VALUES = ["final_mean_pct", "final_std_pct", "n", "diff_pct", "verdict"]
DASH = "\u2013"
NBSP = "\u00a0"  # keeps mean \u00b1 s.d. on one line in LaTeX


def compare(studies: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The studies' stats.csv tables (name -> table) side by side: one row per variant of any study."""
    variants = list(dict.fromkeys(v for s in studies.values() for v in s["variant"]))
    has = pd.DataFrame({name: pd.Series(True, index=s["variant"]) for name, s in studies.items()})
    has = has.reindex(variants).fillna(False).astype(bool)
    out = pd.DataFrame(index=pd.Index(variants, name="variant"))
    for key in KEYS:
        per_study = pd.DataFrame(
            {name: s.set_index("variant")[key] for name, s in studies.items() if key in s}, index=variants
        )
        if per_study.empty:
            continue
        # As written where the study has the variant (an empty value is "": a variant without lr windows
        # differs from one with them), NaN where it lacks the variant (that is no disagreement).
        written = per_study.map(written_value).where(has[per_study.columns])
        if (written.nunique(axis=1) <= 1).all():
            out[key] = _typed(per_study.bfill(axis=1).iloc[:, 0])
        else:
            for name in per_study:
                out[f"{key} [{name}]"] = _typed(per_study[name])
    for name, s in studies.items():
        values = s.set_index("variant").reindex(variants)
        for col in VALUES:
            if col in values:
                out[f"{col} [{name}]"] = _typed(values[col]) if col == "n" else values[col]
    return out.reset_index()


def written_value(x) -> str:
    """A value as a config writes it: 200 (not 200.0), 0.0005 (not 0.00), false (YAML's, not Python's
    False); "" for none (stats.csv keeps a key set to null and a key not set alike, as an empty cell)."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, numbers.Integral) or (isinstance(x, numbers.Real) and float(x).is_integer()):
        return str(int(x))
    if isinstance(x, numbers.Real):
        return repr(float(x))  # the shortest text that reads back as the same number
    return str(x)


def csv_table(table: pd.DataFrame) -> str:
    """The table as CSV, booleans as YAML writes them (true, false), which pandas reads back as booleans."""
    return table.map(lambda v: written_value(v) if isinstance(v, (bool, np.bool_)) else v).to_csv(index=False)


def _typed(column: pd.Series) -> pd.Series:
    """Whole numbers read back as floats (a column with an empty cell) as integers again, for the CSV."""
    values = column.dropna()
    if values.empty or any(isinstance(v, (bool, np.bool_, str)) for v in values):
        return column
    if (values.astype(float) % 1 == 0).all():
        return column.astype("Float64").astype("Int64")
    return column


def _cell(column: str, value) -> str:
    """A cell of the Markdown or LaTeX table: accuracies to two decimals (the difference signed, with a
    minus sign), everything else as written."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return DASH
    base = column.split(" [")[0]
    if base in ("final_mean_pct", "final_std_pct"):
        return f"{value:.2f}"
    if base == "diff_pct":
        return f"{value:+.2f}".replace("-", MINUS)
    return written_value(value)


def shared_keys(table: pd.DataFrame) -> dict[str, str]:
    """The recipe keys (one column each) with one value in every variant of every study: "" for a key
    that none sets (another schedule family's parameters, warmup where no study warms up)."""
    out = {}
    for col in table.columns:
        if col in KEYS:
            values = {written_value(v) for v in table[col]}
            if len(values) == 1:
                out[col] = values.pop()
    return out


def text_table(table: pd.DataFrame, fmt: str, studies: Sequence[str], stale: dict[str, str] | None = None) -> str:
    """The table as Markdown or LaTeX: the keys shared by every variant of every study named once, under
    the table (Markdown) or in the caption (LaTeX), instead of a column each. In LaTeX each study's values
    share one column (mean ± s.d., the difference and verdict, the seeds), so that it fits a page.
    `stale`: study -> why it is out of date; its columns say "out of date" and the reason follows the table."""
    stale = stale or {}
    shared = shared_keys(table)
    shown = table.drop(columns=list(shared))
    same = "; ".join(f"{k} {v}" for k, v in shared.items() if v)  # a key no study sets says nothing
    notes = [f"Same in every variant of every study: {same}."] if same else []
    notes += [f"Out of date: {why}." for why in stale.values()]
    if fmt == "md":
        rows = shown.itertuples(index=False)
        cells = [[_cell(col, v) for col, v in zip(shown.columns, row, strict=True)] for row in rows]
        headers = [_marked(col, stale) for col in shown.columns]
        return markdown(headers, cells) + "".join(f"\n{note}\n" for note in notes)
    described = [c for c in shown.columns if c.split(" [")[0] not in VALUES]
    headers = [*described, *(f"{name} (out of date)" if name in stale else name for name in studies)]
    cells = [
        [_cell(c, r[c]) for c in described] + [_study_cell(r, name) for name in studies] for _, r in shown.iterrows()
    ]
    caption = (
        f"Studies compared: {', '.join(studies)}; for each, final test accuracy (%) mean ± s.d., the "
        f"difference from its reference (points) and its verdict, and the finished seeds. {' '.join(notes)}"
    )
    return latex(_columns(headers, cells), cells, caption.strip(), "tab:lrstudy-compare")


def _marked(column: str, stale: dict[str, str]) -> str:
    """ "final_mean_pct [demo]" -> "final_mean_pct [demo, out of date]" for a study that is out of date."""
    base, _, study = column.partition(" [")
    return f"{base} [{study[:-1]}, out of date]" if study[:-1] in stale else column


def _study_cell(row: pd.Series, study: str) -> str:
    """One study's values for a variant, a line each (LaTeX)."""
    if pd.isna(row.get(f"n [{study}]")):
        return DASH
    value = {col: _cell(col, row.get(f"{col} [{study}]")) for col in VALUES}
    verdict = row.get(f"verdict [{study}]")
    difference = "" if pd.isna(row.get(f"diff_pct [{study}]")) else f"{value['diff_pct']} "
    # A variant whose runs all diverged has no mean: its verdict says so ("– ± –" said nothing).
    mean = (
        []
        if pd.isna(row.get(f"final_mean_pct [{study}]"))
        else [f"{value['final_mean_pct']}{NBSP}±{NBSP}{value['final_std_pct']}"]
    )
    return BREAK.join([*mean, f"{difference}{verdict}", f"{value['n']} seeds"])


def _columns(headers: list[str], cells: list[list[str]]) -> list[tuple[str, float, str]]:
    """LaTeX columns sharing the text width in proportion to their longest unbreakable piece of text (a
    header breaks at its spaces and underscores), so that numbers stay on one line where they can."""

    def longest(text: str) -> int:
        return max((len(w) for w in text.replace("_", " ").replace(BREAK, " ").split()), default=1)

    widths = [max([longest(h), *(longest(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    total = sum(widths)
    return [(h, w / total, "l" if i == 0 else "r") for i, (h, w) in enumerate(zip(headers, widths, strict=True))]


def study_stats(study: str, root: Path) -> Path:
    """Where a named study keeps its stats.csv (`default`: results/ at the top)."""
    base = root if study == "default" else root / "studies" / study
    return base / "results" / "aggregate" / "stats.csv"


def out_of_date(root: Path, studies: Sequence[str]) -> dict[str, str]:
    """Study -> why it is out of date, for each study the workflow's own check (its dry run,
    lrstudy.study_status) finds something to do in, or cannot check: its stats.csv may not describe its
    runs and config as they are now."""
    stale = {}
    for study in studies:
        try:
            status = study_status(root, study)
        except StatusError as e:
            stale[study] = f"study {study} could not be checked, so it may be out of date ({str(e).splitlines()[-1]})"
            continue
        if not status.up_to_date:
            stale[study] = status.describe()
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="lrstudy-compare",
        description="Two or more named studies' per-variant results side by side (same recipe keys as columns).",
    )
    ap.add_argument("first", metavar="STUDY", help="a study's name (`default`: the study at the top, results/)")
    ap.add_argument("others", metavar="STUDY", nargs="+", help="the other studies, one or more")
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="the project directory (default: here)")
    ap.add_argument("--format", choices=["md", "csv", "tex"], default="md")
    ap.add_argument("--out", type=Path, help="write here instead of printing")
    args = ap.parse_args(argv)
    tables = {}
    for study in [args.first, *args.others]:
        path = study_stats(study, args.root)
        if not path.is_file():
            ap.error(f"study {study}: no {path} (make it first: snakemake --config study={study})")
        tables[study] = pd.read_csv(path)
    stale = out_of_date(args.root, list(tables))
    for why in stale.values():
        print(f"lrstudy-compare: {why}", file=sys.stderr)
    table = compare(tables)
    if args.format == "csv":
        for study in tables:
            table[f"up_to_date [{study}]"] = study not in stale
        text = csv_table(table)
    else:
        text = text_table(table, args.format, list(tables), stale)
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
