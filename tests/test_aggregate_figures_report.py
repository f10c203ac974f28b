"""Aggregation, figures and report.html from synthetic runs whose answers are known, and the three
analysis rules run by Snakemake on such runs."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from synthetic_runs import (
    FIGURES,
    KNOWN,
    REPO,
    WINDOWS,
    analyse,
    build_report,
    change_recipe,
    grid_finals,
    study_config,
    write_study,
)

from lrstudy.analysis import aggregate as ag
from lrstudy.analysis import stats as st
from lrstudy.analysis.figures import DISTINCT, HIGHLIGHTED, MAX_ROWS, MAX_WIDTH, PLOTS, looks, write_figures
from lrstudy.analysis.report import load_published, provenance
from lrstudy.analysis.variants import DESCRIPTION_COLUMNS, labels
from lrstudy.config import Stats, parsed_recipe
from lrstudy.schedule import lr_at

SMALL = {k: v[:3] for k, v in KNOWN.items()}  # three seeds per variant, as in the default study


def read_back(root: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(root / f"results/aggregate/{name}.csv") for name in ("epochs", "summary", "stats")}


def test_tables_have_the_documented_columns_and_one_row_per_epoch_run_variant(tmp_path):
    analyse(tmp_path, SMALL, diverged={("lr_x5", 1): 4})
    t = read_back(tmp_path)
    assert list(t["epochs"].columns) == ag.EPOCH_COLUMNS
    assert list(t["summary"].columns) == ag.SUMMARY_COLUMNS
    assert list(t["stats"].columns) == ag.STATS_COLUMNS
    assert len(t["epochs"]) == 11 * 12 + 4  # the diverged run keeps its partial curve
    assert len(t["summary"]) == 12
    assert t["stats"]["variant"].tolist() == list(SMALL)  # config order, not alphabetical
    assert t["summary"]["variant"].tolist()[:4] == ["baseline"] * 3 + ["lr_x5"]


def test_verdicts_of_known_effects_survive_the_round_trip(tmp_path):
    analyse(tmp_path, SMALL)
    stats = read_back(tmp_path)["stats"].set_index("variant")
    assert stats["verdict"].to_dict() == {
        "baseline": st.REFERENCE,
        "lr_x5": st.BETTER,
        "lr_x2": st.NO_DIFFERENCE,
        "lr_x0.5": st.WORSE,
    }
    assert stats.loc["lr_x5", "diff_pct"] == pytest.approx(100 * (sum(SMALL["lr_x5"]) - sum(SMALL["baseline"])) / 3)


def test_a_diverged_run_is_counted_shown_and_left_out_of_the_means(tmp_path):
    html = build_report(tmp_path, SMALL, diverged={("lr_x5", 1): 4}).read_text()
    stats = read_back(tmp_path)["stats"].set_index("variant")
    assert (stats.loc["lr_x5", "n_runs"], stats.loc["lr_x5", "n"], stats.loc["lr_x5", "n_diverged"]) == (3, 2, 1)
    kept = [SMALL["lr_x5"][0], SMALL["lr_x5"][2]]
    assert stats.loc["lr_x5", "final_mean_pct"] == pytest.approx(50 * sum(kept))
    assert "lr_x5 seed 1 (epoch 4)" in html and "diverged at epoch 4" in html


def test_a_variant_whose_runs_all_diverged(tmp_path):
    html = build_report(tmp_path, SMALL, diverged={("lr_x5", s): 3 for s in range(3)}).read_text()
    stats = read_back(tmp_path)["stats"].set_index("variant")
    assert stats.loc["lr_x5", "verdict"] == st.ALL_DIVERGED
    assert stats.loc["lr_x2", "verdict"] == st.NO_DIFFERENCE
    assert "lr_x5: all 3 runs diverged" in html


def test_single_seed_study_says_not_enough_seeds(tmp_path):
    html = build_report(tmp_path, {v: accs[:1] for v, accs in SMALL.items()}).read_text()
    stats = read_back(tmp_path)["stats"]
    assert stats["verdict"].tolist() == [st.REFERENCE] + [st.TOO_FEW] * 3
    assert stats["final_ci_low_pct"].isna().all() and stats["p_value"].isna().all()
    assert "not enough seeds to tell" in html


def test_without_a_baseline_the_first_variant_is_the_reference_and_the_report_says_so(tmp_path):
    finals = {"lr_x2": SMALL["lr_x2"], "lr_x5": SMALL["lr_x5"]}
    html = build_report(tmp_path, finals).read_text()
    stats = read_back(tmp_path)["stats"].set_index("variant")
    assert stats["reference"].unique().tolist() == ["lr_x2"]
    assert stats.loc["lr_x5", "verdict"] == st.BETTER
    assert "No variant is named baseline, so the first configured variant, lr_x2, is the reference" in html


def test_when_no_variant_beats_the_baseline_the_best_row_says_so(tmp_path):
    finals = {"baseline": SMALL["baseline"], "lr_x0.5": SMALL["lr_x0.5"]}
    html = build_report(tmp_path, finals).read_text()
    assert "lr_x0.5, mean of 3): the highest of the lr variants, but no variant's mean is above baseline's" in html
    assert "no variant's mean is above" not in build_report(tmp_path / "again", SMALL).read_text()


RANKED_CAPTIONS = ["accuracy", "loss", "lr", "final_accuracy", "sweep_key", "heatmap"]


def test_every_ranking_says_that_no_test_controls_it(tmp_path):
    """The verdicts compare each variant with the reference, never two variants: wherever the report ranks
    variants by their means (the best lr variant, "best #k" in the figures, the best cell) it says so."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html_lib.unescape(build_report(tmp_path, SMALL).read_text())))
    assert "the highest mean, not shown better than the other variants: each is tested against baseline only" in text
    for name in RANKED_CAPTIONS:
        caption = (REPO / "report/captions" / f"{name}.rst").read_text()
        assert "not tested against each other" in caption or "never against the others" in caption, name


