"""lrstudy-compare: named studies' stats.csv side by side."""

from __future__ import annotations

import io
import re
import shutil

import pandas as pd
import pytest
from synthetic_runs import KNOWN, analyse
from test_tables import compile_paper

from lrstudy.analysis import compare

SMALL = {k: v[:3] for k, v in KNOWN.items()}


def study(root, name, variants=("baseline", "lr_x5"), diverged=None, **recipe) -> None:
    """A study's stats.csv where `lrstudy-compare --root root` looks for it, with these recipe values;
    `diverged`: (variant, seed) -> the epoch that run diverged at."""
    analyse(root / "src" / name, {v: SMALL[v] for v in variants}, diverged)
    stats = pd.read_csv(root / "src" / name / "results/aggregate/stats.csv").assign(**recipe)
    shutil.rmtree(root / "src" / name)
    target = compare.study_stats(name, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    stats.to_csv(target, index=False)


def side_by_side(root, *names, fmt="csv", stale=None) -> str:
    """What lrstudy-compare prints for these studies (the staleness check aside: see the workflow test)."""
    tables = {name: pd.read_csv(compare.study_stats(name, root)) for name in names}
    table = compare.compare(tables)
    return compare.csv_table(table) if fmt == "csv" else compare.text_table(table, fmt, names, stale)


def test_compare_puts_studies_side_by_side_with_differing_recipe_keys_per_study(tmp_path):
    study(tmp_path, "default")
    study(tmp_path, "big_lr", lr=0.2)
    out = pd.read_csv(io.StringIO(side_by_side(tmp_path, "default", "big_lr")))
    assert out["variant"].tolist() == ["baseline", "lr_x5"]
    assert "epochs" in out and "lr [default]" in out and "lr [big_lr]" in out and "lr" not in out
    assert out["lr [default]"].tolist() == [0.1, 0.1] and out["lr [big_lr]"].tolist() == [0.2, 0.2]
    assert {"final_mean_pct [default]", "verdict [big_lr]", "n [default]"} <= set(out.columns)
    md = side_by_side(tmp_path, "default", "big_lr", fmt="md")
    assert md.startswith("| variant | window_start | window_end | window_factor | lr [default] | lr [big_lr] |")


def test_numbers_read_as_written_and_keys_the_studies_share_appear_once(tmp_path):
    """weight_decay 0.0005 against 0 (both printed 0.00 before), integers as integers; studies whose
    variant sets differ share every key but weight_decay (each was split into one column per study)."""
    study(tmp_path, "default", ("baseline", "lr_x5"))
    study(tmp_path, "no_wd", ("baseline", "lr_x2", "lr_x0.5"), weight_decay=0)
    csv_text = side_by_side(tmp_path, "default", "no_wd")
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

    md = side_by_side(tmp_path, "default", "no_wd", fmt="md").splitlines()
    head = [c.strip() for c in md[0].strip("|").split("|")]
    assert head[:5] == ["variant", "window_start", "window_end", "window_factor", "weight_decay [default]"]
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")] for r in md[2:6]}
    assert rows["baseline"][4:6] == ["0.0005", "0"] and rows["lr_x5"][1:6] == ["4", "8", "5", "0.0005", "\u2013"]
    assert rows["lr_x2"][4:6] == ["\u2013", "0"]
    assert rows["lr_x5"][head.index("n [default]")] == "3"
    assert rows["lr_x0.5"][head.index("diff_pct [no_wd]")].startswith("-0.")
    note = md[-1]
    assert note.startswith("Same in every variant of every study: epochs 12; batch_size 256; lr 0.1; momentum 0.9;")
    # Keys no study sets (the other schedule families' parameters, warmup) are neither columns nor listed
    # (the note listed 18 of them, "schedule.milestones \u2013; schedule.gamma \u2013; ...").
    assert "\u2013" not in note and "schedule.milestones" not in "".join(md) and "warmup.epochs" not in note


def test_a_study_out_of_date_is_marked_in_every_format(tmp_path):
    study(tmp_path, "default")
    study(tmp_path, "demo", lr=0.2)
    why = {"demo": "study demo is out of date: `snakemake --config study=demo` would run 1 aggregate (...)"}
    md = side_by_side(tmp_path, "default", "demo", fmt="md", stale=why).splitlines()
    assert "| lr [default] | lr [demo, out of date] |" in md[0] and "| verdict [default] |" in md[0]
    assert md[-1] == f"Out of date: {why['demo']}."
    tex = side_by_side(tmp_path, "default", "demo", fmt="tex", stale=why)
    assert " & default & demo (out of date) \\\\" in tex and "Out of date: study demo is out of date" in tex


def test_booleans_read_as_the_config_writes_them_in_every_format(tmp_path):
    """The footer said Python's `nesterov False`; the docs promise values as the config writes them."""
    study(tmp_path, "default")
    study(tmp_path, "nesterov", lr=0.2, nesterov=True)
    md = side_by_side(tmp_path, "default", "nesterov", fmt="md")
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in md.splitlines()[:4]]
    column = rows[0].index("nesterov [nesterov]")
    assert [r[column] for r in rows[2:]] == ["true", "true"] and "nesterov [default]" in rows[0]
    study(tmp_path, "nesterov", lr=0.2)
    tex = side_by_side(tmp_path, "default", "nesterov", fmt="tex")
    md = side_by_side(tmp_path, "default", "nesterov", fmt="md")
    assert "; nesterov false;" in tex and "; nesterov false;" in md.splitlines()[-1]
    csv_text = side_by_side(tmp_path, "default", "nesterov")
    header, row = csv_text.splitlines()[:2]
    assert row.split(",")[header.split(",").index("nesterov")] == "false"
    assert pd.read_csv(io.StringIO(csv_text))["nesterov"].tolist() == [False, False]
    for text in (md, tex, csv_text):
        assert not {"True", "False", "None"} & set(re.findall(r"\w+", text))


