"""Whether a study is up to date, by the workflow's own staleness check: Snakemake's dry run of the study,
exactly what `snakemake --config study=NAME -n` prints. It writes nothing (a dry run never does: see
docs/reruns-and-recovery.md), and it sees every reason the workflow has to remake something: a changed
recipe, a deleted run, changed analysis code, a variant summary behind its runs.

    study_status(project, "demo")  ->  StudyStatus(name="demo", jobs={"train": 1, "aggregate": 1, ...}, ...)
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lrstudy.config import DEFAULT_STUDY, snakemake_for


class StatusError(RuntimeError):
    """The dry run itself failed (a config error, a study never run): the message is Snakemake's."""


@dataclass(frozen=True)
class StudyStatus:
    name: str
    jobs: dict[str, int]  # rule -> jobs a plain `snakemake` of the study would run; {} when up to date
    reasons: dict[str, list[str]] = field(default_factory=dict)  # Snakemake's reason -> the rules it applies to

    @property
    def up_to_date(self) -> bool:
        return not self.jobs

    def describe(self) -> str:
        if self.up_to_date:
            return f"study {self.name} is up to date"
        jobs = ", ".join(f"{n} {rule}" for rule, n in self.jobs.items() if rule != "all")
        why = "; ".join(f"{reason}: {', '.join(rules)}" for reason, rules in self.reasons.items())
        return f"study {self.name} is out of date: `{snakemake_for(self.name)}` would run {jobs} ({why})"


def study_status(project: Path, name: str = DEFAULT_STUDY, timeout: float = 600) -> StudyStatus:
    """The study's dry run, in the project folder (where its Snakefile and profile are), with this Python."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--config", f"study={name}"]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise StatusError(f"study {name}: `snakemake -n` failed:\n{out.strip()[-2000:]}")
    return StudyStatus(name, job_counts(out), reasons(out))


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's job-stats table (a dry run's, or a run's)."""
    counts, in_table = {}, False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
        elif in_table and parts[:1] == ["total"]:
            break
    return counts


def reasons(output: str) -> dict[str, list[str]]:
    """Snakemake's `Reasons:` summary of a dry run: reason -> the rules it applies to."""
    out, current, in_block = {}, None, False
    for line in output.splitlines():
        if line.startswith("Reasons:"):
            in_block = True
        elif in_block and line.startswith("        ") and current:
            out[current] = [rule.strip() for rule in line.split(",") if rule.strip()]
        elif in_block and line.startswith("    ") and line.rstrip().endswith(":"):
            current = line.strip()[:-1]
        elif in_block and line.strip() and not line.startswith(" "):
            break
    return out
