"""The per-variant table for a paper: results/aggregate/stats.md (Markdown) and stats.tex (LaTeX, a booktabs
longtable), from stats.csv. (`lrstudy-compare`, several studies side by side, is lrstudy/analysis/compare.py.)

One row per variant: what it changes (its lr windows and every recipe key in which it differs from the
reference), the final test accuracy as mean +- s.d. over its finished seeds with the 95% CI of the mean,
the difference from the reference with the CI the verdict used (its level in stats.csv's ci_level: wider
than 95% under a family-wise correction), the p-value the verdict used (Holm-adjusted where it applies) and
the verdict, and the seeds (finished of run, diverged). Columns are read by name, so columns stats.csv gains
later do not change these tables.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd

from lrstudy.analysis import stats as st
from lrstudy.analysis import sweeps as sw
from lrstudy.analysis.variants import labels
from lrstudy.atomic import atomic_write_text
from lrstudy.grid import Sweep

HEADERS = ["Variant", "Changes", "Final acc. (%)", "95% CI", "\u0394 vs reference (pts)", "p", "Verdict", "Seeds"]
MINUS = "\u2212"  # a number's minus sign in the cells: "-" in stats.md (pandoc and pdflatex read it), $-$ in stats.tex
BREAK = "\n"  # where a cell's text continues on a new line in stats.tex (a space in stats.md)


def paper_rows(stats: pd.DataFrame, left_out: Collection[str] = ()) -> list[list[str]]:
    """The table's cells, one list per variant, from stats.csv (one row per variant); `left_out`: variants
    shown in a table of their own (a sweep's), never the reference."""
    stats = stats.set_index("variant", drop=False)
    reference = stats["reference"].iloc[0]
    changes = labels(stats, reference)
    rows = []
    for v, r in stats.iterrows():
        if v in left_out and v != reference:
            continue
        is_ref = v == reference
        rows.append([f"{v} (reference)" if is_ref else str(v), changes[v], *_result_cells(r, is_ref)])
    return rows


def _result_cells(r: pd.Series, is_ref: bool) -> list[str]:
    """Final accuracy, its CI, the difference, p, verdict and seeds of a variant's row of stats.csv."""
    return [
        _mean_sd(r["final_mean_pct"], r["final_std_pct"]),
        _interval(r["final_ci_low_pct"], r["final_ci_high_pct"]),
        "" if is_ref else _difference(r),
        "" if is_ref else _p(r),
        "" if is_ref else str(r["verdict"]),
        _seeds(r),
    ]


def sweep_rows(result: sw.SweepResult) -> list[list[str]]:
    """A sweep's table: a row per cell, its swept values first, then its variant and numbers."""
    return [
        [*map(sw.value_text, c.values), c.variant, *_result_cells(c.row, c.variant == c.row["reference"])]
        for c in result.cells
    ]


# The best cell's verdict, as a sentence reads it.
_BEST_VERDICT = {
    st.BETTER: "better than {ref}",
    st.WORSE: "worse than {ref}",
    st.NO_DIFFERENCE: "no detectable difference from {ref}",
    st.NEGLIGIBLE: "a negligible difference from {ref}",
    st.TOO_FEW: "not enough seeds to compare it with {ref}",
    st.REFERENCE: "it is the reference",
}


def sweep_sentences(result: sw.SweepResult) -> str:
    """The best cell with its verdict, and each key at whose edge it lies."""
    best = result.best
    if best is None:
        return "No cell has a finished run."
    r, ref = best.row, best.row["reference"]
    where = ", ".join(f"{k} {sw.value_text(v)}" for k, v in zip(result.sweep.keys, best.values, strict=True))
    verdict = _BEST_VERDICT.get(r["verdict"], str(r["verdict"])).format(ref=ref)
    text = (
        f"Best cell: {where} ({best.variant}), {_number(r['final_mean_pct'])}% mean final accuracy: {verdict}. "
        f"It has the highest mean of the {len(result.cells)} cells; the cells are not tested against each other."
    )
    for e in result.edges:
        text += f" The best {e.key} is the {e.side} tried: extend the range."
    return text


def _number(x: float, digits: int = 2, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "\u2013"
    return (f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}").replace("-", MINUS)


def _mean_sd(mean: float, sd: float) -> str:
    return _number(mean) if pd.isna(sd) else f"{_number(mean)} \u00b1 {_number(sd)}"


def _interval(low: float, high: float, sign: bool = False) -> str:
    return "\u2013" if pd.isna(low) else f"[{_number(low, sign=sign)}, {_number(high, sign=sign)}]"


def _difference(r: pd.Series) -> str:
    """The difference and the CI the verdict used, at its level where that is not 95%; a dash alone where
    there is no difference (a variant whose runs all diverged)."""
    if pd.isna(r.get("diff_pct")):
        return "\u2013"
    text = (
        f"{_number(r['diff_pct'], sign=True)}{BREAK}{_interval(r['diff_ci_low_pct'], r['diff_ci_high_pct'], sign=True)}"
    )
    level = r.get("ci_level")
    if pd.notna(level) and abs(level - 0.95) > 1e-9:
        text += f"{BREAK}({100 * level:.1f}% CI)"
    return text


def _p(r: pd.Series) -> str:
    """The p-value the verdict rests on: Holm-adjusted under a family-wise correction; a sequential
    design's verdict has its own (stats.csv's p_value_adjusted holds it where the design gives one)."""
    p = r.get("p_value_adjusted", r.get("p_value"))
    if pd.isna(p):
        return "\u2013"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _seeds(r: pd.Series) -> str:
    text = f"{int(r['n'])}" if "n" in r and pd.notna(r["n"]) else "0"
    if "n_runs" in r and pd.notna(r["n_runs"]) and int(r["n_runs"]) != int(r.get("n", 0) or 0):
        text += f" of {int(r['n_runs'])}"
    if r.get("n_diverged"):
        text += f", {int(r['n_diverged'])} diverged"
    return text


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells):
        return (
            "| " + " | ".join(str(c).replace(BREAK, " ").replace(MINUS, "-").replace("|", "\\|") for c in cells) + " |"
        )

    return "\n".join([line(headers), line(["---"] * len(headers)), *map(line, rows)]) + "\n"


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_\allowbreak{}",  # a long variant name may break after an underscore (or a hyphen)
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
    "\u00b1": r"$\pm$",
    "\u00a0": "~",
    "\u0394": r"$\Delta$",
    "\u00d7": r"$\times$",
    "\u2013": "--",
    MINUS: r"$-$",
    BREAK: r"\par{}",  # (\newline adds a \hfil, which centres a right-aligned line)
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(c, c) for c in str(text))


