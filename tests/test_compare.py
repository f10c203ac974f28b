"""lrstudy-compare: named studies' stats.csv side by side."""

from __future__ import annotations

import io
import shutil
import subprocess

import pandas as pd
import pytest
from synthetic_runs import KNOWN, analyse

from lrstudy.analysis import compare

SMALL = {k: v[:3] for k, v in KNOWN.items()}


def study(root, name, variants=("baseline", "lr_x5"), **recipe) -> None:
    """A study's stats.csv where `lrstudy-compare --root root` looks for it, with these recipe values."""
    analyse(root / "src" / name, {v: SMALL[v] for v in variants})
    stats = pd.read_csv(root / "src" / name / "results/aggregate/stats.csv").assign(**recipe)
    target = compare.study_stats(name, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    stats.to_csv(target, index=False)


def run(capsys, *argv) -> str:
    assert compare.main(list(argv)) == 0
    return capsys.readouterr().out


def test_compare_puts_studies_side_by_side_with_differing_recipe_keys_per_study(tmp_path, capsys):
    study(tmp_path, "default")
    study(tmp_path, "big_lr", lr=0.2)
    out = pd.read_csv(io.StringIO(run(capsys, "default", "big_lr", "--root", str(tmp_path), "--format", "csv")))
    assert out["variant"].tolist() == ["baseline", "lr_x5"]
    assert "epochs" in out and "lr [default]" in out and "lr [big_lr]" in out and "lr" not in out
    assert out["lr [default]"].tolist() == [0.1, 0.1] and out["lr [big_lr]"].tolist() == [0.2, 0.2]
    assert {"final_mean_pct [default]", "verdict [big_lr]", "n [default]"} <= set(out.columns)
    md = run(capsys, "default", "big_lr", "--root", str(tmp_path))  # Markdown, the default
    assert md.startswith("| variant | window_start | window_end | window_factor | lr [default] | lr [big_lr] |")


def test_numbers_read_as_written_and_keys_the_studies_share_appear_once(tmp_path, capsys):
    """weight_decay 0.0005 against 0 (both printed 0.00 before), integers as integers; studies whose
    variant sets differ share every key but weight_decay (each was split into one column per study)."""
    study(tmp_path, "default", ("baseline", "lr_x5"))
    study(tmp_path, "no_wd", ("baseline", "lr_x2", "lr_x0.5"), weight_decay=0)
    root = ["--root", str(tmp_path)]
    csv_text = run(capsys, "default", "no_wd", *root, "--format", "csv")
    out = pd.read_csv(io.StringIO(csv_text))
    assert out["variant"].tolist() == ["baseline", "lr_x5", "lr_x2", "lr_x0.5"]
    per_study = [c for c in out if c.endswith("]")]
    assert [c for c in per_study if c.split(" [")[0] not in compare.VALUES] == [
        "weight_decay [default]",
        "weight_decay [no_wd]",
    ]
    header, baseline = csv_text.splitlines()[:2]
    assert ",epochs," in header and ",12,256,0.1," in baseline  # epochs, batch_size, lr: not 12.0, 256.0
    assert baseline.split(",")[header.split(",").index("n [default]")] == "3"

    md = run(capsys, "default", "no_wd", *root).splitlines()
    head = [c.strip() for c in md[0].strip("|").split("|")]
    assert head[:5] == ["variant", "window_start", "window_end", "window_factor", "weight_decay [default]"]
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")] for r in md[2:6]}
    assert rows["baseline"][4:6] == ["0.0005", "0"] and rows["lr_x5"][1:6] == ["4", "8", "5", "0.0005", "\u2013"]
    assert rows["lr_x2"][4:6] == ["\u2013", "0"]
    assert rows["lr_x5"][head.index("n [default]")] == "3"
    assert rows["lr_x0.5"][head.index("diff_pct [no_wd]")].startswith("-0.")
    note = md[-1]
    assert note.startswith("Same in every variant of every study: epochs 12; batch_size 256; lr 0.1; momentum 0.9;")


def test_compare_names_a_study_without_results(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        compare.main(["default", "nothing", "--root", str(tmp_path)])
    assert exit_.value.code == 2 and "study default: no " in capsys.readouterr().err


@pytest.mark.system
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex")
def test_the_latex_comparison_compiles_on_a_plain_article_page(tmp_path, capsys):
    study(tmp_path, "default", ("baseline", "lr_x5"))
    study(tmp_path, "no_wd", ("baseline", "lr_x2", "lr_x0.5"), weight_decay=0)
    (tmp_path / "compare.tex").write_text(run(capsys, "default", "no_wd", "--root", str(tmp_path), "--format", "tex"))
    (tmp_path / "paper.tex").write_text(
        "\\documentclass{article}\n\\usepackage{array,booktabs,longtable}\n\\begin{document}\n"
        "\\input{compare.tex}\n\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Overfull" not in (tmp_path / "paper.log").read_text()
