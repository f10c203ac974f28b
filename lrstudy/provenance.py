"""Which code made a result: the git commit of the project and a fingerprint of the source files that
determine a run's numbers (or the analysis's), recorded with every run.

The fingerprint hashes the files' contents, so it names the code a run was made by even outside git and
is unchanged by edits elsewhere (README, tests, the report's wording).
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
from pathlib import Path

# The modules whose code decides a run's numbers: data decoding, augmentation, model, schedule, training.
ENGINE_CODE = [
    "lrstudy.data.cifar10",
    "lrstudy.train.augment",
    "lrstudy.train.model",
    "lrstudy.schedule",
    "lrstudy.train.loop",
    "lrstudy.train.steps",
    "lrstudy.train.engine",
    "lrstudy.train.checkpoint",
    "lrstudy.train.run",
    "lrstudy.config",
    "lrstudy.metrics",
]
# The modules that turn runs into tables, figures and the report.
ANALYSIS_CODE = [
    "lrstudy.analysis.aggregate",
    "lrstudy.analysis.stats",
    "lrstudy.analysis.adaptive",
    "lrstudy.analysis.variants",
    "lrstudy.analysis.figures",
    "lrstudy.analysis.report",
    "lrstudy.analysis.tables",
    "lrstudy.metrics",
]


def code_fingerprint(modules: list[str]) -> str:
    """16 hex digits of the sha256 of the modules' source files, found without importing them."""
    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ImportError(f"cannot find the source of {name}")
        h.update(name.encode() + b"\0" + Path(spec.origin).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def git_state(repo: str | Path) -> dict:
    """{'commit': HEAD or None, 'dirty': uncommitted changes to tracked files (None outside git)}."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def code_record(repo: str | Path) -> dict:
    """What a run records about the code that made it."""
    return {**git_state(repo), "engine_fingerprint": code_fingerprint(ENGINE_CODE)}