# The packages stats.tex needs (docs/report-and-statistics.md names them too).
LATEX_PACKAGES = ["array", "booktabs", "longtable"]


def latex(columns: Sequence[tuple[str, float, str]], rows: Sequence[Sequence[str]], caption: str, label: str) -> str:
    """A longtable (booktabs rules) that fits the text width whatever its cells hold, and continues on the
    next page when it is longer than one: each column is a paragraph column taking its share of
    \\linewidth (`columns`: header, share, "l" or "r" for ragged right or left; the shares sum to 1), so long
    names and labels wrap instead of running off the page. Needs \\usepackage{array,booktabs,longtable}."""
    n = len(columns)
    spec = "".join(
        # \hspace{0pt}: TeX hyphenates a cell's first word too (a long variant name)
        ">{"
        + (r"\raggedright" if align == "l" else r"\raggedleft")
        + r"\arraybackslash\hspace{0pt}}"
        + rf"p{{\dimexpr {share:.4f}\linewidth-2\tabcolsep\relax}}"
        for _, share, align in columns
    )
    header = " & ".join(latex_escape(h) for h, _, _ in columns) + r" \\"
    body = [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    return "\n".join(
        [
            f"% Needs \\usepackage{{{','.join(LATEX_PACKAGES)}}}. A longtable: it breaks across pages by itself.",
            r"\begingroup",
            r"\footnotesize",
            r"\setlength{\tabcolsep}{3pt}",
            r"\setlength{\LTcapwidth}{\linewidth}",
            r"\begin{longtable}{@{}" + spec + "@{}}",
            r"\caption{" + latex_escape(caption) + r"}\label{" + label + r"}\\",
            r"\toprule",
            header,
            r"\midrule",
            r"\endfirsthead",
            r"\caption[]{" + latex_escape(caption.split(":")[0]) + r" (continued)}\\",
            r"\toprule",
            header,
            r"\midrule",
            r"\endhead",
            r"\midrule",
            rf"\multicolumn{{{n}}}{{r@{{}}}}{{\emph{{continued on the next page}}}} \\",
            r"\endfoot",
            r"\bottomrule",
            r"\endlastfoot",
            *body,
            r"\end{longtable}",
            r"\endgroup",
            "",
        ]
    )


# stats.tex's columns: the mean's CI goes under the mean, so seven columns share the text width. The
# shares fit the numbers on one line each on a plain article page (345 pt); a narrower text wraps them.
TEX_COLUMNS = [
    ("Variant", 0.12, "l"),
    ("Changes", 0.155, "l"),
    ("Final acc. (%) mean \u00b1 s.d. [95% CI]", 0.185, "r"),
    ("\u0394 vs reference (pts) [CI]", 0.185, "r"),
    ("p", 0.105, "r"),
    ("Verdict", 0.135, "l"),
    ("Seeds", 0.115, "l"),
]


def tex_rows(rows: Sequence[Sequence[str]]) -> list[list[str]]:
    """stats.md's rows as stats.tex's columns: the mean's CI on a line under the mean."""
    return [[v, changes, f"{mean}{BREAK}{ci}", *rest] for v, changes, mean, ci, *rest in rows]


def caption(stats: pd.DataFrame) -> str:
    multiplicity = stats["multiplicity"].iloc[0] if "multiplicity" in stats else None
    correction = (
        "p-values Holm-adjusted over the comparisons with the reference, CIs of the differences at the matching level"
        if multiplicity == "holm"
        else "each comparison on its own (no correction for multiplicity)"
    )
    return (
        "Final test accuracy per variant: mean \u00b1 s.d. over finished seeds and the 95% CI of the mean; "
        f"difference from the reference (Welch), {correction}."
    )


def label(study: str) -> str:
    """stats.tex's \\label: one per study, so that two studies' tables can sit in one paper."""
    return "tab:lrstudy" if study == "default" else f"tab:lrstudy-{study}"


def sweep_caption(result: sw.SweepResult) -> str:
    shared = sw.shared_text(result.sweep)
    return (
        f"Sweep {sw.title(result.sweep)}"
        + (f", every cell with {shared}" if shared else "")
        + f": final test accuracy per cell, each compared with {result.cells[0].row['reference']}. "
        + sweep_sentences(result)
    )


def sweep_markdown(result: sw.SweepResult) -> str:
    headers = [*result.sweep.keys, HEADERS[0], *HEADERS[2:]]
    return f"\n{sweep_caption(result)}\n\n" + markdown(headers, sweep_rows(result))


def sweep_latex(result: sw.SweepResult, main_label: str) -> str:
    """A sweep's longtable: its keys share the width the main table gives the variant and its changes
    (the variant's name is made from the values, so it is left out); the mean's CI under the mean."""
    k = len(result.sweep.keys)
    share = (TEX_COLUMNS[0][1] + TEX_COLUMNS[1][1]) / k
    columns = [(key, share, "r") for key in result.sweep.keys] + TEX_COLUMNS[2:]
    rows = [[*row[:k], f"{row[k + 1]}{BREAK}{row[k + 2]}", *row[k + 3 :]] for row in sweep_rows(result)]
    return latex(columns, rows, sweep_caption(result), f"{main_label}-grid{result.sweep.entry}")


def write_tables(
    stats_csv: str | Path, md_out: str | Path, tex_out: str | Path, study: str = "default", sweeps: Sequence[Sweep] = ()
) -> None:
    """stats.md and stats.tex: the variants' table, then a table per sweep (the grid's cross entries)."""
    stats = pd.read_csv(stats_csv)
    results = [r for r in sw.results(stats, sweeps) if r.cells]
    rows = paper_rows(stats, sw.swept_variants(sweeps))
    atomic_write_text(md_out, markdown(HEADERS, rows) + "".join(sweep_markdown(r) for r in results))
    main = latex(TEX_COLUMNS, tex_rows(rows), caption(stats), label(study))
    atomic_write_text(tex_out, main + "".join("\n" + sweep_latex(r, label(study)) for r in results))
