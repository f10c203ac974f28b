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
DVC's run-cache does. `lrstudy-run-cache` lists the kept runs and prunes the superseded ones.

Snakemake's own between-workflow cache (`cache:` + `--cache`) was considered first and not used: its key
hashes the rule's script and every parameter (a path, an edited comment in train.py: another key) and not
the engine code; it restores on a forced job too, so `-f` could never train a run again; it needs an
environment variable and a flag on every command; and it has no way to list or prune what it keeps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
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

    config_hash = run_hash(recipe.as_dict(), seed, json.loads(meta.read_text()))
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


# ------------------------------------------------------------------------------------------------ the CLI


def _home(project: Path, study: str) -> Path:
    from lrstudy.config import DEFAULT_STUDY
    from lrstudy.studies import check_study_name

    if study == DEFAULT_STUDY:
        return project
    check_study_name(study)
    return project / "studies" / study


def _describe(entry: Entry) -> str:
    try:
        summary = entry.summary
        acc = summary.get("final_test_acc")
        kept = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.kept_since))
        what = f"final test acc {100 * acc:.2f}%" if isinstance(acc, (int, float)) else "diverged"
        return f"{what}, data md5 {summary['dataset'].get('md5')}, engine {entry.engine}, kept {kept}"
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable summary.json"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="lrstudy-run-cache",
        description="The runs a study keeps (results/run-cache/): list them, or prune the superseded ones "
        "(those no longer in results/runs/, kept because the config changed their recipe or data).",
    )
    ap.add_argument("action", nargs="?", choices=["list", "prune"], default="list")
    ap.add_argument("--study", default="default", help="the study's name (default: the study at the top)")
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="the project directory (default: here)")
    ap.add_argument("--variant", action="append", help="prune only this variant's runs (repeatable)")
    ap.add_argument("--older-than", type=float, metavar="DAYS", help="prune only runs kept more than DAYS ago")
    ap.add_argument("-n", "--dry-run", action="store_true", help="prune: say what would go, remove nothing")
    args = ap.parse_args(argv)
    if args.older_than is not None and not args.older_than >= 0:
        ap.error(f"--older-than {args.older_than}: give a number of days, 0 or more")
    try:
        home = _home(args.root, args.study)
    except ValueError as e:
        ap.error(str(e))
    if not home.is_dir():
        ap.error(f"study {args.study}: no folder {home} (is --root the project directory?)")
    if args.action == "list":
        return _list(home)
    return _prune(home, args)


def _list(home: Path) -> int:
    kept = entries(home)
    old = [e for e in kept if not in_place(home, e)]
    for entry in kept:
        state = "superseded" if entry in old else "in place"
        size = _mib(entry.bytes_on_disk(only_here=True))
        print(f"{entry.variant}/seed{entry.seed} {entry.config_hash}  {state:10s}  {size:>10s}  {_describe(entry)}")
    freed = sum(e.bytes_on_disk(only_here=True) for e in old)
    print(
        f"{len(kept)} kept runs in {home / CACHE}: {len(kept) - len(old)} in place (no extra disk), "
        f"{len(old)} superseded ({_mib(freed)}; lrstudy-run-cache prune removes them)"
    )
    return 0


def _prune(home: Path, args: argparse.Namespace) -> int:
    cutoff = None if args.older_than is None else time.time() - args.older_than * 86400
    chosen = [
        e
        for e in superseded(home)
        if (not args.variant or e.variant in args.variant) and (cutoff is None or e.kept_since < cutoff)
    ]
    freed = 0
    for entry in chosen:
        freed += entry.bytes_on_disk(only_here=True)
        print(f"{'would remove' if args.dry_run else 'removed'} {entry.path.relative_to(home)} ({_describe(entry)})")
        if not args.dry_run:
            shutil.rmtree(entry.path)
    if not args.dry_run:
        for folder in sorted((home / CACHE).glob("*/*"), reverse=True) + sorted((home / CACHE).glob("*")):
            with contextlib.suppress(OSError):
                folder.rmdir()  # empty ones only
    verb = "would free" if args.dry_run else "freed"
    print(f"{len(chosen)} superseded runs {'to prune' if args.dry_run else 'pruned'}; {verb} {_mib(freed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