def method_and_gain(html: str) -> tuple[str, str]:
    """The report's method line and the published table's "its gain over" row, as plain text."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html_lib.unescape(html)))
    return text[text.index("Method: ") :].split(" Best-epoch")[0], text[text.index("its gain over") :][:300]


def test_the_cis_beside_the_verdicts_are_labelled_with_their_own_level(tmp_path):
    """Holm tests lr_x5 at 97.5%: the published-run row says so (it said "95% CI"); the method line gives
    the levels used (it said "wider than 95%", but Holm's last step is at 95%)."""
    html = build_report(tmp_path, SMALL).read_text()
    stats = read_back(tmp_path)["stats"].set_index("variant")
    method, gain = method_and_gain(html)
    best = stats.loc["lr_x5"]
    assert f"points ({100 * best['ci_level']:.1f}% CI {best['diff_ci_low_pct']:+.2f} to " in gain
    assert "97.5% CI" in gain and "95% CI" not in gain
    assert "(95.0%\u201398.3%), so it excludes 0 exactly then" in method and "wider than 95%" not in method
    low, high = best["simultaneous_ci_low_pct"], best["simultaneous_ci_high_pct"]
    assert f"; simultaneous 95% interval {low:+.2f} to {high:+.2f})" in html_lib.unescape(html)
    assert "Which interval means what" in html and "cover all 3 true differences at once" in html


def test_a_reference_of_one_seed_has_no_ci_in_the_published_table(tmp_path):
    """One seed: no CI of the mean, one dash ('95% CI –––' before: two missing bounds around a dash)."""
    html = build_report(tmp_path, {k: v[:1] for k, v in SMALL.items()}).read_text()
    row = html_lib.unescape(html)
    row = row[row.index("baseline final test accuracy") :][:400]
    assert "; 95% CI –)" in row and "––" not in row


def test_one_comparison_is_worded_as_one(tmp_path):
    """Two variants: one comparison, nothing to correct for, its CI at 95% (the line said "wider than 95%"
    and, under multiplicity none, that the chance of a false verdict was higher than alpha)."""
    html = build_report(tmp_path, {"baseline": SMALL["baseline"], "lr_x5": SMALL["lr_x5"]}).read_text()
    method, gain = method_and_gain(html)
    assert method.endswith(
        "on the one comparison, with baseline: there is nothing to correct for, and the chance that it is "
        "called better or worse when it does not differ stays at or below \u03b1 = 0.05. It is called better "
        "or worse when its p is below 0.05; its CI is at 95.0%, so it excludes 0 exactly then."
    ), method
    assert "(95.0% CI " in gain
    assert "adjusted p" not in html and "&alpha;&thinsp;/&thinsp;1," not in html  # nothing is adjusted for one
    # Nor in the per-variant table (its p column said "p (adjusted)" and each p twice, "0.323 (0.323)").
    assert "(adjusted)" not in html and "<th>p</th>" in html
    assert re.search(r'<td class="n">[^<]* \([^<]*\)</td>\s*<td><span class="badge', html) is None


def test_two_equal_runs_do_not_make_an_exact_mean(tmp_path):
    """Two seeds with the same accuracy: the 95% CI of the mean takes half the accuracy's step as the spread
    (it was a single point, 26.80 to 26.80), and the report says the runs are equal."""
    html = build_report(tmp_path, {"baseline": [0.268, 0.268], "lr_x5": [0.27, 0.275]}).read_text()
    ref = read_back(tmp_path)["stats"].set_index("variant").loc["baseline"]
    half = 12.706 * 0.01 / 2 / 2**0.5  # t(0.975, 1) x half the step of 10,000 test images / sqrt(2)
    assert ref["final_std_pct"] == 0 and ref["final_ci_high_pct"] - ref["final_mean_pct"] == pytest.approx(half, 1e-3)
    assert '26.80 &plusmn; 0.00<br><span class="what">2 equal runs</span>' in html


def test_figures_are_png_and_svg(tmp_path):
    build_report(tmp_path, SMALL, diverged={("lr_x2", 0): 6}, draw=True)
    for name in FIGURES:
        png, svg = tmp_path / f"results/figures/{name}.png", tmp_path / f"results/figures/{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in svg.read_text()[:2000]
    assert not list((tmp_path / "results/figures").glob(".*")), "no temporary files left behind"


def test_unknown_figure_name_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no figure called"):
        write_figures({}, ["baseline"], [tmp_path / "nope.png"])


def test_report_is_self_contained_summary_first_and_escaped(tmp_path):
    numbers = tmp_path / "published.yaml"
    published = yaml.safe_load((REPO / "report/published_run.yaml").read_text())
    numbers.write_text(yaml.safe_dump({**published, "baseline_final_acc_pct": 91.23, "train_seconds": 4321}))
    config = {**study_config(SMALL), "dataset": {"url": "file:///<script>alert(1)</script>"}}
    html = build_report(tmp_path, SMALL, published=numbers, config=config).read_text()
    assert html.count('src="data:image/png;base64,') == 4
    assert not re.search(r'(src|href)="(?!data:|#)', html), "every resource is embedded"
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.index('id="summary"') < html.index('id="variants"') < html.index('id="figures"')
    assert "lr_x5 is better than baseline" in html and "lr_x0.5 is worse than baseline" in html
    # The published run's numbers come from the data file, not from the template.
    assert "91.23% (1 run)" in html and "4321 s for 200 epochs" in html
    for label in ("git commit", "dataset md5", "torch (training)", "snakemake", "Synthetic CPU &lt;model&gt;"):
        assert label in html
    assert "--configfile study.yaml" in html
    # A caption is plain text here (report/captions/*.rst serve Snakemake's report too): no RST markup
    # shows as typed (`figures: {seed_lines: true}` did, backticks and all).
    assert all("`" not in c for c in re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S))


