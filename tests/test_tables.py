"""stats.md and stats.tex from stats.csv, and lrstudy-compare across named studies."""

from __future__ import annotations

import re
import shutil
import subprocess

import pandas as pd
import pytest
from synthetic_runs import KNOWN, analyse, grid_finals

from lrstudy.analysis import tables

SMALL = {k: v[:3] for k, v in KNOWN.items()}


def test_markdown_and_latex_tables_have_a_row_per_variant_with_its_numbers(tmp_path):
    analyse(tmp_path, SMALL)
    stats_csv = tmp_path / "results/aggregate/stats.csv"
    tables.write_tables(stats_csv, tmp_path / "stats.md", tmp_path / "stats.tex")
    stats = pd.read_csv(stats_csv).set_index("variant")
    md = (tmp_path / "stats.md").read_text().splitlines()
    assert md[0] == "| " + " | ".join(tables.HEADERS) + " |" and len(md) == 2 + len(SMALL)
    row = dict(zip(tables.HEADERS, [c.strip() for c in md[3].strip("|").split(" | ")], strict=True))
    r = stats.loc["lr_x5"]
    assert row["Variant"] == "lr_x5" and row["Changes"] == "x5 for epochs 4\u20137"
    assert row["Final acc. (%)"] == f"{r['final_mean_pct']:.2f} \u00b1 {r['final_std_pct']:.2f}"
    assert row["95% CI"] == f"[{r['final_ci_low_pct']:.2f}, {r['final_ci_high_pct']:.2f}]"
    assert row["\u0394 vs reference (pts)"].startswith(f"{r['diff_pct']:+.2f} [{r['diff_ci_low_pct']:+.2f}, ")
    assert row["Verdict"] == r["verdict"] == "better" and row["Seeds"] == "3"
    assert md[2].startswith("| baseline (reference) | base recipe |")
    tex = (tmp_path / "stats.tex").read_text()
    body = tex[tex.index("\\endlastfoot") : tex.index("\\end{longtable}")]
    assert "\\toprule" in tex and "\\bottomrule" in tex and body.count(" \\\\\n") == len(SMALL)
    assert "lr\\_\\allowbreak{}x5 & x5 for epochs 4--7 & " in tex and "$\\pm$" in tex
    assert "_" not in tex.replace("\\_", "") and "\\label{tab:lrstudy}" in tex
    assert "$-$0.78\\par{}[$-$" in tex  # lr_x0.5 is worse: real minus signs, the CI under the difference
    assert "| -0.78 [-" in md[5]  # stats.md keeps ASCII: pandoc and pdflatex read it as it is


def test_a_diverged_seed_and_a_correction_are_said(tmp_path):
    analyse(tmp_path, SMALL, diverged={("lr_x2", 0): 6, **{("lr_x0.5", s): 5 for s in range(3)}})
    stats = pd.read_csv(tmp_path / "results/aggregate/stats.csv")
    rows = {r[0]: r for r in tables.paper_rows(stats)}
    assert rows["lr_x2"][7] == "2 of 3, 1 diverged"
    # A variant whose runs all diverged has no difference: a dash, not "– – (98.8% CI)" (issue 29.8).
    assert rows["lr_x0.5"][2:8] == ["\u2013", "\u2013", "\u2013", "\u2013", "all runs diverged", "0 of 3, 3 diverged"]
    if (stats["ci_level"] != 0.95).any():  # Holm over three comparisons widens the CIs beside the verdicts
        assert "% CI)" in rows["lr_x5"][4]


def compile_paper(folder, table: str, text: str = "") -> str:
    """A plain article with `text` and then `\\input{table}` in `folder`, through pdflatex twice (the
    second pass resolves references), as a paper includes our tables: its log."""
    (folder / "paper.tex").write_text(
        "\\documentclass{article}\n\\usepackage{array,booktabs,longtable}\n\\begin{document}\n"
        f"{text}\n\\input{{{table}}}\n\\end{{document}}\n"
    )
    for _ in range(2):
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-2000:]
    return (folder / "paper.log").read_text()


@pytest.mark.system
@pytest.mark.skipif(not (shutil.which("pdflatex") and shutil.which("pdftotext")), reason="needs pdflatex, pdftotext")
@pytest.mark.parametrize("n", [3, 100])
def test_stats_tex_compiles_on_a_plain_article_page_with_every_row(tmp_path, n):
    """pdflatex, as a paper includes stats.tex: no overfull box (nothing off the page), every variant's row
    in the PDF in order, on as many pages as it takes; `<`, minus signs and the label as typeset."""
    finals = {k: KNOWN[k] for k in ("baseline", "lr_x5", "lr_x0.5")} if n == 3 else grid_finals(n)
    analyse(tmp_path, finals)
    tables.write_tables(tmp_path / "results/aggregate/stats.csv", tmp_path / "stats.md", tmp_path / "stats.tex", "demo")
    log = compile_paper(tmp_path, "stats.tex", "See Table~\\ref{tab:lrstudy-demo}.")
    assert "Overfull" not in log and "Float too large" not in log and "Warning" not in log, log[-3000:]
    pdf = subprocess.run(["pdftotext", "-layout", "paper.pdf", "-"], cwd=tmp_path, capture_output=True, text=True)
    text, stats = pdf.stdout, pd.read_csv(tmp_path / "results/aggregate/stats.csv")
    means = re.findall(r"(\d+\.\d\d) \u00b1 \d+\.\d\d", text)
    assert means == [f"{m:.2f}" for m in stats["final_mean_pct"]]  # every row, once, in order
    assert "See Table 1." in text
    pages = text.count("\f")
    if n == 3:
        assert pages == 1 and "< 0.001" in text and "\u00a1" not in text  # lr_x5 and lr_x0.5: p < 0.001
        worse = stats.set_index("variant").loc["lr_x0.5", "diff_pct"]
        assert f"\u2212{-worse:.2f}" in text  # lr_x0.5's difference, with a minus sign
    else:
        assert pages > 2 and text.count("(continued)") == pages - 1
