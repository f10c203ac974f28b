"""lrstudy-run-cache: the runs a study keeps (lrstudy/run_cache.py): list them, with the disk each costs, or
prune the superseded ones (no longer in results/runs/, kept because the config changed their recipe or
data). A run in place is never touched.

    lrstudy-run-cache [--study NAME]                         list
    lrstudy-run-cache prune [--variant V] [--older-than DAYS] [-n]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lrstudy.config import DEFAULT_STUDY
from lrstudy.run_cache import CACHE, Entry, entries, in_place, superseded
from lrstudy.studies import check_study_name


def _home(project: Path, study: str) -> Path:
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
