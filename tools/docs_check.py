"""Run the commands the docs show, so that the docs cannot drift from the code.

Every line of a fenced ```bash block in README.md and docs/*.md is a command (a `#` comment after it is
dropped). Each one is either run here, page by page in order, in scratch copies of the workflow, or listed
in NOT_RUN with the reason it cannot run on a CPU in seconds. A scratch copy trains on a tiny generated
archive: its study configs are shrunk to width 4, no data limits, one seed and the fewest epochs their lr
windows and step milestones allow, and config.yaml's study to 3 epochs and two variants, so that every
command that trains finishes in seconds. Paths the docs use as placeholders (an archive, /tmp) point into
the scratch folder.

    python tools/docs_check.py --list    each command: run, or not run and why
    python tools/docs_check.py           run them; exit 1 if one fails
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/*.md"]
# What a scratch copy needs to run the documented commands (make's targets included).
COPIED = ["Snakefile", "config.yaml", "config", "workflow", "report", "profiles", "Makefile"]

# Commands shown in the docs that this check does not run, and why. An entry that no page shows any more
# is an error, so the list cannot go stale.
NOT_RUN = {
    "make study": "builds .venv and runs the whole study; its command, snakemake --cores 1 --resources gpu=1, is run",
    "make test": "the test suite: CI runs it, and this check is part of it",
    "make lint": "CI runs it before the tests",
    "make test-fast": "part of the test suite, which CI runs",
    "python tests/test_golden_run.py": "rewrites the stored golden runs (only after an intended change of numbers)",
    "make format": "rewrites the source tree",
    ".venv/bin/python -m pytest tests/test_schedule.py": "runs tests: CI runs the whole suite",
    "python tools/docs_check.py --list": "this check itself",
    "python tools/docs_check.py": "this check itself",
    "lrstudy-train --archive cifar-10-python.tar.gz --epochs 200 --lr 0.1 --batch-size 256 --out runs/a": (
        "the published recipe: 200 epochs at width 64 (hours on a GPU)"
    ),
    "lrstudy-train --archive cifar-10-python.tar.gz --out runs/wsd --schedule '{name: wsd, decay: sqrt}' "
    "--warmup '{epochs: 5}' --lr-update step": (
        "200 epochs at width 64 (hours on a GPU); tests/test_cli.py parses these flags"
    ),
    "snakemake --cores 4 --resources gpu=1 --configfile config/studies/wsd_vs_cosine.yaml": (
        "9 runs at the published scale (a GPU); tests/test_worked_studies.py runs a tiny version"
    ),
    "snakemake --cores 2 --configfile config/studies/lr_wd_sweep.yaml": (
        "14 runs; tests/test_sweep_study.py runs a tiny version of it to its report (the plan, -n, is run here)"
    ),
    "python tools/sweep_plan_time.py": "plans 3,003 jobs, about a minute on 2 busy cores (tests/test_sweeps.py "
    "times what the workflow computes from the config)",
    "python tools/lr_cost.py": "minutes of CPU training steps at width 64; tests/test_lr_cost.py runs it at width 4",
    "lrstudy-bench --data results/data/cifar10.npz --epochs 3 --out results/benchmark": (
        "a GPU benchmark at width 64 on the whole dataset"
    ),
    "lrstudy-bench --data results/data/cifar10.npz --modes published,eager,compile,graph,compile+graph --out b": (
        "a GPU benchmark of the CUDA modes"
    ),
    "DRY=1 OUT=/tmp/check ARCHIVE=/tmp/cifar-10-python.tar.gz bash tools/gpu/check.sh": (
        "about 3 minutes on 2 cores; tests/test_gpu_check.py runs its rehearsal"
    ),
    "tensorboard --logdir results/tensorboard": "starts a web server that runs until stopped",
    "snakemake --profile profiles/slurm": "needs a SLURM cluster; tests/test_slurm.py starts one and runs the study",
    "snakemake --profile profiles/kubernetes": (
        "needs a Kubernetes cluster and a bucket; tests/test_cloud.py plans the default study with it on a local S3"
    ),
    "snakemake --profile profiles/googlebatch": (
        "needs a Google Cloud project and a bucket; tests/test_cloud.py plans the default study with it on a local S3"
    ),
    "docker build -f containers/Dockerfile --target train -t REGISTRY/lrstudy-train:TAG .": (
        "no base image can be pulled here; tests/test_environments.py checks what the image installs"
    ),
    "docker build -f containers/Dockerfile --target analysis -t REGISTRY/lrstudy-analysis:TAG .": (
        "no base image can be pulled here; tests/test_environments.py checks what the image installs"
    ),
    "docker push REGISTRY/lrstudy-train:TAG": "pushes to your registry",
    "docker push REGISTRY/lrstudy-analysis:TAG": "pushes to your registry",
    'snakemake --cores 4 --resources gpu=1 --software-deployment-method apptainer --apptainer-args "--nv"': (
        "needs Apptainer, the images and a GPU (Debian has no Apptainer package)"
    ),
}

# Pages that run together, in this order, in one scratch copy (a page may use what an earlier one made:
# the report page uses the README's demo); the other pages form a last group. Groups run side by side.
GROUPS = [["README.md", "docs/report-and-statistics.md"]]

# Placeholders in the docs -> where they point in the scratch folder ({archive}, {tmp}).
PLACEHOLDERS = {
    "/path/to/cifar-10-python.tar.gz": "{archive}",
    "/data/cifar-10-python.tar.gz": "{archive}",
    "/tmp/cifar-10-python.tar.gz": "{archive}",
    "/tmp/": "{tmp}/",
}
# The tiny archive: enough training images for the docs' `--train-limit 256`, a few batches per epoch.
TRAIN_PER_BATCH, TEST_IMAGES = 100, 100


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def pages(repo: Path = REPO) -> list[Path]:
    return [p for pattern in PAGES for p in sorted(repo.glob(pattern))]


def commands(path: Path, repo: Path = REPO) -> list[Command]:
    """The commands of the page's ```bash blocks, in order: one a line, comments dropped."""
    found, in_bash = [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_bash = not in_bash and stripped == "```bash"
            continue
        if in_bash:
            text = re.sub(r"\s+#.*$", "", stripped).strip()
            if text and not text.startswith("#"):
                found.append(Command(str(path.relative_to(repo)), number, text))
    return found


def all_commands(repo: Path = REPO) -> list[Command]:
    return [c for page in pages(repo) for c in commands(page, repo)]


def problems(found: list[Command]) -> list[str]:
    """What makes the docs and this check disagree, without running anything."""
    texts = {c.text for c in found}
    out = [f"NOT_RUN lists {text!r}, which no page shows any more" for text in NOT_RUN if text not in texts]
    for c in found:
        if c.text in NOT_RUN:
            continue
        # A command with a placeholder this check cannot fill in can only be listed, with its reason.
        if re.search(r"<[^>]+>|\.\.\.|\b\d*N\b", c.text):
            out.append(f"{c}: has a placeholder: list it in NOT_RUN with the reason, or write a runnable command")
    return out


def broken_links(repo: Path = REPO) -> list[str]:
    """Links between the pages (README.md, docs/, config/README.md) to a file or heading that is not there."""
    files = [*pages(repo), repo / "config/README.md"]
    headings = {f: {_slug(h) for h in re.findall(r"^#+ (.*)$", f.read_text(), re.M)} for f in files}
    out = []
    for f in files:
        for link in re.findall(r"\]\(([^)]+)\)", f.read_text()):
            if re.match(r"[a-z]+://", link):
                continue
            path, _, anchor = link.partition("#")
            target = (f.parent / path).resolve() if path else f
            if not target.exists():
                out.append(f"{f.relative_to(repo)}: link to {link}: no such file")
            elif anchor and target in headings and anchor not in headings[target]:
                out.append(f"{f.relative_to(repo)}: link to {link}: no such heading")
    return out


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped, spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def shrink(path: Path, defaults: bool) -> None:
    """Make a study config train in seconds on the tiny archive: width 4, no data limits, one seed per
    variant, and no more epochs than its lr windows and step milestones need. The defaults (config.yaml)
    become 3 epochs and two variants, with no checkpoint before the end of a run."""
    config = yaml.safe_load(path.read_text()) or {}
    if defaults:
        window = [{"start": 2, "end": 3, "factor": 5.0}]
        config["variants"] = {"baseline": {}, "lr_x5": {"lr_windows": window}}
        config["execution"].update(device="cpu", cpu_threads=1, checkpoint_every=100)
    if isinstance(config.get("train"), dict) or defaults:
        train = config["train"] = {**config.get("train", {}), "width": 4, "precision": "fp32", "batch_size": 100}
        train["epochs"] = min(train.get("epochs", 3), max([3, *_epochs_needed(config)]))
    for key in ("train_limit", "test_limit"):
        if config.get("dataset", {}).get(key) is not None:
            config["dataset"][key] = None
    if config.get("seeds"):
        config["seeds"] = config["seeds"][:1]
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _epochs_needed(config: dict) -> list[int]:
    """The last epoch of each lr window, step milestone and piecewise knot, and the first after each warmup,
    of the study's recipes and grid."""
    recipes = [config.get("train") or {}, *(config.get("variants") or {}).values()]
    recipes += [g.get("recipe") or {} for g in config.get("grid") or []]
    ends = [w["end"] - 1 for r in recipes for w in r.get("lr_windows") or []]
    ends += [w["end"] - 1 for g in config.get("grid") or [] for w in g["windows"]]
    schedules = [r["schedule"] for r in recipes if isinstance(r.get("schedule"), dict)]
    milestones = [m for r in [*recipes, *schedules] for m in r.get("step_milestones") or r.get("milestones") or []]
    knots = [k[0] for s in schedules for k in s.get("knots") or []]
    warmups = [(r.get("warmup") or {}).get("epochs", 0) + 1 for r in recipes]
    return ends + milestones + [math.ceil(k) for k in knots + warmups]


def prepare(scratch: Path, archive: Path) -> dict[str, str]:
    """A scratch copy of the workflow on the tiny archive; returns the placeholders' values."""
    project, tmp = scratch / "project", scratch / "tmp"
    project.mkdir(parents=True)
    tmp.mkdir()
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, project / name)
    (project / "cifar-10-python.tar.gz").symlink_to(archive)  # the docs' bare `cifar-10-python.tar.gz`
    shrink(project / "config.yaml", defaults=True)
    for path in (project / "config").glob("*.yaml"):
        shrink(path, defaults=False)
    # local.yaml as `make local` writes it, for the commands that come before a page's `make local`.
    with (project / "local.yaml").open("w") as local:
        subprocess.run([sys.executable, "-m", "lrstudy.data.local_settings", str(archive)], check=True, stdout=local)
    return {"archive": str(archive), "tmp": str(tmp), "project": str(project)}


