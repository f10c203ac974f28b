"""The run cache: every finished run kept by its identity, so that no config change loses one.

A finished run is a pure function of its recipe, seed and data (the `config_hash` its summary.json records)
and of the engine code that made it (`code.engine_fingerprint`). Each one is kept under

    results/run-cache/{variant}/seed{seed}/{config_hash}-{engine_fingerprint}/

as hard links to the run's own files (its folder under results/runs/, and its TensorBoard folder), so a
run in place costs no disk twice. The workflow writes every file by renaming a new one into place
(lrstudy/atomic.py) and Snakemake removes a job's old outputs before it runs, so a kept link never changes
(a file edited in place by hand would change both). When the study's config changes the run's recipe or data, Snakemake
replaces the files in place; the links in the cache keep the superseded run, and a train job whose
identity the cache holds (the config went back) links it into place instead of training it again, as
DVC's run-cache does. `lrstudy-run-cache` (lrstudy/tools/run_cache.py) lists the kept runs and prunes the
superseded ones.

Snakemake's own between-workflow cache (`cache:` + `--cache`) was considered first and not used: its key
hashes the rule's script and every parameter (a path, an edited comment in train.py: another key) and not
the engine code; it restores on a forced job too, so `-f` could never train a run again; it needs an
environment variable and a flag on every command; and it has no way to list or prune what it keeps.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lrstudy.atomic import atomic_link

CACHE = Path("results/run-cache")
RUNS = Path("results/runs")
TENSORBOARD = Path("results/tensorboard")
RUN_FILES = ("metrics.csv", "summary.json", "model.pt")  # the train rule's outputs; summary.json is written last


@dataclass(frozen=True)
class Entry:
    """One kept run."""

    path: Path
    variant: str
    seed: int
    config_hash: str
    engine: str

    @property
    def kept_since(self) -> float:
        """When it was kept (its folder's time: the files' own times move each time the run is put in place)."""
        return self.path.stat().st_mtime

    @property
    def summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text())

    def bytes_on_disk(self, only_here: bool = False) -> int:
        """Its files' size; `only_here`: only files no run in place shares (freed by pruning it)."""
        return sum(
            p.stat().st_size for p in self.path.rglob("*") if p.is_file() and not (only_here and p.stat().st_nlink > 1)
        )


def _identity(summary: dict) -> tuple[str, int, str, str]:
    return summary["variant"], int(summary["seed"]), summary["config_hash"], summary["code"]["engine_fingerprint"]


def entry_path(home: Path, variant: str, seed: int, config_hash: str, engine: str) -> Path:
    return home / CACHE / variant / f"seed{seed}" / f"{config_hash}-{engine}"


def run_dir(home: Path, variant: str, seed: int) -> Path:
    return home / RUNS / variant / f"seed{seed}"


def finished_summary(folder: Path) -> dict | None:
    """The summary of the finished run in `folder` (its files all there), or None."""
    if not all((folder / name).is_file() for name in RUN_FILES):
        return None
    try:
        summary = json.loads((folder / "summary.json").read_text())
        _identity(summary)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return summary


def keep(home: Path, folder: Path) -> Entry | None:
    """Keep the finished run in `folder` (under `home`/results/runs) in the cache, unless it is kept
    already; None when `folder` holds no finished run."""
    summary = finished_summary(folder)
    if summary is None:
        return None
    variant, seed, config_hash, engine = _identity(summary)
    entry = Entry(entry_path(home, variant, seed, config_hash, engine), variant, seed, config_hash, engine)
    if entry.path.is_dir():
        return entry
    staging = entry.path.with_name(f".{entry.path.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for name in RUN_FILES:
            atomic_link(folder / name, staging / name)
        board = home / TENSORBOARD / variant / f"seed{seed}"
        for path in sorted(board.rglob("*")) if board.is_dir() else []:
            if path.is_file():
                atomic_link(path, staging / "tensorboard" / path.relative_to(board))
        os.rename(staging, entry.path)  # the entry appears whole or not at all
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not entry.path.is_dir():  # another process kept the same run meanwhile: fine
            raise
    return entry


def entries(home: Path, paths: Iterator[Path] | None = None) -> list[Entry]:
    """The kept runs of the study in `home` (or those of `paths`, folders of its cache)."""
    out = []
    for path in sorted((home / CACHE).glob("*/seed*/*-*") if paths is None else paths):
        if path.is_dir() and not path.name.startswith("."):
            config_hash, _, engine = path.name.partition("-")
            out.append(Entry(path, path.parent.parent.name, int(path.parent.name[4:]), config_hash, engine))
    return out


def find(home: Path, variant: str, seed: int, config_hash: str, engine: str) -> Entry | None:
    """The kept run of this identity: the one the current engine code made if there is one, else the newest
    (the workflow never retrains a run because the code changed; the report shows which code made each)."""
    folder = home / CACHE / variant / f"seed{seed}"
    found = [e for e in entries(home, folder.glob(f"{config_hash}-*")) if e.config_hash == config_hash]
    found.sort(key=lambda e: (e.engine == engine, e.kept_since))
    return found[-1] if found else None


def kept_run(home: Path, variant: str, seed: int, recipe, meta: Path) -> Entry | None:
    """The kept run a train job would make: this recipe and seed on the data the cache `meta` describes."""
    from lrstudy.config import run_hash
    from lrstudy.provenance import RUN_MODULE, code_fingerprint, code_of

    config_hash = run_hash(recipe, seed, json.loads(meta.read_text()))
    return find(home, variant, seed, config_hash, code_fingerprint(code_of([RUN_MODULE])))


def restore(entry: Entry, outputs: dict[str, Path], board: Path) -> None:
    """Put a kept run in place: its files linked to the train job's `outputs` (name -> path), summary.json
    last, and its TensorBoard folder to `board`."""
    shutil.rmtree(board, ignore_errors=True)
    kept_board = entry.path / "tensorboard"
    for path in sorted(kept_board.rglob("*")) if kept_board.is_dir() else []:
        if path.is_file():
            atomic_link(path, board / path.relative_to(kept_board))
    for name in sorted(outputs, key=lambda n: n == "summary.json"):
        atomic_link(entry.path / name, outputs[name])  # Snakemake then touches them, as any job's outputs


def drop(home: Path, variant: str, seed: int, config_hashes: Sequence[str]) -> list[Entry]:
    """Remove the kept runs of (variant, seed) with these identities: the command forces them to train."""
    folder = home / CACHE / variant / f"seed{seed}"
    dropped = [e for e in entries(home, folder.glob("*-*")) if e.config_hash in config_hashes]
    for entry in dropped:
        shutil.rmtree(entry.path)
    return dropped


def in_place(home: Path, entry: Entry) -> bool:
    """Whether the run in place in results/runs is this kept run."""
    summary = finished_summary(run_dir(home, entry.variant, entry.seed))
    return summary is not None and _identity(summary) == (entry.variant, entry.seed, entry.config_hash, entry.engine)


def superseded(home: Path) -> Iterator[Entry]:
    return (e for e in entries(home) if not in_place(home, e))
