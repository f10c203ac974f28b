"""The GPU measurements (issue 9) as one script for one call on a lent GPU host; tools/gpu/check.sh runs it.

Everything to keep lands in OUT/measurements/<card>-<date>/, ready to commit as it is (the data cache and
the runs' models stay in --scratch, emptied at the start of every call; the workflow's studies stay in the
checkout's git-ignored studies/seed-recipe, studies/packing-2 and studies/packing-3):
  benchmark.json/.md   the published-style loader and our modes, same process, same card (lrstudy-bench)
  determinism.json     the same seed twice with deterministic kernels, the graph path against the eager
                       one, and two runs without deterministic kernels: how far apart they end
  choice.json          the fastest mode that passed the checks, and why the others did not
  plan.json, configs/  the plan (sizes, epochs, caps) and the workflow configs of the named studies
  metrics.csv, summary.json   the seed recipe, 200 epochs, baseline seed 0, through the workflow
  packing.json         1, 2 and 3 trainings sharing the card (runs_per_gpu): run-epochs per second
  steps.json, logs/    every command, its exit status and time, its output, the runs' epoch lines
  README.md            what made the files, and the figures against the issue's goals

The steps run in order of priority, each under a time cap and all under one deadline (--budget-s), so a
call that runs short still brings back the most important figures. `--dry` rehearses every step on the
CPU in about 3 minutes on 2 cores (width 4, 512 training images, 2 epochs), to find a typo before device time is spent.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml

from lrstudy.atomic import atomic_write_json, atomic_write_text
from lrstudy.data.cifar10 import md5sum, prepare
from lrstudy.metrics import METRIC_COLUMNS
from lrstudy.tools.benchmark import MODES, OUR_MODES
from lrstudy.train.device import device_name

# The determinism runs' schedule: the lr changes at every step, so the graph path equals the eager one only
# if each replay reads the step's lr from its device tensor (a graph that kept the captured lr would not).
PER_STEP_SCHEDULE = ["--schedule", '{"name": "onecycle", "pct_start": 0.5}', "--lr-update", "step"]
# A mode counts as correct when its short-run accuracy is within this of the eager path's (a broken step
# lands at chance, 10%); the graph path must also equal the eager one exactly with deterministic kernels.
SANITY_ACC_POINTS = 0.10


@dataclass(frozen=True)
class Plan:
    device: str
    width: int
    train_limit: int | None
    test_limit: int | None
    bench_epochs: int
    determinism_epochs: int
    recipe_epochs: int
    packing_epochs: int
    # (step, cap in seconds): each step gets its cap or what the deadline leaves, whichever is less
    caps: tuple[tuple[str, int], ...]


FULL = Plan("cuda", 64, None, None, 3, 3, 200, 5, (("benchmark", 220), ("determinism", 100), ("recipe", 330)))
DRY = Plan("cpu", 4, 512, 200, 2, 2, 2, 2, (("benchmark", 300), ("determinism", 300), ("recipe", 300)))


class Check:
    def __init__(self, args: argparse.Namespace, plan: Plan):
        self.args, self.plan = args, plan
        self.project = args.project.resolve()
        self.deadline = time.monotonic() + args.budget_s
        self.steps: list[dict] = []
        self.card = card_name(plan.device)
        self.dir = args.out / "measurements" / f"{slug(self.card)}-{datetime.date.today().isoformat()}"
        self.logs = self.dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        # A previous call's files must never stand in for this call's runs.
        shutil.rmtree(args.scratch, ignore_errors=True)

    # -- running commands under the deadline --------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def cap(self, step: str) -> float:
        return min(dict(self.plan.caps).get(step, 10**6), self.left())

    def run(self, name: str, cmd: list[str], timeout: float, cwd: Path | None = None) -> bool:
        return self.run_all(name, {name: cmd}, timeout, cwd)

    def run_all(self, step: str, commands: dict[str, list[str]], timeout: float, cwd: Path | None = None) -> bool:
        """Start `commands` at once and wait for all of them; one entry in steps.json each."""
        if timeout < 5:
            for name, cmd in commands.items():
                self.steps.append({"step": step, "name": name, "cmd": cmd, "status": "skipped: out of time"})
            self.save_steps()
            return False
        started = time.monotonic()
        procs = {}
        for name, cmd in commands.items():
            log = open(self.logs / f"{name}.log", "w")
            procs[name] = (subprocess.Popen(cmd, cwd=cwd or self.project, stdout=log, stderr=subprocess.STDOUT), log)
        ok = True
        for name, (proc, log) in procs.items():
            try:
                rc = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - started)))
                status = "ok" if rc == 0 else f"failed (exit {rc})"
            except subprocess.TimeoutExpired:
                proc.terminate()  # Snakemake and the trainers stop cleanly on SIGTERM; the run resumes later
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                status = f"timed out after {timeout:.0f} s"
            log.close()
            ok &= status == "ok"
            self.steps.append(
                {
                    "step": step,
                    "name": name,
                    "cmd": commands[name],
                    "status": status,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
            self.save_steps()
        return ok

    def save_steps(self) -> None:
        atomic_write_json(self.dir / "steps.json", self.steps)

    # -- the steps ----------------------------------------------------------------------------------
    def data(self) -> Path:
        data = self.args.scratch / "data"
        data.mkdir(parents=True, exist_ok=True)
        npz = data / "cifar10.npz"
        limits = {"train_limit": self.plan.train_limit, "test_limit": self.plan.test_limit}
        prepare(self.args.archive, npz, data / "cifar10.json", **limits)
        return npz

    def benchmark(self, npz: Path) -> dict | None:
        p = self.plan
        out = self.args.scratch / "bench"
        cmd = [sys.executable, "-m", "lrstudy.tools.benchmark", "--data", str(npz), "--device", p.device]
        cmd += ["--width", str(p.width), "--epochs", str(p.bench_epochs), "--out", str(out)]
        cmd += ["--modes", ",".join(MODES)]
        self.run("benchmark", cmd, self.cap("benchmark"))
        if not (out / "benchmark.json").exists():
            return None
        for name in ("benchmark.json", "benchmark.md"):
            (self.dir / name).write_bytes((out / name).read_bytes())
        return json.loads((out / "benchmark.json").read_text())

    def determinism(self, npz: Path) -> dict:
        p = self.plan
        base = [sys.executable, "-m", "lrstudy.train.cli", "--data", str(npz), "--device", p.device, "--seed", "0"]
        base += ["--width", str(p.width), "--epochs", str(p.determinism_epochs), *PER_STEP_SCHEDULE]
        runs = {
            "det-eager-a": ["--deterministic"],
            "det-eager-b": ["--deterministic"],
            "det-graph": ["--deterministic", "--cuda-graph"],
            "fast-a": [],
            "fast-b": [],
        }
        root = self.args.scratch / "determinism"
        commands = {name: [*base, *extra, "--out", str(root / name)] for name, extra in runs.items()}
        # At once: deterministic kernels give the same numbers however the card is shared.
        self.run_all("determinism", commands, self.cap("determinism"))
        metrics = {name: read_metrics(root / name / "metrics.csv") for name in runs}
        result = {
            "epochs": p.determinism_epochs,
            "seed": 0,
            "commands": {name: " ".join(cmd[2:]) for name, cmd in commands.items()},
            "deterministic_repeat_identical": same(metrics["det-eager-a"], metrics["det-eager-b"]),
            # Off CUDA the engine ignores --cuda-graph: both sides would be eager.
            "graph_equals_eager_deterministic": same(metrics["det-eager-a"], metrics["det-graph"])
            if p.device == "cuda"
            else None,
            "nondeterministic_repeat_identical": same(metrics["fast-a"], metrics["fast-b"]),
            "nondeterministic_max_abs_diff": max_abs_diff(metrics["fast-a"], metrics["fast-b"]),
            "final_test_acc": {name: (m[-1]["test_acc"] if m else None) for name, m in metrics.items()},
        }
        atomic_write_json(self.dir / "determinism.json", result)
        return result

    def choose(self, bench: dict | None, determinism: dict) -> dict:
        """The fastest of our modes that ran, trains like the eager path, and (graph modes) computes what it does."""
        rows = {r["mode"]: r for r in (bench or {}).get("pipelines", []) if r["mode"] in OUR_MODES}
        eager_acc = rows.get("eager", {}).get("final_test_acc")
        rejected, passed = {}, []
        for mode in OUR_MODES:
            row = rows.get(mode)
            if row is None or "s_per_epoch" not in row:
                rejected[mode] = (row or {}).get("error") or (row or {}).get("skipped") or "did not run"
            elif eager_acc is not None and row["final_test_acc"] < eager_acc - SANITY_ACC_POINTS:
                rejected[mode] = f"test accuracy {row['final_test_acc']:.4f}, eager {eager_acc:.4f}"
            elif OUR_MODES[mode][1] and determinism["graph_equals_eager_deterministic"] is False:
                rejected[mode] = "with deterministic kernels the graph path's metrics differ from the eager path's"
            else:
                passed.append(mode)
        mode = min(passed, key=lambda m: rows[m]["s_per_epoch"], default="eager")
        choice = {
            "mode": mode,
            "compile": OUR_MODES[mode][0],
            "cuda_graph": OUR_MODES[mode][1],
            "s_per_epoch": rows.get(mode, {}).get("s_per_epoch"),
            "passed": passed,
            "rejected": rejected,
        }
        atomic_write_json(self.dir / "choice.json", choice)
        return choice

    def study(self, name: str, epochs: int, seeds: list[int], choice: dict, runs_per_gpu: int, timeout: float) -> Path:
        """A named study through the workflow, as a user runs it; returns its results folder."""
        p = self.plan
        config = {
            "study": name,
            "dataset": {
                "archive": str(self.args.archive),
                "md5": md5sum(self.args.archive),
                "train_limit": p.train_limit,
                "test_limit": p.test_limit,
            },
            "train": {"epochs": epochs, "width": p.width},
            "execution": {
                "device": p.device,
                "compile": choice["compile"],
                "cuda_graph": choice["cuda_graph"],
                "runs_per_gpu": runs_per_gpu,
            },
            "variants": {"baseline": {}},
            "seeds": seeds,
        }
        path = self.dir / "configs" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
        jobs = len(seeds)
        cmd = [sys.executable, "-m", "snakemake", "--cores", str(4 * jobs), "--resources", f"gpu={jobs}"]
        cmd += ["--configfile", str(path)]
        self.run(name, cmd, timeout)
        study = self.project / "studies" / name
        for seed in seeds:  # the per-epoch progress lines
            log = study / "logs" / "train" / "baseline" / f"seed{seed}.log"
            if log.exists():
                (self.logs / f"{name}-train-seed{seed}.log").write_bytes(log.read_bytes())
        return study / "results"

    def recipe(self, choice: dict) -> dict | None:
        results = self.study("seed-recipe", self.plan.recipe_epochs, [0], choice, 1, self.cap("recipe"))
        run = results / "runs" / "baseline" / "seed0"
        if not (run / "summary.json").exists():
            return None
        for name in ("metrics.csv", "summary.json"):
            (self.dir / name).write_bytes((run / name).read_bytes())
        return json.loads((run / "summary.json").read_text())

    def packing(self, choice: dict, recipe_rows: list[dict]) -> dict:
        """k trainings at once on the card. k = 1 is the 200-epoch run (same mode, same card, more epochs)."""
        p = self.plan
        result = {"mode": choice["mode"], "epochs": p.packing_epochs, "k": {}}
        if recipe_rows:
            result["k"]["1"] = packing_row(1, [recipe_rows], None, "the seed-recipe run's epochs after the first")
        for k in (2, 3):
            # Always trained afresh (a finished study would skip its runs, and its wall time would mean nothing).
            shutil.rmtree(self.project / "studies" / f"packing-{k}", ignore_errors=True)
            started = time.monotonic()
            results = self.study(f"packing-{k}", p.packing_epochs, list(range(k)), choice, k, self.left() - 5)
            wall = time.monotonic() - started
            rows = [read_metrics(results / "runs" / "baseline" / f"seed{s}" / "metrics.csv") for s in range(k)]
            result["k"][str(k)] = packing_row(k, rows, wall, f"{k} runs of {p.packing_epochs} epochs at once")
            atomic_write_json(self.dir / "packing.json", result)
        return result

    def readme(self, choice: dict, bench: dict | None, determinism: dict, summary: dict | None, packing: dict) -> None:
        atomic_write_text(self.dir / "README.md", render_readme(self, choice, bench, determinism, summary, packing))


# -- reading and comparing metrics ------------------------------------------------------------------
def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def same(a: list[dict], b: list[dict]) -> bool | None:
    """Identical metrics apart from timing and lr_last (read back from the optimizer: the graph path holds
    the lr in a float32 tensor, which the float32 update rounds any lr to); None when either run is missing."""
    if not a or not b:
        return None
    drop = ("epoch_seconds", "lr_last")
    return [{k: v for k, v in r.items() if k not in drop} for r in a] == [
        {k: v for k, v in r.items() if k not in drop} for r in b
    ]


def max_abs_diff(a: list[dict], b: list[dict]) -> dict | None:
    if not a or not b or len(a) != len(b):
        return None
    columns = [c for c in METRIC_COLUMNS if c not in ("epoch", "lr", "lr_last", "epoch_seconds")]
    return {c: max(abs(x[c] - y[c]) for x, y in zip(a, b, strict=True)) for c in columns}


def packing_row(k: int, runs: list[list[dict]], wall: float | None, what: str) -> dict:
    """Run-epochs per second of the whole card, from the steady epochs (the first is warm-up)."""
    steady = [r["epoch_seconds"] for rows in runs for r in rows[1:]]
    complete = len(runs) == k and all(runs) and steady
    per_run = sum(steady) / len(steady) if complete else None
    return {
        "what": what,
        "runs": k,
        "steady_s_per_epoch_each": per_run,
        "run_epochs_per_s": k / per_run if per_run else None,
        "wall_s": round(wall, 1) if wall is not None else None,
        "complete": bool(complete),
    }


# -- naming -------------------------------------------------------------------------------------------
def card_name(device: str) -> str:
    return device_name(torch.device(device))


def slug(name: str) -> str:
    """'NVIDIA H200' -> 'h200'; a CPU model -> 'cpu-...'. Folder names for measurements/."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name.lower()) if w and w not in ("nvidia", "r", "tm", "cpu")]
    return "-".join(words[:3]) or "device"


