"""Logging for rule scripts: the job's log file and the terminal get the same lines."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from lrstudy.atomic import NoSpaceError


def _formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")


def to_file_and_screen(log_path: str | Path, mode: str = "w") -> None:
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(log_path, mode=mode), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(_formatter())
        root.addHandler(handler)


@contextlib.contextmanager
def also_appended_to(log_path: str | Path | None) -> Iterator[None]:
    """While the block runs, every log line is also appended to `log_path` (nothing when None): a log that
    outlives one job, continued by the next (a resumed run appends to its trainer's log)."""
    if log_path is None:
        yield
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="a")
    handler.setFormatter(_formatter())
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def run_logged(log_path: str | Path, main, expected: tuple[type[Exception], ...] = (), mode: str = "w") -> None:
    """Run `main()` with logging set up (`mode` "a": the log continues the previous command's). An `expected`
    error (bad input, with a message that names the file or key) or a full disk ends the job with that
    message alone; anything else also logs its traceback."""
    to_file_and_screen(log_path, mode)
    log = logging.getLogger("lrstudy")
    try:
        main()
    except (*expected, NoSpaceError) as exc:
        log.error("%s", exc)
        raise SystemExit(f"error: {exc}") from None
    except Exception:
        log.exception("failed")
        raise
