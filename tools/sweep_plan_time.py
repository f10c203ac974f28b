"""How long `snakemake -n` takes to plan a sweep of 1,000 variants: one grid entry crossing 10 lrs, 10
weight decays and 10 momenta (lrstudy/grid.py), with the default three seeds, 3,003 training jobs, on a
GPU (`device: cuda`); and,
for scale, the plan of config/example_study.yaml (8 training jobs). docs/configuration.md ("Sweeps")
quotes what it printed.

    python tools/sweep_plan_time.py

A dry run writes nothing: each study, never run, is planned in a temporary folder. Prints each plan's
wall-clock and CPU seconds (Snakemake and its children) and the training jobs it planned.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SWEEP = {
    "study": "sweep-1000",
    # A study for a GPU machine: on this CPU, `device: auto` would add the estimate of what its runs would
    # cost here (docs/reruns-and-recovery.md), which a GPU machine does not make.
    "execution": {"device": "cuda"},
    "variants": {"baseline": {}},
    "grid": [
        {
            "cross": {
                "lr": [round(0.01 * 1.5**k, 5) for k in range(10)],
                "weight_decay": [round(1e-5 * 2**k, 8) for k in range(10)],
                "momentum": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99],
            }
        }
    ],
}


def plan(configfile: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, train jobs) of `snakemake -n --configfile configfile` in the project."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(configfile)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    jobs = re.search(r"^train\s+(\d+)$", done.stdout, re.MULTILINE)
    return wall, cpu, int(jobs.group(1)) if jobs else 0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "sweep_1000.yaml"
        sweep.write_text(yaml.safe_dump(SWEEP))
        for name, path in [
            ("config/example_study.yaml", REPO / "config/example_study.yaml"),
            ("1,000-variant sweep", sweep),
        ]:
            wall, cpu, jobs = plan(path)
            print(f"{name}: {jobs} train jobs planned in {wall:.1f} s wall, {cpu:.1f} CPU-s")


if __name__ == "__main__":
    main()
