"""Shared fixtures: small CIFAR-format archives and a scratch copy of the workflow to run Snakemake in."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import synthetic_archive
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = ["Snakefile", "config.yaml", "config", "workflow", "report", "profiles"]


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """A learnable 1000-train / 300-test archive in the official format."""
    return synthetic_archive.write_archive(
        tmp_path_factory.mktemp("data") / "cifar-10-python.tar.gz", train_per_batch=200, test=300, seed=1
    )


class Workflow:
    """A copy of the workflow in a temporary directory, with a study config written per test."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True)
        for name in WORKFLOW_FILES:
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            elif src.exists():
                shutil.copy2(src, root / name)

    @classmethod
    def copy_of(cls, other: Workflow, root: Path) -> Workflow:
        """A copy of another workflow folder with everything made in it (links kept as links)."""
        shutil.copytree(other.root, root, symlinks=True)
        copy = cls.__new__(cls)
        copy.root = root
        return copy

    def write_config(self, config: dict, name: str = "study.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def snakemake(
        self, *args: str, check: bool = True, timeout: int = 900, cores: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess:
        """`snakemake --cores 2 ARGS` in the workflow copy (`cores=False`: exactly ARGS, as a user types)."""
        cmd = [sys.executable, "-m", "snakemake", *(["--cores", "2"] if cores else []), *args]
        proc = subprocess.run(cmd, cwd=cwd or self.root, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def planned_jobs(self, *args: str) -> dict[str, int]:
        """Rule -> job count of a dry run."""
        return job_counts(self.snakemake("-n", *args).stdout)


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


@pytest.fixture
def workflow(tmp_path) -> Workflow:
    return Workflow(tmp_path / "wf")


@pytest.fixture(scope="module")
def s3():
    """A local S3 server (moto) on loopback with an empty bucket, for one test module; stopped after it."""
    from s3_server import S3Server

    server = S3Server()
    yield server
    server.stop()


def pytest_collection_modifyitems(items):
    """A test that takes the `workflow` fixture runs Snakemake: it is marked `workflow` here, so that no
    such test can slip into the fast tier (tests that start Snakemake otherwise carry the mark themselves).
    Files with such tests are collected first."""
    for item in items:
        if "workflow" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.workflow)
    # Files that run Snakemake first: `make test` hands whole files to its two workers in this order, and a
    # long file handed out last would leave one worker idle while the other finishes it.
    runs_snakemake = {item.path for item in items if item.get_closest_marker("workflow")}
    items.sort(key=lambda item: item.path not in runs_snakemake)


def small_study(archive: Path, **keys) -> dict:
    """A CPU study that trains in seconds: narrow model, a few epochs, two variants, two seeds. `keys` are
    recipe or execution keys."""
    from lrstudy.config import EXECUTION_KEYS

    execution = {"device": "cpu", **{k: v for k, v in keys.items() if k in EXECUTION_KEYS}}
    recipe = {k: v for k, v in keys.items() if k not in EXECUTION_KEYS}
    return {
        "dataset": {"archive": str(archive), "md5": synthetic_md5(archive)},
        "train": {"epochs": 4, "batch_size": 50, "lr": 0.05, "width": 4, "precision": "fp32", **recipe},
        "execution": execution,
        "variants": {"baseline": {}, "lr_x5": {"lr_windows": [{"start": 2, "end": 3, "factor": 5.0}]}},
        "seeds": [0, 1],
    }


def synthetic_md5(path: Path) -> str:
    from lrstudy.data.cifar10 import md5sum

    return md5sum(path)
