"""report.html: one self-contained page (figures embedded as data URIs) rendered with jinja2.

The verdicts come first, then the seed's own numbers beside ours, the per-variant table, the figures,
every run, the exact config with its hash, provenance and the commands that reproduce the study.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import platform
import struct
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

import jinja2
import pandas as pd
import yaml

from . import adaptive as ad
from . import stats as st
from .atomic import atomic_write_text
from .config import json_hash
from .figures import DPI as FIGURE_DPI

FIGURE_TITLES = {
    "accuracy": "Accuracy over training",
    "loss": "Loss over training",
    "lr": "Learning rate per epoch",
    "final_accuracy": "Final test accuracy per seed",
}
ANALYSIS_PACKAGES = ["snakemake", "pandas", "numpy", "scipy", "matplotlib", "jinja2"]
VERDICT_CLASS = {st.BETTER: "better", st.WORSE: "worse", st.NO_DIFFERENCE: "same", st.TOO_FEW: "few",
                 st.ALL_DIVERGED: "worse", st.REFERENCE: "ref", st.NEGLIGIBLE: "same"}


def num(x, digits: int = 2, signed: bool = False) -> str:
    if pd.isna(x):
        return "\u2013"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def pvalue(p) -> str:
    if pd.isna(p):
        return "\u2013"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def verdict_sentence(row: pd.Series) -> str:
    """The verdict of one variant in plain words, with the numbers behind it."""
    v, ref, word = row["variant"], row["reference"], row["verdict"]
    if word == st.REFERENCE:
        return f"{v} is the reference: the other variants are compared with its {plural(row['n'], 'finished seed')}."
    if word == st.ALL_DIVERGED and v == ref:
        return f"{v}, the reference, diverged in all {row['n_runs']} runs: no variant can be compared with it."
    if word == st.ALL_DIVERGED:
        return f"{v}: all {row['n_runs']} runs diverged, so it is not compared."
    if word == st.TOO_FEW:
        return (f"{v}: not enough seeds to tell ({plural(row['n'], 'finished run')} here; a test needs at "
                f"least 2 for both {v} and {ref}).")
    # An adaptive design's verdict rests on its sequential p-value, not on Welch's p over all runs.
    p = (f"sequential p = {pvalue(row['sequential_p_value'])}" if pd.notna(row["sequential_p_value"])
         else f"p = {pvalue(row['p_value'])}")
    diff = (f"{num(row['diff_pct'], signed=True)} points (95% CI {num(row['diff_ci_low_pct'], signed=True)} to "
            f"{num(row['diff_ci_high_pct'], signed=True)}, {p})")
    if word in (st.BETTER, st.WORSE):
        return f"{v} is {word} than {ref}: {diff}."
    if word == st.NEGLIGIBLE:
        return (f"{v}: the difference from {ref} is shown smaller than the adaptive design's effect_pct "
                f"(its repeated 95% CI lies inside \u00b1effect_pct): {diff}.")
    size = (f"Detecting a true difference of this size at 80% power would take about {row['seeds_needed']} "
            "seeds per variant" if pd.notna(row["seeds_needed"]) else "The observed difference is zero")
    return (f"{v}: no detectable difference from {ref}: {diff}. {size}; with the seeds we have, only "
            f"differences of about {num(row['detectable_diff_pct'])} points or more would be detected.")


def reference_note(reference: str) -> str:
    if reference == "baseline":
        return "Every variant is compared with the variant named baseline."
    return (f"No variant is named baseline, so the first configured variant, {reference}, is the reference "
            "every other variant is compared with.")


def seed_vs_ours(numbers: dict, stats: pd.DataFrame, runs: pd.DataFrame) -> list[dict]:
    """The seed's single-run numbers beside the same quantities from our seeds."""
    by_variant = stats.set_index("variant")
    reference = stats["reference"].iloc[0]
    ref = by_variant.loc[reference]
    others = stats[(stats["variant"] != reference) & stats["final_mean_pct"].notna()]
    rows = [{
        "what": "baseline final test accuracy" + ("" if reference == "baseline" else f" (ours: {reference})"),
        "seed": f"{numbers['baseline_final_acc_pct']:.2f}% (1 run)",
        "ours": f"{num(ref['final_mean_pct'])}% (mean of {ref['n']}; 95% CI {num(ref['final_ci_low_pct'])}"
                f"\u2013{num(ref['final_ci_high_pct'])})",
    }]
    if len(others):
        top = others.loc[others["final_mean_pct"].idxmax()]
        rows += [{
            "what": "best lr variant, final test accuracy",
            "seed": f"{numbers['best_variant_acc_pct']:.2f}% (1 run)",
            "ours": f"{num(top['final_mean_pct'])}% ({top['variant']}, mean of {top['n']})",
        }, {
            "what": f"its gain over {reference}",
            "seed": f"{numbers['best_variant_acc_pct'] - numbers['baseline_final_acc_pct']:+.2f} points (no CI)",
            "ours": f"{num(top['diff_pct'], signed=True)} points (95% CI {num(top['diff_ci_low_pct'], signed=True)} "
                    f"to {num(top['diff_ci_high_pct'], signed=True)}): {top['verdict']}",
        }]
    seed_epochs, seed_seconds = numbers["epochs"], numbers["train_seconds"]
    done = runs[~runs["diverged"]]
    rows.append({
        "what": "training time per run",
        "seed": f"{seed_seconds:.0f} s for {seed_epochs} epochs ({seed_seconds / seed_epochs:.1f} s/epoch)",
        "ours": (f"{done['train_seconds'].mean():.0f} s for {done['epochs_completed'].max()} epochs "
                 f"({done['seconds_per_epoch'].mean():.2f} s/epoch, mean of {plural(len(done), 'run')}) on "
                 f"{distinct(done['device_name'])}") if len(done) else "\u2013",
    })
    return rows