# -- the README beside the evidence -----------------------------------------------------------------
def verdict(value: bool | None) -> str:
    """A comparison's outcome; None when a run is missing, or off CUDA for the graph path (ignored there)."""
    return {True: "yes", False: "no"}.get(value, "not measured")


def render_readme(check: Check, choice, bench, determinism, summary, packing) -> str:
    p, a = check.plan, check.args
    fmt = lambda x, spec=".3f": "n/a" if x is None else format(x, spec)  # noqa: E731
    lines = [
        f"# GPU measurements: {check.card}, {datetime.date.today().isoformat()}",
        "",
        "Made by one call of the prepared script on a lent host, in a checkout of this repository:",
        "",
        "```bash",
        f"{'DRY=1 ' if a.dry else ''}OUT=$OUT bash tools/gpu/check.sh"
        + ("   # a CPU rehearsal: not GPU evidence" if a.dry else ""),
        "```",
        "",
        f"Versions: {json.dumps((bench or {}).get('versions', {}))}. Every command, its exit status and "
        "its time are in `steps.json`, its output in `logs/`.",
        "",
        "## Speed (`benchmark.md`)",
        "",
        (Path(check.dir / "benchmark.md").read_text() if bench else "The benchmark did not finish: see steps.json."),
        "",
        "## The fastest correct mode (`choice.json`)",
        "",
        f"`{choice['mode']}` (compile {choice['compile']}, cuda_graph {choice['cuda_graph']}), "
        f"{fmt(choice['s_per_epoch'])} s/epoch; rejected: {json.dumps(choice['rejected']) or 'none'}.",
        "",
        "## Determinism (`determinism.json`)",
        "",
        f"- deterministic kernels, the same seed twice, {p.determinism_epochs} epochs: identical "
        f"`metrics.csv` (timing aside): **{verdict(determinism['deterministic_repeat_identical'])}**",
        f"- the graph path against the eager path, deterministic kernels, lr changed at every step: identical: "
        f"**{verdict(determinism['graph_equals_eager_deterministic'])}**",
        f"- without deterministic kernels: identical: {verdict(determinism['nondeterministic_repeat_identical'])}; "
        f"largest difference per column: {json.dumps(determinism['nondeterministic_max_abs_diff'])}",
        "",
        f"## The seed recipe, {p.recipe_epochs} epochs (`metrics.csv`, `summary.json`)",
        "",
    ]
    if summary:
        lines.append(
            f"Baseline, seed 0, through the workflow in mode `{choice['mode']}`: final test accuracy "
            f"**{100 * summary['final_test_acc']:.2f}%** (best {100 * summary['best_test_acc']:.2f}%), "
            f"train time {summary['train_seconds']:.0f} s. Config: `configs/seed-recipe.yaml`."
        )
    else:
        lines.append("The run did not finish: see steps.json and logs/seed-recipe.log.")
    lines += ["", "## Packing (`packing.json`)", "", "| runs at once | s/epoch each (steady) | run-epochs/s | wall s |"]
    lines += ["|---:|---:|---:|---:|"]
    for k, row in packing["k"].items():
        lines.append(
            f"| {k} | {fmt(row['steady_s_per_epoch_each'])} | {fmt(row['run_epochs_per_s'])} | "
            f"{fmt(row['wall_s'], '.1f')} |"
        )
    lines += ["", "## Against the issue's goals", ""]
    if a.dry:
        return "\n".join([*lines, "A CPU rehearsal at width 4: no goal applies.", ""])
    lines += ["| goal | measured here | met |", "|---|---|---|"]
    for goal, value, met in goals(choice, bench, summary, packing):
        lines.append(f"| {goal} | {value} | {'yes' if met else 'no' if met is False else 'not measured'} |")
    return "\n".join(lines) + "\n"