# The three rules, run by Snakemake on synthetic runs. --allowed-rules keeps training out: the run
# files are taken as they are.
ANALYSIS_RULES = ["--allowed-rules", "aggregate", "figures", "tables", "report"]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "config.yaml", "workflow", "report", "config"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
    finals = {"baseline": SMALL["baseline"][:2], "lr_x5": SMALL["lr_x5"][:2]}
    write_study(root, finals, diverged={("lr_x5", 1): 5})
    (root / "study.yaml").write_text(
        yaml.safe_dump(
            {
                "train": {"epochs": 12},
                "execution": {"device": "cpu"},
                "variants": {"baseline": {}, "lr_x5": {}},
                "seeds": [0, 1],
            }
        )
    )
    return root


def snakemake(root: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "study.yaml", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.workflow
def test_rules_build_the_report_and_snakemakes_own_report_leaves_it_alone(analysed):
    snakemake(analysed, *ANALYSIS_RULES, "report.html", "results/aggregate/stats.md", "results/aggregate/stats.tex")
    assert "| lr_x5 |" in (analysed / "results/aggregate/stats.md").read_text()
    html = analysed / "report.html"
    before = html.read_bytes()
    for name in ("aggregate", "figures", "report"):
        assert (analysed / f"logs/{name}.log").is_file() and (analysed / f"benchmarks/{name}.tsv").is_file()
    assert len(list((analysed / "results/figures").glob("*.svg"))) == len(FIGURES)
    snakemake(analysed, "--report", "results/snakemake-report.zip")
    assert (analysed / "results/snakemake-report.zip").stat().st_size > 10_000
    assert html.read_bytes() == before
    # Snakemake's report carries the paper tables as items with their captions (report/captions/stats_*.rst).
    with zipfile.ZipFile(analysed / "results/snakemake-report.zip") as zf:
        names = zf.namelist()
        index = zf.read("snakemake-report/report.html").decode()
    for table, words in [("stats.md", "in Markdown"), ("stats.tex", "a longtable with booktabs rules")]:
        assert any(n.startswith("snakemake-report/data/raw/") and n.endswith(f"/{table}") for n in names)
        item = re.search(rf'"results/aggregate/{re.escape(table)}": \{{[^}}]*"caption": "([^"]*)', index)
        assert item and words in item[1], table


@pytest.mark.parametrize("study, path", [("default", "report.html"), ("demo", "studies/demo/report.html")])
def test_snakemakes_report_names_where_the_studys_own_report_is(study, path):
    """report/workflow.rst rendered as Snakemake's --report renders it (Jinja with `snakemake.config`, then
    docutils): a named study's report.html is under studies/<name>/ (it said "at the top of the workflow
    directory" for every study; seen in the archive of a named study in Chromium)."""
    import jinja2
    from docutils.core import publish_parts

    class Snakemake:
        config = {"study": study, "variants": {"baseline": {}, "lr_x5": {}}, "seeds": [0, 1]}

    text = jinja2.Environment().from_string((REPO / "report/workflow.rst").read_text()).render(snakemake=Snakemake)
    body = publish_parts(text, writer="html")["html_body"]
    assert f'<tt class="docutils literal">{path}</tt> in the project folder' in body, body
    assert "variants: baseline, lr_x5; seeds: 0, 1" in body


@pytest.mark.workflow
def test_snakemakes_report_without_a_path_is_refused(analysed):
    before = (analysed / "report.html").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "study.yaml", "--report"],
        cwd=analysed,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0 and "results/snakemake-report.zip" in proc.stdout + proc.stderr
    assert (analysed / "report.html").read_bytes() == before


@pytest.mark.workflow
def test_lint_has_nothing_to_say_about_the_analysis_rules(analysed):
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--configfile", "study.yaml"],
        cwd=analysed,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    for rule in ("aggregate", "figures", "report"):
        assert f"rule {rule} (line" not in out, out


def test_a_difference_too_small_to_size_says_more_than_the_cap(tmp_path):
    finals = {"baseline": [0.9500, 0.9510], "lr_x2": [0.950001, 0.951001]}
    html = build_report(tmp_path, finals).read_text()
    assert read_back(tmp_path)["stats"].set_index("variant").loc["lr_x2", "seeds_needed"] == st.MAX_SEEDS + 1
    assert f"would take more than {st.MAX_SEEDS} seeds per variant" in html
    assert f"&gt; {st.MAX_SEEDS}</td>" in html


def test_hand_edited_metrics_or_summaries_are_named(tmp_path):
    """metrics.csv feeds the curves, summary.json the tables: an edit to one of them must not give a
    report whose curves and tables disagree."""
    runs = write_study(tmp_path, SMALL)
    ag.aggregate(runs, list(SMALL))  # as written, they agree
    metrics, summary = runs[4] / "metrics.csv", runs[4] / "summary.json"  # lr_x5 seed 1
    rows, original_summary = metrics.read_text().splitlines(keepends=True), summary.read_text()

    metrics.write_text("".join(rows[:-1]) + rows[-1].replace(",0.9575,", ",0.99,"))
    with pytest.raises(
        ValueError,
        match=f"{summary} and {metrics} disagree: final_test_acc is 0.9575 in summary.json but 0.99 by metrics.csv",
    ):
        ag.aggregate(runs, list(SMALL))

    metrics.write_text("".join(rows[:-1]))  # the last epoch deleted
    with pytest.raises(
        ValueError, match=f"{summary} and {metrics} disagree: epochs_completed is 12 in summary.json but 11"
    ):
        ag.aggregate(runs, list(SMALL))

    metrics.write_text("".join(rows))
    summary.write_text(original_summary.replace('"best_epoch": 12', '"best_epoch": 11'))
    with pytest.raises(ValueError, match=f"{summary} and {metrics} disagree: best_epoch is 11 in summary.json but 12"):
        ag.aggregate(runs, list(SMALL))


