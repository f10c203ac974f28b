"""Run directories (metrics.csv + summary.json, as the train rule writes them) with chosen final
accuracies, so that the analysis can be tested against answers known in advance; and the analysis
chain over them, as the workflow's three analysis rules run it."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import struct
import zlib
from pathlib import Path

from lrstudy import grid
from lrstudy.analysis import adaptive as ad
from lrstudy.analysis import aggregate as ag
from lrstudy.analysis.figures import PLOTS, write_figures
from lrstudy.analysis.report import ReportInputs, write_report
from lrstudy.analysis.sweep_figures import sweep_plots
from lrstudy.analysis.tables import write_tables
from lrstudy.config import RECIPE_KEYS, Adaptive, Stats, defaults, parsed_recipe, variant_train
from lrstudy.schedule import epoch_lrs, steps_per_epoch

REPO = Path(__file__).resolve().parent.parent
FIGURES = [name for name in PLOTS if name != "sweep"]  # as rule figures draws them for a study without a grid


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# A valid 1x1 grey PNG: signature, header (width, height, bit depth 8, greyscale), one black pixel, end.
ONE_PIXEL_PNG = (
    b"\x89PNG\r\n\x1a\n"
    + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    + _png_chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    + _png_chunk(b"IEND", b"")
)

# The full recipe, as summary.json records it.
TRAIN = parsed_recipe({**defaults()["train"], "epochs": 12}, "test").as_dict()
TRAIN_SIZE = 50000
WINDOWS = {"lr_x5": [{"start": 4, "end": 8, "factor": 5.0}], "lr_x0.5": [{"start": 4, "end": 8, "factor": 0.5}]}
GRID_NAME = re.compile(r"lr_x(?P<factor>[0-9.]+)_e(?P<start>[0-9]+)-(?P<end>[0-9]+)")  # as config.expand_grid names


def windows_of(variant: str) -> list[dict]:
    """The lr windows of a variant of WINDOWS, or of one named as a grid names its variants."""
    grid = GRID_NAME.fullmatch(variant)
    if grid:
        return [{"start": int(grid["start"]), "end": int(grid["end"]), "factor": float(grid["factor"])}]
    return WINDOWS.get(variant, [])


def grid_finals(n_variants: int, seeds: int = 3, epochs: int = TRAIN["epochs"]) -> dict[str, list[float]]:
    """A baseline and n_variants - 1 grid variants (windows x factors, as a grid config makes them) whose
    final accuracies rise and fall with the factor, each seed a little apart."""
    windows = [(s, min(s + max(1, epochs // 3), epochs + 1)) for s in range(1, epochs + 1, max(1, epochs // 4))]
    factors = [round(0.25 * 1.25**k, 3) for k in range(-(-(n_variants - 1) // len(windows)))]
    finals = {"baseline": [0.90 + 0.001 * (s - 1) for s in range(seeds)]}
    for f in factors:
        for start, end in windows:
            if len(finals) < n_variants:
                effect = 0.01 * math.exp(-((math.log(f) - math.log(2)) ** 2)) - 0.004 * start / epochs
                finals[f"lr_x{f:g}_e{start}-{end}"] = [0.90 + effect + 0.001 * (s - 1) for s in range(seeds)]
    return finals


def write_run(
    root: Path,
    variant: str,
    seed: int,
    final_acc: float,
    epochs: int = TRAIN["epochs"],
    diverged_epoch: int | None = None,
    recipe: dict | None = None,
) -> Path:
    """One run whose test accuracy climbs to `final_acc`; with `diverged_epoch` it stops there with nan
    losses, as a diverged run does. `recipe`: the variant's overrides of the base recipe (a sweep's)."""
    train = variant_train({**TRAIN, "epochs": epochs, "lr_windows": windows_of(variant)}, recipe or {})
    run = root / "results" / "runs" / variant / f"seed{seed}"
    run.mkdir(parents=True)
    last = diverged_epoch or epochs
    recipe = parsed_recipe(train, "test")  # not a checked Recipe: some tests write runs no config would allow
    steps = steps_per_epoch(TRAIN_SIZE, recipe.batch_size)
    rows = []
    for e in range(1, last + 1):
        progress = (1 - math.exp(-4 * e / epochs)) / (1 - math.exp(-4))  # 1.0 at the last planned epoch
        acc = 0.1 + (final_acc - 0.1) * progress
        bad = e == diverged_epoch
        rows.append(
            {
                "epoch": e,
                **dict(zip(("lr", "lr_last"), epoch_lrs(recipe, e, steps), strict=True)),
                "train_loss": math.nan if bad else 2.3 * (1 - progress) + 0.01,
                "train_acc": 0.1 if bad else min(1.0, acc + 0.04),
                "test_loss": math.inf if bad else 2.3 * (1 - progress) + 0.2,
                "test_acc": 0.1 if bad else acc,
                "epoch_seconds": 1.5,
            }
        )
    with open(run / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    finite = [r for r in rows if r["epoch"] != diverged_epoch]
    best = max(finite, key=lambda r: r["test_acc"], default=None)
    summary = {
        "variant": variant,
        "seed": seed,
        "epochs": epochs,
        "epochs_completed": last,
        "final_test_acc": None if diverged_epoch else rows[-1]["test_acc"],
        "best_test_acc": best["test_acc"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "train_seconds": 1.5 * last,
        "diverged": diverged_epoch is not None,
        "diverged_epoch": diverged_epoch,
        "device": "cpu",
        "device_name": "Synthetic CPU <model>",
        "versions": {"python": "3.11.2", "torch": "2.14.1", "torchvision": "0.29.1", "cuda": None, "cudnn": None},
        "config": train,
        "config_hash": hashlib.sha256(f"{variant}/{seed}".encode()).hexdigest()[:16],
        "dataset": {
            "md5": "c58f30108f718f92721af3b95e74349a",
            "sha256": "ab" * 32,
            "train_size": TRAIN_SIZE,
            "test_size": 10000,
        },
        "steps_per_epoch": steps,
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    (run / "model.pt").write_bytes(b"")  # the train rule's third output: rule all lists it (no weights needed here)
    return run


def change_recipe(run: Path, **changes) -> dict:
    """Give a run another recipe, its metrics' lr column following it as training would have; the summary."""
    summary = json.loads((run / "summary.json").read_text())
    summary["config"].update(changes)
    (run / "summary.json").write_text(json.dumps(summary))
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    recipe = parsed_recipe(summary["config"], "test")
    for row in rows:
        first, last = epoch_lrs(recipe, int(row["epoch"]), summary["steps_per_epoch"])
        row["lr"], row["lr_last"] = repr(first), repr(last)
    with open(run / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return summary


def write_study(
    root: Path,
    finals: dict[str, list[float]],
    diverged: dict[tuple[str, int], int] | None = None,
    epochs: int = TRAIN["epochs"],
    recipes: dict[str, dict] | None = None,
) -> list[Path]:
    """Runs of every variant (seeds 0, 1, ...) with these final accuracies; (variant, seed) in
    `diverged` diverges at the given epoch instead; `recipes`: variants' overrides of the base recipe.
    Returns the run directories in order."""
    return [
        write_run(root, v, s, acc, epochs, (diverged or {}).get((v, s)), (recipes or {}).get(v))
        for v, accs in finals.items()
        for s, acc in enumerate(accs)
    ]


def study_config(finals: dict[str, list[float]], epochs: int = TRAIN["epochs"]) -> dict:
    """The config a study with these variants and seeds would have had."""
    return {
        "train": {**TRAIN, "epochs": epochs},
        "variants": {v: {"lr_windows": windows_of(v)} for v in finals},
        "seeds": list(range(max(map(len, finals.values())))),
    }


def adaptive_design(
    stage_seeds: int, max_seeds: int, effect_pct: float = 0.2, power: float = 0.8, multiplicity: str = "holm"
) -> ad.Design:
    """The adaptive design of these numbers (config keys adaptive.*, stats.multiplicity; `seeds` lists
    `stage_seeds` seeds)."""
    return ad.Design(Stats(multiplicity, adaptive=Adaptive(stage_seeds, max_seeds, effect_pct, power)))


# Final accuracies with a spread like ResNet18's (0.1-0.2 points): lr_x5 clearly better, lr_x2 the
# same as the baseline, lr_x0.5 clearly worse.
KNOWN = {
    "baseline": [0.9500, 0.9512, 0.9488, 0.9505, 0.9495],
    "lr_x5": [0.9560, 0.9575, 0.9548, 0.9566, 0.9552],
    "lr_x2": [0.9502, 0.9490, 0.9511, 0.9497, 0.9503],
    "lr_x0.5": [0.9420, 0.9435, 0.9411, 0.9428, 0.9419],
}


def analyse(
    root: Path, finals: dict[str, list[float]], diverged=None, epochs: int = TRAIN["epochs"], recipes=None
) -> tuple[list[Path], dict]:
    """Synthetic runs -> the aggregate CSVs, as rule aggregate does it."""
    run_dirs = write_study(root, finals, diverged, epochs, recipes)
    tables = ag.aggregate(run_dirs, list(finals))
    for name, df in tables.items():
        ag.write_csv(df, root / f"results/aggregate/{name}.csv")
    return run_dirs, tables


def build_report(
    root: Path,
    finals: dict[str, list[float]],
    diverged=None,
    published: Path | None = None,
    config: dict | None = None,
    draw: bool = False,
    sweep: tuple | None = None,
) -> Path:
    """Synthetic runs -> the aggregate CSVs -> figures -> report.html, as the three rules do it. Drawing
    the figures is most of the cost, and most tests read only the report's text: unless `draw`, every
    figure is a one-pixel PNG (the figure tests and the browser check draw). `sweep`: (recipes, sweeps) of
    a grid's cross entries (sweep_study), whose figures and tables are made too."""
    variants = list(finals)
    recipes, sweeps = sweep or (None, [])
    run_dirs, tables = analyse(root, finals, diverged, recipes=recipes)
    pngs = [root / f"results/figures/{name}.png" for name in [*FIGURES, *grid.figure_names([], sweeps)]]
    if draw:
        write_figures(tables, variants, pngs + [p.with_suffix(".svg") for p in pngs], plots=sweep_plots(sweeps))
    else:
        for png in pngs:
            png.parent.mkdir(parents=True, exist_ok=True)
            png.write_bytes(ONE_PIXEL_PNG)
    out = root / "report.html"
    tables = [root / "results/aggregate/stats.md", root / "results/aggregate/stats.tex"]
    write_tables(root / "results/aggregate/stats.csv", *tables, sweeps=sweeps)
    inputs = ReportInputs(
        stats_csv=root / "results/aggregate/stats.csv",
        summary_csv=root / "results/aggregate/summary.csv",
        summary_jsons=[d / "summary.json" for d in run_dirs],
        figures=pngs,
        captions_dir=REPO / "report/captions",
        published=published or REPO / "report/published_run.yaml",
        template=REPO / "report/templates/report.html.j2",
        paper_tables=tables,
    )
    write_report(inputs, config or study_config(finals), Stats(), out, sweeps)
    return out


def sweep_study(cross: dict, accuracy, seeds: int = 3, recipe: dict | None = None):
    """A baseline and a grid entry crossing `cross` (expanded as a study's config is), every cell's final
    accuracy `accuracy(values)` (a fraction; values: key -> value), each seed 0.08 points apart: (finals,
    recipes, sweeps) for analyse and the sweep figures."""
    variants: dict = {}
    entry = {"cross": cross, **({"recipe": recipe} if recipe else {})}
    sweeps = grid.expand([entry], variants, RECIPE_KEYS)
    finals = {"baseline": [0.90 + 0.0008 * (s - 1) for s in range(seeds)]}
    for name, combo in sweeps[0].variants:
        centre = accuracy(dict(zip(sweeps[0].keys, combo, strict=True)))
        finals[name] = [centre + 0.0008 * (s - 1) for s in range(seeds)]
    return finals, {"baseline": {}, **variants}, sweeps