def goals(choice, bench, summary, packing) -> list[tuple[str, str, bool | None]]:
    """Each goal of issue 9 with the figure this call measured (never one measured elsewhere)."""
    rows = {r["mode"]: r for r in (bench or {}).get("pipelines", []) if "s_per_epoch" in r}
    chosen, published = rows.get(choice["mode"]), rows.get("published")
    s = chosen["s_per_epoch"] if chosen else None
    speedup = published["s_per_epoch"] / s if s and published else None
    acc = summary["final_test_acc"] if summary and summary.get("final_test_acc") is not None else None
    best = max((r["run_epochs_per_s"] or 0 for r in packing["k"].values()), default=0)
    study_min = 12 * 200 / best / 60 if best else None
    return [
        (
            "<= 0.6 s/epoch, train + full eval, bs 256",
            "n/a" if s is None else f"{s:.3f} s ({choice['mode']})",
            None if s is None else s <= 0.6,
        ),
        (
            ">= 10x the published-style loader",
            "n/a" if speedup is None else f"{speedup:.1f}x",
            None if speedup is None else speedup >= 10,
        ),
        (
            ">= 94.8% final test accuracy, 200 epochs",
            "n/a" if acc is None else f"{100 * acc:.2f}%",
            None if acc is None else acc >= 0.948,
        ),
        (
            "default study (12 runs x 200 epochs) <= 25 min on one GPU",
            "n/a" if study_min is None else f"{study_min:.1f} min of training at the best packing (computed)",
            None if study_min is None else study_min <= 25,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", type=Path, required=True, help="the real cifar-10-python.tar.gz")
    ap.add_argument("--out", type=Path, required=True, help="where measurements/ and the scratch files go")
    ap.add_argument("--project", type=Path, default=Path.cwd(), help="the checkout to run the workflow in")
    ap.add_argument(
        "--scratch",
        type=Path,
        default=Path("/tmp/lrstudy-check"),
        help="the data cache and the benchmark's and determinism runs' files (models: not brought back)",
    )
    ap.add_argument("--budget-s", type=float, default=510.0, help="the whole call's deadline, in seconds")
    ap.add_argument("--dry", action="store_true", help="the CPU rehearsal: width 4, 512 images, 2 epochs")
    args = ap.parse_args(argv)
    if not args.archive.is_file():  # before anything is emptied or started
        ap.error(f"--archive {args.archive}: no such file (ARCHIVE= for check.sh)")
    plan = DRY if args.dry else FULL
    check = Check(args, plan)
    atomic_write_json(check.dir / "plan.json", {**asdict(plan), "card": check.card, "dry": args.dry})
    npz = check.data()
    bench = check.benchmark(npz)
    determinism = check.determinism(npz)
    choice = check.choose(bench, determinism)
    summary = check.recipe(choice)
    packing = check.packing(choice, read_metrics(check.dir / "metrics.csv"))
    check.readme(choice, bench, determinism, summary, packing)
    print((check.dir / "README.md").read_text())
    failed = [s for s in check.steps if s["status"] != "ok"]
    for s in failed:
        print(f"check: {s['name']}: {s['status']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