@pytest.mark.parametrize("cell, column", [("2x", "test_acc"), ("", "lr"), ("1e", "epoch_seconds")])
def test_a_non_number_in_metrics_names_the_file_row_and_column(tmp_path, cell, column):
    runs = write_study(tmp_path, {"baseline": SMALL["baseline"][:2]})
    metrics = runs[1] / "metrics.csv"
    lines = metrics.read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    cells = lines[3].rstrip("\n").split(",")
    cells[header.index(column)] = cell
    lines[3] = ",".join(cells) + "\n"
    metrics.write_text("".join(lines))
    with pytest.raises(ValueError, match=f"{metrics}: row 3 \\(line 4\\), column {column}: '{cell}' is not a number"):
        ag.aggregate(runs, ["baseline"])


# --- what each variant is: description columns, labels, scale -------------------------------------------------


def test_summary_and_stats_carry_each_variants_description(tmp_path):
    analyse(tmp_path, SMALL)
    t = read_back(tmp_path)
    for table in (t["summary"], t["stats"]):
        assert set(DESCRIPTION_COLUMNS) <= set(table.columns)
    stats, summary = t["stats"].set_index("variant"), t["summary"]
    assert stats.loc["lr_x5", ["window_start", "window_end", "window_factor"]].tolist() == [4, 8, 5]
    assert stats.loc["lr_x0.5", "window_factor"] == 0.5
    assert stats.loc["baseline", ["window_start", "window_end", "window_factor"]].isna().all()
    assert stats.loc[
        "lr_x5", ["epochs", "lr", "batch_size", "schedule", "width", "train_size", "test_size"]
    ].tolist() == [12, 0.1, 256, "cosine", 64, 50000, 10000]
    assert (summary.loc[summary["variant"] == "lr_x5", "window_start"] == 4).all()


def test_summary_has_every_recipe_key_and_the_code_of_each_run(tmp_path):
    run_dirs = write_study(tmp_path, {"baseline": SMALL["baseline"], "lr_x5": SMALL["lr_x5"]})
    step = change_recipe(  # lr_x5 seed 0: every key off its default
        run_dirs[3],
        momentum=0.8,
        nesterov=True,
        weight_decay=1e-4,
        schedule={"name": "step", "milestones": [6, 9], "gamma": 0.2},
        warmup={"epochs": 2.0, "start_factor": 0.5},
        lr_update="step",
        precision="fp32",
    )
    step["code"] = {"commit": "c" * 40, "dirty": True, "engine_fingerprint": "e" * 16}
    (run_dirs[3] / "summary.json").write_text(json.dumps(step))
    ag.write_csv(ag.run_tables(run_dirs[3:4], ["lr_x5"])[1], tmp_path / "summary.csv")
    row = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    plain = {k: v for k, v in step["config"].items() if k not in ("lr_windows", "schedule", "warmup")}
    assert {k: row[k] for k in plain} == plain, "every recipe key is a column"
    assert (row["schedule"], row["schedule.milestones"], row["schedule.gamma"]) == ("step", "6;9", 0.2)
    assert pd.isna(row["schedule.eta_min"]) and (row["warmup.epochs"], row["warmup.start_factor"]) == (2, 0.5)
    assert row["lr_schedule"] == "step x0.2 at epochs 6 and 9, 2-epoch warmup from x0.5, per step"
    assert (row["commit"], row["commit_dirty"], row["engine_fingerprint"]) == ("c" * 40, True, "e" * 16)


def test_several_windows_are_joined_with_semicolons_in_order_of_start(tmp_path, monkeypatch):
    monkeypatch.setitem(WINDOWS, "two", [{"start": 9, "end": 11, "factor": 0.5}, {"start": 2, "end": 4, "factor": 5.0}])
    analyse(tmp_path, {"baseline": SMALL["baseline"], "two": SMALL["lr_x5"]})
    for name in ("summary", "stats"):
        row = read_back(tmp_path)[name].set_index("variant").loc[["two"]].iloc[0]
        assert (row["window_start"], row["window_end"], row["window_factor"]) == ("2;9", "4;11", "5;0.5")


def test_runs_of_one_variant_with_different_configs_are_an_error(tmp_path):
    run_dirs = write_study(tmp_path, SMALL)
    change_recipe(run_dirs[4], lr=0.2)  # lr_x5 seed 1
    with pytest.raises(ValueError, match="runs of variant lr_x5 disagree on lr"):
        ag.aggregate(run_dirs, list(SMALL))


def test_a_summary_without_the_description_keys_names_the_file(tmp_path):
    run_dirs = write_study(tmp_path, SMALL)
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    del summary["config"]["width"]
    (run_dirs[0] / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"baseline/seed0/summary.json: no config.width"):
        ag.aggregate(run_dirs, list(SMALL))