def as_run(text: str, values: dict[str, str]) -> str:
    """The command as this check runs it: placeholders filled in; `make` told to use this venv as it is
    (never to rebuild it: -o marks its stamp as up to date)."""
    pattern = "|".join(re.escape(p) for p in PLACEHOLDERS)  # one pass: a filled-in value is not replaced again
    text = re.sub(pattern, lambda m: PLACEHOLDERS[m.group(0)].format(**values), text)
    if text.startswith("make "):
        venv = sys.prefix
        text = f"make -o {venv}/.installed VENV={venv} {text[len('make ') :]}"
    return text


def run(found: list[Command], scratch: Path, log=print) -> list[str]:
    """Run every command not in NOT_RUN; return the failures. The pages of each of GROUPS run in order in a
    scratch copy of their own, the groups side by side (most commands use one core)."""
    sys.path.insert(0, str(REPO / "tests"))  # the test suite's generator of archives in the official format
    import synthetic_archive

    (scratch / "data").mkdir(parents=True)
    archive = synthetic_archive.write_archive(
        scratch / "data" / "cifar-10-python.tar.gz", train_per_batch=TRAIN_PER_BATCH, test=TEST_IMAGES
    )
    groups = [[c for c in found if _group(c.page) == g] for g in range(len(GROUPS) + 1)]
    with ThreadPoolExecutor(len(groups)) as pool:
        results = pool.map(
            lambda g: _run_group(g[1], prepare(scratch / f"group{g[0]}", archive), log), enumerate(groups)
        )
        return [failure for failures in results for failure in failures]