def test_the_usage_says_two_or_more_studies(tmp_path, capsys):
    """The usage said `studies [studies ...]` (one or more) and then refused one study."""
    with pytest.raises(SystemExit) as exit_:
        compare.main(["default", "--root", str(tmp_path)])
    assert exit_.value.code == 2 and "STUDY STUDY [STUDY ...]" in capsys.readouterr().err


def test_compare_names_a_study_without_results(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        compare.main(["default", "nothing", "--root", str(tmp_path)])
    assert exit_.value.code == 2 and "study default: no " in capsys.readouterr().err


def test_a_variant_whose_runs_all_diverged_has_no_numbers_in_any_format(tmp_path):
    """Its LaTeX cell says the verdict and the seeds (it printed "\u2013 \u00b1 \u2013" above them, issue 29.8)."""
    study(tmp_path, "default", ("baseline", "lr_x5"), diverged={("lr_x5", s): 5 for s in range(3)})
    study(tmp_path, "no_wd", weight_decay=0)
    tex = side_by_side(tmp_path, "default", "no_wd", fmt="tex")
    row = next(line for line in tex.splitlines() if line.startswith("lr\\_\\allowbreak{}x5 "))
    assert row.split(" & ")[-2] == "all runs diverged\\par{}0 seeds", row
    md = side_by_side(tmp_path, "default", "no_wd", fmt="md").splitlines()
    head = [c.strip() for c in md[0].strip("|").split("|")]
    cells = dict(zip(head, [c.strip() for c in md[3].strip("|").split("|")], strict=True))
    assert [cells[f"{c} [default]"] for c in compare.VALUES] == ["\u2013", "\u2013", "0", "\u2013", "all runs diverged"]


@pytest.mark.system
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex")
def test_the_latex_comparison_compiles_on_a_plain_article_page(tmp_path):
    study(tmp_path, "default", ("baseline", "lr_x5"))
    study(tmp_path, "no_wd", ("baseline", "lr_x2", "lr_x0.5"), weight_decay=0)
    stale = {"no_wd": "study no_wd is out of date: `snakemake --config study=no_wd` would run 2 train"}
    (tmp_path / "compare.tex").write_text(side_by_side(tmp_path, "default", "no_wd", fmt="tex", stale=stale))
    assert "Overfull" not in compile_paper(tmp_path, "compare.tex")


def test_a_stale_study_is_never_shown_as_current(workflow, tmp_path, capsys):
    """Issue 29.6: lrstudy-compare asks the workflow's own check (a dry run of each study) and says which
    study is out of date. Here two named studies have tables but no runs: both are out of date."""
    for name, lr in (("a", 0.1), ("b", 0.2)):
        study(workflow.root, name, lr=lr)
        (workflow.root / f"studies/{name}/study.yaml").write_text(
            f"study: {name}\ntrain: {{lr: {lr}}}\nexecution: {{device: cpu}}\n"
        )
    assert compare.main(["a", "b", "--root", str(workflow.root), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    table = pd.read_csv(io.StringIO(out))
    assert table["up_to_date [a]"].tolist() == [False, False] and not table["up_to_date [b]"].any()
    for name in ("a", "b"):
        assert f"lrstudy-compare: study {name} is out of date: `snakemake --config study={name}` would run " in err