def test_labels_say_the_windows_and_what_differs_from_the_reference():
    table = pd.DataFrame(
        {
            "window_start": [None, "50", "2;120", None, None],
            "window_end": [None, "100", "3;150", None, None],
            "window_factor": [None, "5", "5;0.5", None, None],
            "epochs": [200] * 5,
            "batch_size": [256] * 5,
            "lr": [0.1, 0.1, 0.1, 0.2, 0.1],
            "momentum": [0.9] * 5,
            "nesterov": [False, False, False, True, False],
            "weight_decay": [5e-4] * 5,
            "schedule": ["cosine"] * 4 + ["wsd"],
            "lr_schedule": ["cosine down to 0"] * 4 + ["WSD: 20% sqrt decay, 5-epoch warmup"],
            "width": [64, 64, 64, 16, 64],
            "precision": ["bf16"] * 5,
            "train_size": [50000] * 5,
            "test_size": [10000] * 5,
        },
        index=["baseline", "lr_x5", "two", "small", "wsd"],
    )
    assert labels(table.drop(index="wsd"), "baseline") == {
        "baseline": "base recipe",
        "lr_x5": "x5 for epochs 50\u201399",
        "two": "x5 for epoch 2, x0.5 for epochs 120\u2013149",
        "small": "lr 0.2, nesterov=True, width 16",
    }
    # Where schedules differ, every variant says its own, the reference's too.
    assert labels(table, "baseline") == {
        "baseline": "cosine down to 0",
        "lr_x5": "x5 for epochs 50\u201399, cosine down to 0",
        "two": "x5 for epoch 2, x0.5 for epochs 120\u2013149, cosine down to 0",
        "small": "lr 0.2, nesterov=True, cosine down to 0, width 16",
        "wsd": "WSD: 20% sqrt decay, 5-epoch warmup",
    }


def test_figure_legends_and_ticks_name_each_variants_window(tmp_path):
    _, tables = analyse(tmp_path, SMALL)
    for name in ("accuracy", "loss", "lr"):
        legend = [t.get_text() for t in PLOTS[name](tables, list(SMALL)).legends[0].get_texts()]
        assert any(t.startswith("lr_x5 (x5 for epochs 4\u20137)") for t in legend), legend
        assert any(t.startswith("baseline (base recipe)") for t in legend), legend
    ticks = [t.get_text() for t in PLOTS["final_accuracy"](tables, list(SMALL)).axes[0].get_xticklabels()]
    assert ticks[1] == "lr_x5\nx5 for epochs 4\u20137\nn=3"


PLAIN_DECIMAL = re.compile(r"\d+(\.\d+)?")


@pytest.mark.parametrize("low, high", [(0.01, 2.3), (0.2, 2.1), (1.3, 2.1), (1e-4, 3.0)])
def test_loss_axis_ticks_are_plain_decimals(tmp_path, low, high):
    _, tables = analyse(tmp_path, {v: SMALL[v] for v in ("baseline", "lr_x5")})
    epochs = tables["epochs"]
    for column in ("train_loss", "test_loss"):  # losses falling from `high` to `low`
        epochs[column] = high * (low / high) ** ((epochs["epoch"] - 1) / (epochs["epoch"].max() - 1))
    fig = PLOTS["loss"](tables, ["baseline", "lr_x5"])
    fig.draw_without_rendering()
    for ax in fig.axes:
        bottom, top = ax.get_ylim()
        shown = [t for t in ax.get_yticklabels() if bottom <= t.get_position()[1] <= top]
        assert len(shown) >= 3, [t.get_text() for t in shown]
        assert all(PLAIN_DECIMAL.fullmatch(t.get_text()) for t in shown), [t.get_text() for t in shown]
        assert not any(t.get_text() for t in ax.get_yticklabels(minor=True))


def test_final_accuracy_plot_is_zoomed_to_the_seeds(tmp_path):
    _, tables = analyse(tmp_path, SMALL)
    low, high = PLOTS["final_accuracy"](tables, list(SMALL)).axes[0].get_ylim()
    finals = 100 * tables["summary"]["final_test_acc"]
    assert finals.min() - 0.5 < low < finals.min() and finals.max() < high < finals.max() + 0.5


def test_two_seed_intervals_run_off_the_zoomed_plot_with_an_arrow(tmp_path):
    finals = {"baseline": [0.455, 0.481], "lr_x5": [0.47, 0.49]}  # as the CPU demo: 95% CIs of +-15 points
    _, tables = analyse(tmp_path, finals)
    ax = PLOTS["final_accuracy"](tables, list(finals)).axes[0]
    low, high = ax.get_ylim()
    assert 44 < low < 45.5 and 49 < high < 50.5
    arrows = sorted(t.get_text() for t in ax.texts)
    ci = tables["stats"].set_index("variant").loc["baseline"]
    assert f"\u2191 {ci['final_ci_high_pct']:.1f}" in arrows and f"\u2193 {ci['final_ci_low_pct']:.1f}" in arrows


