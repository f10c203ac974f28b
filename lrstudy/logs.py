"""Logging for rule scripts: the job's log file and the terminal get the same lines."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from lrstudy.atomic import NoSpaceError


def to_file_and_screen(log_path: str | Path) -> None:
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def run_logged(log_path: str | Path, main, expected: tuple[type[Exception], ...] = ()) -> None:
    """Run `main()` with logging set up. An `expected` error (bad input, with a message that names the
    file or key) or a full disk ends the job with that message alone; anything else also logs its traceback."""
    to_file_and_screen(log_path)
    log = logging.getLogger("lrstudy")
    try:
        main()
    except (*expected, NoSpaceError) as exc:
        log.error("%s", exc)
        raise SystemExit(f"error: {exc}") from None
    except Exception:
        log.exception("failed")
        raise