def _group(page: str) -> int:
    return next((i for i, pages in enumerate(GROUPS) if page in pages), len(GROUPS))


def _run_group(found: list[Command], values: dict[str, str], log) -> list[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    failures = []
    for c in found:
        if c.text in NOT_RUN:
            continue
        command = as_run(c.text, values)
        start = time.monotonic()
        proc = subprocess.run(
            ["bash", "-c", command], cwd=values["project"], env=env, capture_output=True, text=True, timeout=600
        )
        log(f"{time.monotonic() - start:6.1f} s  rc {proc.returncode}  {c}")
        if proc.returncode != 0:
            failures.append(f"{c}\n  ran: {command}\n{(proc.stdout + proc.stderr)[-3000:]}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="list the commands: run, or not run and why")
    parser.add_argument("--keep", type=Path, help="run in this folder (kept) instead of a temporary one")
    args = parser.parse_args(argv)
    found = all_commands()
    issues = problems(found) + broken_links()
    if args.list:
        for c in found:
            print(f"{c}\n    {'not run: ' + NOT_RUN[c.text] if c.text in NOT_RUN else 'run'}")
    if issues or args.list:
        print("\n".join(issues), file=sys.stderr)
        return 1 if issues else 0
    if args.keep:
        failures = run(found, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="docs-check-") as scratch:
            failures = run(found, Path(scratch))
    print("\n\n".join(failures) or f"all {sum(c.text not in NOT_RUN for c in found)} commands ran", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
