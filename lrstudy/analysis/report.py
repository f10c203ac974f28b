"""report.html: one self-contained page (figures embedded as data URIs) rendered with jinja2.

The study's scale and the verdicts come first, then the published run's numbers beside ours, the
per-variant table, the figures, every run, the exact config with its hash, provenance and the commands
that reproduce the study.

Every sentence is worded in the template (report/templates/report.html.j2, with its macros); this
module computes the values it words: numbers, flags and names.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import platform
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
import yaml

from lrstudy.analysis import adaptive as ad
from lrstudy.analysis import design_check, design_power
from lrstudy.analysis import stats as st
from lrstudy.analysis import sweeps as sw
from lrstudy.analysis.figures import DPI as FIGURE_DPI
from lrstudy.analysis.variants import DATA_KEYS, RECIPE_KEYS, labels
from lrstudy.atomic import atomic_write_text
from lrstudy.config import Stats, defaults, json_hash
from lrstudy.grid import Sweep, caption_of

ANALYSIS_PACKAGES = ["snakemake", "pandas", "numpy", "scipy", "matplotlib", "jinja2"]
VERDICT_CLASS = {
    st.BETTER: "better",
    st.WORSE: "worse",
    st.NO_DIFFERENCE: "same",
    st.TOO_FEW: "few",
    st.ALL_DIVERGED: "worse",
    st.REFERENCE: "ref",
    st.NEGLIGIBLE: "same",
}
# The verdict words by name, so that the template compares with these and never repeats them.
VERDICTS = {
    "reference": st.REFERENCE,
    "better": st.BETTER,
    "worse": st.WORSE,
    "no_difference": st.NO_DIFFERENCE,
    "too_few": st.TOO_FEW,
    "all_diverged": st.ALL_DIVERGED,
    "negligible": st.NEGLIGIBLE,
}


def num(x, digits: int = 2, signed: bool = False) -> str:
    if pd.isna(x):
        return "\u2013"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def pvalue(p) -> str:
    if pd.isna(p):
        return "\u2013"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def count(n) -> str:
    """5,000: a whole number with thousands separators."""
    return f"{int(n):,}"


PUBLISHED_KEYS = ["source", "scale", "baseline_final_acc_pct", "best_variant_final_acc_pct", "train_seconds"]
SCALE_KEYS = [*RECIPE_KEYS, *DATA_KEYS]  # what `scale` may hold: the description columns of every run


def load_published(path: str | Path) -> dict:
    """The published run's numbers (report/published_run.yaml), with every key the report needs."""
    published = yaml.safe_load(Path(path).read_text()) or {}
    problems = [f"no {k}" for k in PUBLISHED_KEYS if k not in published]
    scale = published.get("scale")
    if not isinstance(scale, dict) or "epochs" not in scale:
        problems.append("scale needs at least epochs")
    else:
        problems += [f"scale.{k} is none of {', '.join(SCALE_KEYS)}" for k in scale if k not in SCALE_KEYS]
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)} (see the repository's report/published_run.yaml)")
    return published


def distinct_values(values: Iterable) -> list:
    """The different values, in order of first appearance (plain Python numbers, not numpy's)."""
    return list(dict.fromkeys(v.item() if hasattr(v, "item") else v for v in values))


def study_scale(stats: pd.DataFrame, runs: pd.DataFrame) -> dict:
    """What this study ran: each description key's values over the variants, and the runs that exist
    (an adaptive design gives variants different seeds), and its devices."""
    per_variant = runs.groupby("variant")["seed"].count()
    return {
        **{k: distinct_values(stats[k]) for k in SCALE_KEYS},
        "variants": len(stats),
        "seeds": sorted(int(s) for s in runs["seed"].unique()),
        "seeds_per_variant": sorted({int(n) for n in per_variant}),
        "runs": len(runs),
        "devices": distinct_values(zip(runs["device"], runs["device_name"], strict=False)),
    }


def scale_differences(scale: dict, published_scale: dict) -> list[dict]:
    """Each key of the published run's scale on which some variant of this study differs from it."""
    return [{"key": k, "ours": scale[k], "published": v} for k, v in published_scale.items() if scale[k] != [v]]


def published_vs_ours(published: dict, stats: pd.DataFrame, runs: pd.DataFrame) -> dict:
    """The published run's single-run numbers beside the same quantities from our seeds."""
    reference = stats["reference"].iloc[0]
    others = stats[(stats["variant"] != reference) & stats["final_mean_pct"].notna()]
    done = runs[~runs["diverged"]]
    return {
        "reference": stats.set_index("variant").loc[reference].to_dict(),
        "best": others.loc[others["final_mean_pct"].idxmax()].to_dict() if len(others) else None,
        "published_gain_pct": published["best_variant_final_acc_pct"] - published["baseline_final_acc_pct"],
        "published_seconds_per_epoch": published["train_seconds"] / published["scale"]["epochs"],
        "time": {
            "seconds": done["train_seconds"].mean(),
            "epochs": int(done["epochs_completed"].max()),
            "seconds_per_epoch": done["seconds_per_epoch"].mean(),
            "runs": len(done),
            "devices": distinct_values(done["device_name"]),
        }
        if len(done)
        else None,
    }


def figure(path: str | Path, captions_dir: str | Path) -> dict:
    """A PNG as a data URI, with its name (the template titles it), caption and display width."""
    path, data = Path(path), Path(path).read_bytes()
    width_px = struct.unpack(">I", data[16:20])[0]  # from the PNG header (IHDR)
    return {
        "name": path.stem,
        "caption": (Path(captions_dir) / f"{caption_of(path.stem)}.rst").read_text().strip(),
        "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
        # Figures are saved at FIGURE_DPI; shown at 96 px per inch, all figures get the same font size.
        "width": round(width_px * 96 / FIGURE_DPI),
    }


def distinct(values: Iterable) -> str:
    """The different values, joined: one value when every run agrees."""
    return ", ".join(dict.fromkeys("\u2013" if v is None else str(v) for v in values)) or "\u2013"


def code_of(summary: dict) -> dict:
    """What a run recorded about the code that made it (runs made before this was recorded: unknown)."""
    return summary.get("code") or {"commit": None, "dirty": None, "engine_fingerprint": None}


def mixed_code(summaries: list[dict]) -> list[dict]:
    """The runs grouped by the engine code that trained them, when there is more than one group: a
    comparison across groups mixes code versions."""
    groups: dict = {}
    for s in summaries:
        groups.setdefault(code_of(s)["engine_fingerprint"], []).append(f"{s['variant']}/seed{s['seed']}")
    return [{"fingerprint": fp, "runs": runs} for fp, runs in groups.items()] if len(groups) > 1 else []


def provenance(summaries: list[dict]) -> dict:
    """Where the numbers come from; every training value as the list over runs. CUDA and cuDNN versions
    only when some run ran on CUDA: a CPU-only study has none to show."""
    training = ["python", "torch", "torchvision"]
    if any(s["device"] == "cuda" for s in summaries):
        training += ["cuda", "cudnn"]
    commits = {(code_of(s)["commit"], code_of(s)["dirty"]) for s in summaries}
    return {
        "commits": [{"sha": sha, "dirty": dirty} for sha, dirty in sorted(commits, key=str)],
        "engine": [code_of(s)["engine_fingerprint"] for s in summaries],
        "runs": [
            {"run": f"{s['variant']}/seed{s['seed']}", **code_of(s), "execution": s.get("execution") or {}}
            for s in summaries
        ],
        "devices": [f"{s['device']}: {s['device_name']}" for s in summaries],
        "training": {key: [s["versions"].get(key) for s in summaries] for key in training},
        "analysis_python": platform.python_version(),
        "packages": [(pkg, importlib.metadata.version(pkg)) for pkg in ANALYSIS_PACKAGES],
        "dataset": {
            key: [s["dataset"][key] for s in summaries] for key in ("md5", "sha256", "train_size", "test_size")
        },
    }


@dataclass(frozen=True)
class ReportInputs:
    """The files report.html is made from (rule report's inputs): the tables, every run's summary.json,
    the figures and their captions, the published run's numbers, the template, the adaptive design's
    seed plan (None: a fixed design) and the paper tables (stats.md, stats.tex)."""

    stats_csv: Path
    summary_csv: Path
    summary_jsons: Sequence[Path]
    figures: Sequence[Path]
    captions_dir: Path
    published: Path
    template: Path
    seed_plan_csv: Path | None = None
    paper_tables: Sequence[Path] = ()


@dataclass(frozen=True)
class Results:
    """A study's results as the report reads them: stats.csv, summary.csv, every run's summary.json, and
    the adaptive design's seed plan (None: a fixed design)."""

    stats: pd.DataFrame
    runs: pd.DataFrame
    summaries: list[dict]
    seed_plan: pd.DataFrame | None = None

    @classmethod
    def read(cls, inputs: ReportInputs) -> Results:
        return cls(
            stats=pd.read_csv(inputs.stats_csv, dtype={"seeds_needed": "Int64"}),
            runs=pd.read_csv(inputs.summary_csv),
            summaries=[json.loads(Path(p).read_text()) for p in inputs.summary_jsons],
            seed_plan=None if inputs.seed_plan_csv is None else pd.read_csv(inputs.seed_plan_csv),
        )


def context(
    results: Results,
    figures: Sequence[dict],
    published: dict,
    config: dict,
    settings: Stats,
    paper_tables: dict[str, str] | None = None,
    sweeps: Sequence[Sweep] = (),
) -> dict:
    """Every value the template words: numbers, flags and names, no sentences. `figures`: each as
    figure() gives it; `sweeps`: the grid's cross entries, each shown as a table of its own."""
    config = json.loads(json.dumps(config))  # plain dicts and lists, whatever Snakemake handed over
    config_yaml = yaml.safe_dump(config, sort_keys=False)
    stats, runs = results.stats, results.runs
    reference = stats["reference"].iloc[0]
    texts = labels(stats.set_index("variant"), reference)
    scale = study_scale(stats, runs)
    plan = results.seed_plan
    swept = sw.swept_variants(sweeps) - {reference}
    return {
        "reference": reference,
        "paper_tables": paper_tables or {},
        "V": VERDICTS,
        "stats": [
            dict(r, css=VERDICT_CLASS[r["verdict"]], label=texts[r["variant"]], swept=r["variant"] in swept)
            for _, r in stats.iterrows()
        ],
        "sweeps": [sweep_section(r) for r in sw.results(stats, sweeps) if r.cells],
        # The keys of each sweep figure (sweep_<key>, heatmap_<key1>_<key2>), which its title names.
        "figure_keys": {
            **{f"sweep_{k}": [k] for s in sweeps for k in s.keys},
            **{f"heatmap_{s.keys[0]}_{s.keys[1]}": list(s.keys) for s in sweeps if len(s.keys) == 2},
        },
        "diverged": runs[runs["diverged"]].to_dict("records"),
        "runs": [dict(r, label=texts[r["variant"]]) for r in runs.to_dict("records")],
        "scale": scale,
        "scale_differences": scale_differences(scale, published["scale"]),
        "published": published,
        "published_vs_ours": published_vs_ours(published, stats, runs),
        "figures": list(figures),
        "config_yaml": config_yaml,
        "config_href": "data:text/yaml;base64," + base64.b64encode(config_yaml.encode()).decode("ascii"),
        "config_hash": json_hash(config),
        "data": data_source(config),
        "provenance": provenance(results.summaries),
        "mixed_code": mixed_code(results.summaries),
        "max_seeds": st.MAX_SEEDS,
        "alpha": settings.alpha,
        "multiplicity": stats["multiplicity"].iloc[0],
        "comparisons": len(stats) - 1,
        "ci_levels": ci_levels(stats),
        "adaptive": None if plan is None else adaptive_section(plan, results, config, settings),
    }


def sweep_section(result: sw.SweepResult) -> dict:
    """A cross entry as the report shows it: its keys, its cells with their values and numbers, the
    count of each verdict, its best cell and the keys at whose edge the best lies."""
    sweep, best = result.sweep, result.best

    def cell(c: sw.Cell) -> dict:
        return dict(c.row.to_dict(), at=[sw.value_text(v) for v in c.values], css=VERDICT_CLASS[c.row["verdict"]])

    verdicts = [c.row["verdict"] for c in result.cells]
    return {
        "entry": sweep.entry,
        "title": sw.title(sweep),
        "swept": list(sweep.keys),
        "shared": sw.shared_text(sweep),
        "cells": [cell(c) for c in result.cells],
        "verdicts": {v: verdicts.count(v) for v in dict.fromkeys(verdicts)},
        "best": None
        if best is None
        else {**cell(best), "variant": best.variant, "where": list(zip(sweep.keys, cell(best)["at"], strict=True))},
        "edges": [{"key": e.key, "side": e.side} for e in result.edges],
    }


def ci_levels(stats: pd.DataFrame) -> list[float]:
    """The levels, in percent and lowest first, of the CIs beside the verdicts (Holm tests each comparison
    at its own level; its last step, and a single comparison, at 1 - alpha)."""
    tested = stats[stats["diff_ci_low_pct"].notna()]
    return sorted({round(100 * float(level), 1) for level in tested["ci_level"].dropna()})


def data_source(config: dict) -> dict:
    """The study's archive md5 and whether it is the official archive's, the one dataset.url's default serves:
    only then does a rerun elsewhere download data that passes the md5 check."""
    md5 = (config.get("dataset") or {}).get("md5")
    return {"md5": md5, "official": bool(md5) and md5.lower() == defaults()["dataset"]["md5"].lower()}


REPORT_STUDIES = 4000  # the report's own lrstudy-design run at the spread seen: Monte Carlo error < 0.008


def observed_sd(runs: pd.DataFrame) -> float:
    """The seed-to-seed spread of final accuracy (points): the root mean of the variants' sample
    variances, no smaller than the spread every test takes at least (stats.spread_floor)."""
    done = runs[~runs["diverged"].astype(bool)]
    variances = (100 * done.groupby("variant")["final_test_acc"].std(ddof=1)) ** 2
    return max(float(variances.mean() ** 0.5), st.spread_floor(st.resolution_pct(runs["test_size"])))


def adaptive_section(plan: pd.DataFrame, results: Results, config: dict, settings: Stats) -> dict:
    """How many seeds each variant got under the adaptive design and why, the design's operating
    characteristics at the spread seen (lrstudy-design), and the runs it saved against max_seeds for
    every variant and against the fixed design with the same power."""
    design, stats, runs = ad.design_of(settings), results.stats, results.runs
    last = plan.groupby("variant", sort=False).tail(1).set_index("variant")
    rows = [_adaptive_row(design, r, last) for _, r in stats.iterrows()]
    sd = observed_sd(runs)
    oc = design_check.check(design_check.Setup.of(config, settings), design_check.Spread(sd), studies=REPORT_STUDIES)
    ceiling = design.max_seeds * len(stats)
    return {
        "rows": rows,
        "method": ad.METHOD,
        "max_seeds_simulated": design_power.MAX_SEEDS_SIMULATED,
        "max_seeds": design.max_seeds,
        "effect_pct": design.effect_pct,
        "power": design.power,
        "stage_sizes": ", ".join(map(str, design.sizes)),
        "boundaries": ", ".join(f"{c:.2f}" for c in design.bounds),
        "runs": len(runs),
        "ceiling": ceiling,
        "saved": ceiling - len(runs),
        "saved_pct": 100 * (ceiling - len(runs)) / ceiling,
        "sd": sd,
        "oc": oc,
        "fixed_saved": oc["fixed_design_runs_same_power"] - len(runs),
        "fixed_saved_pct": 100 * (oc["fixed_design_runs_same_power"] - len(runs)) / oc["fixed_design_runs_same_power"],
    }


def _adaptive_row(design: ad.Design, r: pd.Series, last: pd.DataFrame) -> dict:
    """A variant's line of the adaptive section: its runs and stages, its last look, the seeds it would
    get next."""
    compared = r["variant"] != r["reference"] and r["variant"] in last.index
    look = last.loc[r["variant"]].to_dict() if compared else None
    stage = int(r["stages"])
    return {
        "variant": r["variant"],
        "reference": r["reference"],
        "runs": int(r["n_runs"]),
        "stages": stage,
        "look": look,
        # The repeated CI of an early look can be wider than any accuracy difference can be.
        "bounded": look is not None and -100 <= look["rci_low_pct"] and look["rci_high_pct"] <= 100,
        "next_seeds": design.sizes[stage] if stage < design.stages else 0,
        "p": r["p_value"],
        "p_adjusted": r["p_value_adjusted"],
    }


def render(template: str | Path, ctx: dict) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(template).parent),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=num, pvalue=pvalue, count=count, distinct=distinct)
    env.tests["missing"] = pd.isna
    return env.get_template(Path(template).name).render(**ctx)


def write_report(
    inputs: ReportInputs, config: dict, settings: Stats, out: str | Path, sweeps: Sequence[Sweep] = ()
) -> None:
    """report.html from the study's files, its config, its statistics' settings and its sweeps."""
    ctx = context(
        Results.read(inputs),
        [figure(f, inputs.captions_dir) for f in inputs.figures],
        load_published(inputs.published),
        config,
        settings,
        {Path(p).name: Path(p).read_text() for p in inputs.paper_tables},
        sweeps,
    )
    atomic_write_text(out, render(inputs.template, ctx))
