"""Aggregation, figures and report.html from synthetic runs whose answers are known, and the three
analysis rules run by Snakemake on such runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lrstudy import aggregate as ag
from lrstudy import stats as st
from lrstudy.figures import PLOTS, write_figures
from synthetic_runs import KNOWN, REPO, analyse, build_report, study_config, write_study

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
    assert stats["verdict"].to_dict() == {"baseline": st.REFERENCE, "lr_x5": st.BETTER,
                                          "lr_x2": st.NO_DIFFERENCE, "lr_x0.5": st.WORSE}
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


def test_figures_are_png_and_svg(tmp_path):
    build_report(tmp_path, SMALL, diverged={("lr_x2", 0): 6})
    for name in PLOTS:
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


# The three rules, run by Snakemake on synthetic runs. --allowed-rules keeps training out: the run
# files are taken as they are.
ANALYSIS_RULES = ["--allowed-rules", "aggregate", "figures", "report"]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "config.yaml", "workflow", "report", "config"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
    finals = {"baseline": SMALL["baseline"][:2], "lr_x5": SMALL["lr_x5"][:2]}
    write_study(root, finals, diverged={("lr_x5", 1): 5})
    (root / "study.yaml").write_text(yaml.safe_dump(
        {"train": {"epochs": 12, "device": "cpu"}, "variants": {"baseline": {}, "lr_x5": {}}, "seeds": [0, 1]}))
    return root


def snakemake(root: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "study.yaml", *args],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_rules_build_the_report_and_snakemakes_own_report_leaves_it_alone(analysed):
    snakemake(analysed, *ANALYSIS_RULES, "report.html")
    html = analysed / "report.html"
    before = html.read_bytes()
    for name in ("aggregate", "figures", "report"):
        assert (analysed / f"logs/{name}.log").is_file() and (analysed / f"benchmarks/{name}.tsv").is_file()
    assert len(list((analysed / "results/figures").glob("*.svg"))) == len(PLOTS)
    snakemake(analysed, "--report", "results/snakemake-report.zip")
    assert (analysed / "results/snakemake-report.zip").stat().st_size > 10_000
    assert html.read_bytes() == before


def test_snakemakes_report_without_a_path_is_refused(analysed):
    before = (analysed / "report.html").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "study.yaml",
                           "--report"], cwd=analysed, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "results/snakemake-report.zip" in proc.stdout + proc.stderr
    assert (analysed / "report.html").read_bytes() == before


def test_lint_has_nothing_to_say_about_the_analysis_rules(analysed):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--configfile", "study.yaml"],
                          cwd=analysed, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    for rule in ("aggregate", "figures", "report"):
        assert f"rule {rule} (line" not in out, out