def published_file(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "published.yaml"
    published = yaml.safe_load((REPO / "report/published_run.yaml").read_text())
    path.write_text(yaml.safe_dump({**published, **changes}, sort_keys=False))
    return path


def test_report_says_its_scale_and_that_it_is_not_the_published_runs(tmp_path):
    html = build_report(tmp_path, SMALL).read_text()
    assert (
        "Scale: 12 epochs, 50,000 training images and 10,000 test images, ResNet18 at width 64, batch 256; "
        "4 variants &times; 3 seeds (0, 1, 2) = 12 runs, on Synthetic CPU &lt;model&gt; (cpu)."
    ) in html
    note = (
        "This study is not at the published run's scale: 12 epochs instead of 200. "
        "Its accuracies are not comparable with the published ones."
    )
    assert note in html
    assert html.index(note) < html.index("published run (reported)")  # beside the table
    assert '<th>lr_x5<br><span class="what">x5 for epochs 4\u20137</span></th>' in html
    assert '<th>baseline<br><span class="what">base recipe</span></th>' in html


def test_report_at_the_published_runs_scale_says_so(tmp_path):
    scale = {"epochs": 12, "train_size": 50000, "test_size": 10000, "width": 64, "batch_size": 256}
    html = build_report(tmp_path, SMALL, published=published_file(tmp_path, scale=scale)).read_text()
    assert "not at the published run's scale" not in html and "Not the published run's scale" not in html
    assert (
        "This study runs at the published run's scale: 12 epochs, 50,000 training images, 10,000 test images, "
        "width 64, batch 256."
    ) in html


def test_every_scale_difference_is_named(tmp_path):
    scale = {"epochs": 200, "train_size": 5000, "test_size": 10000, "width": 8, "batch_size": 256}
    html = build_report(tmp_path, SMALL, published=published_file(tmp_path, scale=scale)).read_text()
    assert (
        "not at the published run's scale: 12 epochs instead of 200, 50,000 training images instead of 5,000, "
        "width 64 instead of 8."
    ) in html


def test_a_published_file_without_a_key_is_named(tmp_path):
    path = published_file(tmp_path)
    path.write_text(path.read_text().replace("train_seconds", "train_time"))
    with pytest.raises(ValueError, match=r"published.yaml: no train_seconds"):
        load_published(path)


def test_the_report_calls_the_published_run_by_that_name_and_seeds_only_seeds(tmp_path):
    html = build_report(tmp_path, SMALL).read_text()
    assert "The published run's numbers beside ours" in html
    assert not re.search(r"seed's|seed study|the seed\b", html, re.IGNORECASE)


def test_a_cpu_study_shows_no_cuda_versions_and_a_cuda_run_does(tmp_path):
    html = build_report(tmp_path, SMALL).read_text()
    assert "torch (training)" in html and "cuda (training)" not in html and "cudnn (training)" not in html
    runs = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("results/runs/*/seed*/summary.json"))]
    runs[0].update(device="cuda", versions={**runs[0]["versions"], "cuda": "12.8", "cudnn": 91002})
    training = provenance(runs)["training"]
    assert training["cuda"][0] == "12.8" and training["cudnn"][0] == 91002


def test_runs_trained_by_different_engine_code_are_flagged(tmp_path):
    html = build_report(tmp_path, SMALL).read_text()
    assert "Mixed code" not in html  # one engine for every run
    paths = sorted(tmp_path.glob("results/runs/*/seed*/summary.json"))
    for i, path in enumerate(paths):
        s = json.loads(path.read_text())
        s["code"] = {"commit": "a" * 40, "dirty": False, "engine_fingerprint": "old0" if i == 0 else "new1"}
        path.write_text(json.dumps(s))
    ctx_runs = [json.loads(p.read_text()) for p in paths]
    from lrstudy.analysis.report import mixed_code

    groups = mixed_code(ctx_runs)
    assert [g["fingerprint"] for g in groups] == ["old0", "new1"] and len(groups[0]["runs"]) == 1
    from lrstudy.analysis.report import ReportInputs, write_report

    inputs = ReportInputs(
        stats_csv=tmp_path / "results/aggregate/stats.csv",
        summary_csv=tmp_path / "results/aggregate/summary.csv",
        summary_jsons=paths,
        figures=sorted(tmp_path.glob("results/figures/*.png")),
        captions_dir=REPO / "report/captions",
        published=REPO / "report/published_run.yaml",
        template=REPO / "report/templates/report.html.j2",
    )
    write_report(inputs, study_config(SMALL), Stats(), tmp_path / "mixed.html")
    html = (tmp_path / "mixed.html").read_text()
    assert "Mixed code" in html and "engine old0: baseline/seed0" in html


def test_one_epoch_runs_draw_markers_one_tick_and_no_zoom_panel(tmp_path):
    _, tables = analyse(tmp_path, SMALL, epochs=1)
    accuracy = PLOTS["accuracy"](tables, list(SMALL))
    assert [ax.get_title() for ax in accuracy.axes] == ["Test accuracy", "Train accuracy"]
    for fig in (accuracy, PLOTS["loss"](tables, list(SMALL)), PLOTS["lr"](tables, list(SMALL))):
        fig.draw_without_rendering()
        for ax in fig.axes:
            assert [t.get_text() for t in ax.get_xticklabels()] == ["1"]
            drawn = [line for line in ax.get_lines() if len(line.get_xdata()) == 1]
            assert len(drawn) == len(SMALL) and all(line.get_marker() == "o" for line in drawn)


def test_the_zoom_panel_is_kept_where_the_last_quarter_has_several_epochs(tmp_path):
    _, tables = analyse(tmp_path, SMALL, epochs=4)
    zoom = PLOTS["accuracy"](tables, list(SMALL)).axes[2]
    assert zoom.get_title() == "Test accuracy, epochs 3\u20134 (zoom)"
    # Its axis spans the epochs it shows (it spanned 1-4, half empty).
    assert zoom.get_xlim() == (2.5, 4.5) and [t.get_text() for t in zoom.get_xticklabels()] == ["3", "4"]