def figure(path: str | Path, captions_dir: str | Path) -> dict:
    """A PNG as a data URI, with its title, caption and display width."""
    path, data = Path(path), Path(path).read_bytes()
    width_px = struct.unpack(">I", data[16:20])[0]  # from the PNG header (IHDR)
    return {"title": FIGURE_TITLES.get(path.stem, path.stem),
            "caption": (Path(captions_dir) / f"{path.stem}.rst").read_text().strip(),
            "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
            # Figures are saved at FIGURE_DPI; shown at 96 px per inch, all figures get the same font size.
            "width": round(width_px * 96 / FIGURE_DPI)}


def git_commit(repo: str | Path) -> str:
    """HEAD of the workflow's repository, marked when the working tree has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" (with uncommitted changes)" if dirty else "")


def distinct(values: Iterable) -> str:
    return ", ".join(dict.fromkeys("\u2013" if v is None else str(v) for v in values)) or "\u2013"


def provenance(summaries: list[dict], repo: str | Path) -> list[tuple[str, str]]:
    items = [("git commit", git_commit(repo))]
    items += [("device", distinct(f"{s['device']}: {s['device_name']}" for s in summaries))]
    for key in ("python", "torch", "torchvision", "cuda", "cudnn"):
        items.append((f"{key} (training)", distinct(s["versions"].get(key) for s in summaries)))
    items.append(("python (analysis)", platform.python_version()))
    items += [(pkg, importlib.metadata.version(pkg)) for pkg in ANALYSIS_PACKAGES]
    for key in ("md5", "sha256", "train_size", "test_size"):
        items.append((f"dataset {key}", distinct(s["dataset"][key] for s in summaries)))
    return items


def commands(commit: str) -> list[str]:
    return [
        f"git checkout {commit.split()[0]}" if commit != "unknown" else "# check out the commit the study ran at",
        "make venv    # .venv with the pinned requirements",
        "# save the config above as study.yaml (the link beside it downloads it), then:",
        ".venv/bin/snakemake --cores 1 --resources gpu=1 --configfile study.yaml",
        ".venv/bin/snakemake --configfile study.yaml --report results/snakemake-report.zip",
    ]


def context(*, stats: pd.DataFrame, runs: pd.DataFrame, summaries: list[dict], figures: Sequence[str | Path],
            captions_dir: str | Path, seed_numbers: dict, config: dict, repo: str | Path,
            seed_plan: pd.DataFrame | None = None) -> dict:
    config = json.loads(json.dumps(config))  # plain dicts and lists, whatever Snakemake handed over
    config_yaml = yaml.safe_dump(config, sort_keys=False)
    prov = provenance(summaries, repo)
    reference = stats["reference"].iloc[0]
    return {
        "reference": reference,
        "reference_note": reference_note(reference),
        "verdicts": [{"variant": r["variant"], "verdict": r["verdict"], "css": VERDICT_CLASS[r["verdict"]],
                      "sentence": verdict_sentence(r)} for _, r in stats.iterrows()],
        "stats": [dict(r, css=VERDICT_CLASS[r["verdict"]]) for _, r in stats.iterrows()],
        "diverged": runs[runs["diverged"]].to_dict("records"),
        "runs": runs.to_dict("records"),
        "seed_vs_ours": seed_vs_ours(seed_numbers, stats, runs),
        "seed_source": seed_numbers.get("source", ""),
        "figures": [figure(f, captions_dir) for f in figures],
        "seeds": ", ".join(map(str, config["seeds"])),
        "config_yaml": config_yaml,
        "config_href": "data:text/yaml;base64," + base64.b64encode(config_yaml.encode()).decode("ascii"),
        "config_hash": json_hash(config),
        "provenance": prov,
        "commands": commands(prov[0][1]),
        "alpha": st.ALPHA,
        "adaptive": None if seed_plan is None else adaptive_section(seed_plan, stats, runs, config),
    }


def adaptive_section(plan: pd.DataFrame, stats: pd.DataFrame, runs: pd.DataFrame, config: dict) -> dict:
    """How many seeds each variant got under the adaptive design and why, and the runs it saved
    against giving every variant max_seeds."""
    design = ad.design_from_config(config)
    last = plan.groupby("variant", sort=False).tail(1).set_index("variant")
    rows = []
    for _, r in stats.iterrows():
        decided = last.loc[r["variant"]] if r["variant"] in last.index else None
        rows.append({"variant": r["variant"], "seeds": int(r["n_runs"]), "stages": int(r["stages"]),
                     "decision": "\u2013" if decided is None else decided["decision"],
                     "reason": "no look: it is the only variant" if decided is None else decided["reason"],
                     "p": r["sequential_p_value"]})
    ceiling = design.max_seeds * len(stats)
    return {
        "rows": rows, "method": ad.METHOD, "max_seeds": design.max_seeds, "effect_pct": design.effect_pct,
        "power": design.power, "stage_sizes": ", ".join(map(str, design.sizes)),
        "boundaries": ", ".join(f"{c:.2f}" for c in design.bounds), "runs": len(runs), "ceiling": ceiling,
        "saved": ceiling - len(runs), "saved_pct": 100 * (ceiling - len(runs)) / ceiling,
    }


def render(template: str | Path, ctx: dict) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(template).parent), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, pvalue=pvalue)
    env.tests["missing"] = pd.isna
    return env.get_template(Path(template).name).render(**ctx)


def write_report(*, stats_csv: str | Path, summary_csv: str | Path, summary_jsons: Iterable[str | Path],
                 figures: Sequence[str | Path], captions_dir: str | Path, seed_numbers: str | Path,
                 template: str | Path, config: dict, repo: str | Path, out: str | Path,
                 seed_plan_csv: str | Path | None = None) -> None:
    ctx = context(
        stats=pd.read_csv(stats_csv, dtype={"seeds_needed": "Int64"}), runs=pd.read_csv(summary_csv),
        summaries=[json.loads(Path(p).read_text()) for p in summary_jsons], figures=figures,
        captions_dir=captions_dir, seed_numbers=yaml.safe_load(Path(seed_numbers).read_text()),
        config=config, repo=repo, seed_plan=None if seed_plan_csv is None else pd.read_csv(seed_plan_csv),
    )
    atomic_write_text(out, render(template, ctx))