# 20 and 100 variants draw for seconds each: the system tier (make test); 4 stays in the fast tier.
@pytest.mark.parametrize(
    "n", [4, pytest.param(20, marks=pytest.mark.system), pytest.param(100, marks=pytest.mark.system)]
)
def test_figures_stay_readable_as_the_grid_grows(tmp_path, n):
    finals = grid_finals(n)
    _, tables = analyse(tmp_path, finals)
    variants = list(finals)
    for name, plot in PLOTS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "constrained_layout not applied"
            fig = plot(tables, variants)
            fig.draw_without_rendering()
        width, height = fig.get_size_inches()
        assert width <= MAX_WIDTH and height <= 16, (name, width, height)
        # Every title and axis label inside the picture (loss.png's y label was cut at 20 and 100 variants).
        box = fig.bbox.padded(1)
        for text in [fig._suptitle, *(t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label))]:
            if text is not None and text.get_text():
                extent = text.get_window_extent()
                assert box.contains(extent.x0, extent.y0) and box.contains(extent.x1, extent.y1), (name, text)
        for ax in fig.axes:
            assert max(line.get_linewidth() for line in ax.get_lines()) <= 6, name
        legend_entries = sum(len(legend.get_texts()) for legend in fig.legends)
        assert legend_entries <= max(HIGHLIGHTED, min(n, DISTINCT)) + 5, (name, legend_entries)
    # No colour stands for two variants: beyond DISTINCT, the unnamed ones are all the same grey.
    named = {v: look.colour for v, look in looks(tables, variants).items() if look.legend is not None}
    assert len(set(map(str, named.values()))) == len(named) == (n if n <= DISTINCT else HIGHLIGHTED + 1)
    if n > DISTINCT:
        # lr.png: at 100 variants (factors up to x53) the reference and the best on a panel of their own,
        # where a grid's large factors pressed them to 0; at 20 (factors below 1) one panel shows them well.
        axes = PLOTS["lr"](tables, variants).axes
        assert len(axes) == (2 if n == 100 else 1)
        if n == 100:
            lr_of = tables["epochs"].groupby("variant")["lr"].max()
            shown = [v for v, look in looks(tables, variants).items() if look.legend is not None]
            assert len(axes[1].get_lines()) == len(shown) == HIGHLIGHTED + 1
            assert axes[1].get_ylim()[1] < 1.2 * lr_of[shown].max() and axes[0].get_ylim()[1] > 10 * lr_of[shown].max()
            assert "(an untested order)" in axes[1].get_title()
        best = tables["stats"].set_index("variant")["final_mean_pct"].drop("baseline").idxmax()
        assert looks(tables, variants)[best].legend == "best #1: "
        ax = PLOTS["final_accuracy"](tables, variants).axes[0]
        rows = [t.get_text() for t in ax.get_yticklabels()]
        assert rows[0].startswith(f"best #1  {best} ") and len(rows) == min(n, MAX_ROWS + 1)
        means = tables["stats"].set_index("variant")["final_mean_pct"]
        shown = [means[r.split("  ")[-1].split(" (")[0]] for r in rows]
        assert shown == sorted(shown, reverse=True) and any(r.startswith("reference  baseline") for r in rows)
        assert (f"{n - len(rows)} variants between the best" in ax.get_title()) == (n > MAX_ROWS)
        assert "\nhighest mean first: an order no test controls" in ax.get_title()


def test_sweep_draws_each_window_against_the_factor_with_the_reference_band(tmp_path):
    finals = grid_finals(9)  # the baseline, and 2 factors x 4 windows
    _, tables = analyse(tmp_path, finals)
    stats = tables["stats"].set_index("variant")
    ax = PLOTS["sweep"](tables, list(finals)).axes[0]
    lines = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(lines) == 4 and all(x == [0.25, 0.312] for x, _ in lines)
    assert lines[0][1] == [stats.loc[v, "final_mean_pct"] for v in ("lr_x0.25_e1-5", "lr_x0.312_e1-5")]
    (band,) = ax.patches
    ref = stats.loc["baseline"]
    assert band.get_y() == pytest.approx(ref["final_ci_low_pct"])
    assert band.get_y() + band.get_height() == pytest.approx(ref["final_ci_high_pct"])
    assert [t.get_text() for t in ax.figure.legends[0].get_texts()][-4:] == [
        "epochs 1\u20134",
        "epochs 4\u20137",
        "epochs 7\u201310",
        "epochs 10\u201312",
    ]


def test_a_one_factor_sweep_is_drawn_against_the_window(tmp_path):
    """One factor over three windows: a line over the windows (it was three dots on one x, the factor)."""
    finals = {"baseline": SMALL["baseline"], **{f"lr_x5_e{s}-{s + 4}": SMALL["lr_x5"] for s in (1, 4, 7)}}
    _, tables = analyse(tmp_path, finals)
    ax = PLOTS["sweep"](tables, list(finals)).axes[0]
    (line,) = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert list(line.get_xdata()) == [0, 1, 2]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["epochs 1\u20134", "epochs 4\u20137", "epochs 7\u201310"]
    assert ax.get_xlabel() == "lr window" and "(x5 inside it)" in ax.get_title()


def test_seed_lines_are_drawn_only_when_asked(tmp_path):
    _, tables = analyse(tmp_path, SMALL)
    plain = PLOTS["accuracy"](tables, list(SMALL)).axes[0].get_lines()
    seeds = PLOTS["accuracy"](tables, list(SMALL), seed_lines=True).axes[0].get_lines()
    assert len(seeds) - len(plain) == len(tables["summary"])
    # write_figures passes the option to the curve figures only.
    write_figures(tables, list(SMALL), [tmp_path / "lr.png", tmp_path / "accuracy.png"], seed_lines=True)


@pytest.mark.parametrize("md5, official", [("c58f30108f718f92721af3b95e74349a", True), ("0" * 32, False)])
def test_the_reproduce_hint_works_for_the_studys_data(tmp_path, md5, official):
    """Issue 20.10: the hint paired the official url with this machine's md5 of a repacked archive."""
    finals = {"baseline": SMALL["baseline"][:2], "lr_x5": SMALL["lr_x5"][:2]}
    config = {**study_config(finals), "dataset": {"url": "https://www.cs.toronto.edu/x.tar.gz", "md5": md5}}
    reproduce = build_report(tmp_path, finals, config=config).read_text().split('id="reproduce"')[1]
    assert "make local ARCHIVE=" in reproduce
    assert ("would fail the md5 check" in reproduce) is not official
    assert (f"md5 {md5}" in reproduce) is not official


@pytest.mark.workflow
def test_snakemake_mlflow_exports_the_study_to_a_store_mlflow_reads_as_it_is(analysed, tmp_path):
    """Issues 32.2 and 29.8: no environment switch to read it; a refused server is a sentence; the local
    store follows the project folder (copied here: the copy must not point at the original)."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    rules = [*ANALYSIS_RULES, "mlflow", "--", "mlflow"]
    refused = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "study.yaml", "--config",
         "mlflow={tracking_uri: 'http://127.0.0.1:9'}", *rules],
        cwd=analysed, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "cannot reach the MLflow server at http://127.0.0.1:9" in said
    assert "Traceback" not in said and not (analysed / "results/mlflow/exported.json").exists()

    snakemake(analysed, *rules)
    exported = json.loads((analysed / "results/mlflow/exported.json").read_text())
    assert exported["tracking_uri"] == f"sqlite:///{(analysed / 'results/mlflow/mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=exported["tracking_uri"])
    runs = {r.info.run_name: r for r in client.search_runs([exported["experiment_id"]])}
    assert sorted(runs) == ["baseline/seed0", "baseline/seed1", "lr_x5/seed0", "lr_x5/seed1", "study default"]
    assert runs["lr_x5/seed1"].info.status == "FAILED"  # diverged
    study = runs["study default"].info.run_id
    assert {f.path for f in client.list_artifacts(study)} == {"report.html", "figures", "tables"}
    assert {f.path for f in client.list_artifacts(study, "tables")} == {"tables/stats.md", "tables/stats.tex"}
    assert {f.path for f in client.list_artifacts(study, "figures")} >= {"figures/accuracy.png", "figures/lr.svg"}

    moved = tmp_path / "moved"
    shutil.copytree(analysed, moved, symlinks=True)
    snakemake(moved, *rules)
    client = MlflowClient(tracking_uri=f"sqlite:///{moved.resolve()}/results/mlflow/mlflow.db")
    experiment = client.get_experiment_by_name("default")
    assert experiment.artifact_location == str(moved.resolve() / "results/mlflow/artifacts")
    for run in client.search_runs([experiment.experiment_id]):
        assert run.info.artifact_uri.startswith(str(moved.resolve() / "results/mlflow/artifacts"))


def test_two_seed_intervals_run_off_the_rows_with_an_arrow(tmp_path):
    # As the CPU demo: two seeds 2.6 points apart give 95% CIs of +-15 points.
    finals = {v: [accs[0] / 2, accs[0] / 2 + 0.026] for v, accs in grid_finals(12, seeds=2).items()}
    _, tables = analyse(tmp_path, finals)
    ax = PLOTS["final_accuracy"](tables, list(finals)).axes[0]
    arrows = [t.get_text() for t in ax.texts]
    ci = tables["stats"].set_index("variant").loc["baseline"]
    assert f"{ci['final_ci_high_pct']:.1f} \u2192" in arrows and f"\u2190 {ci['final_ci_low_pct']:.1f}" in arrows


def test_the_report_carries_the_tables_for_a_paper(tmp_path):
    html = build_report(tmp_path, SMALL).read_text()
    tex = (tmp_path / "results/aggregate/stats.tex").read_text()
    md = (tmp_path / "results/aggregate/stats.md").read_text()
    assert "\\toprule" in tex and "| variant" in md.lower()
    assert html_lib.escape(tex, quote=False) in html and html_lib.escape(md, quote=False) in html


def test_the_lr_figure_draws_a_per_step_schedule_at_every_step(tmp_path):
    """A variant whose lr changed at every step is drawn at every step, read back from the CSV tables as
    rule figures reads them; a per-epoch variant stays a step curve of its epochs."""
    runs = write_study(tmp_path, {"baseline": SMALL["baseline"][:2], "onecycle": SMALL["baseline"][:2]})
    per_step = {"schedule": {"name": "onecycle", "pct_start": 0.25}, "warmup": {"epochs": 1.5}, "lr_update": "step"}
    for run in runs[2:]:
        change_recipe(run, **per_step)
    for name, table in ag.aggregate(runs, ["baseline", "onecycle"]).items():
        ag.write_csv(table, tmp_path / f"{name}.csv")
    tables = {name: pd.read_csv(tmp_path / f"{name}.csv") for name in ("epochs", "summary", "stats")}
    ax = PLOTS["lr"](tables, ["baseline", "onecycle"]).axes[0]
    assert ax.get_title() == "Learning rate at every step"
    epochs, steps = ax.lines[0].get_data(), 196  # 50,000 images at batch 256
    assert list(epochs[0]) == list(range(1, 13))
    x, y = ax.lines[1].get_data()
    assert len(x) == 12 * steps  # 2,352 steps: every one drawn
    summary = json.loads((runs[2] / "summary.json").read_text())
    recipe = parsed_recipe(summary["config"], "config")
    assert list(y) == [lr_at(recipe, k, steps) for k in range(12 * steps)]
    assert x[0] == pytest.approx(0.5 + 0.5 / steps) and x[-1] == pytest.approx(12.5 - 0.5 / steps)


@pytest.mark.parametrize("epochs", [12, 3])
def test_the_accuracy_caption_names_the_figures_panels_in_order(tmp_path, epochs):
    """The caption said "the right panel zooms into the last quarter"; the right panel of a short run's
    figure is train accuracy, and the zoom is the third panel of a longer one."""
    _, tables = analyse(tmp_path, {v: SMALL[v] for v in ("baseline", "lr_x5")}, epochs=epochs)
    titles = [ax.get_title().lower() for ax in PLOTS["accuracy"](tables, ["baseline", "lr_x5"]).axes]
    caption = (REPO / "report/captions/accuracy.rst").read_text()
    panels = caption.split("Panels, left to right: ")[1].split(". ")[0].split("; ")
    assert [p.split(" over ")[0] for p in panels[: len(titles)]] == [t.split(",")[0] for t in titles]
    assert ("zoom" in titles[-1]) == (epochs > 3)
    if epochs <= 3:
        assert "three epochs or fewer" in caption and "train accuracy is then the right panel" in caption
