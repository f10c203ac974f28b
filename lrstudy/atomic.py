"""Atomic file output: every result is written to a temporary file beside its target, then renamed.

A reader (or Snakemake after a crash) therefore sees either the old file or the complete new one,
never a half-written one. A write that fails on a full disk says so, naming the file (NoSpaceError).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class NoSpaceError(OSError):
    """An output could not be written because its filesystem is full (or over quota)."""


def disk_full(exc: BaseException | None) -> OSError | None:
    """The ENOSPC/EDQUOT error behind `exc`, if any. Libraries wrap it: torch.save writing to a file
    object raises RuntimeError('[enforce fail at inline_container.cc...] unexpected pos ...') from it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def naming_a_full_disk(
    target: Path, consequence: str = "it was not written, and no partial file is left", after: str = "."
) -> Iterator[None]:
    """A full disk under the block is a NoSpaceError naming `target`, what it means for it, and what to do."""
    try:
        yield
    except BaseException as exc:
        if full := disk_full(exc):
            raise NoSpaceError(
                f"no space left on {target} ({full.strerror}): {consequence}. Free some space on that "
                f"filesystem and run the job again{after}"
            ) from exc
        raise


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target`, on error it is removed.

    The temporary name keeps the target's suffix (or `suffix`) so that libraries which choose a format
    by extension (matplotlib, numpy) behave as for the target itself.
    """
    target = Path(target)
    with naming_a_full_disk(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix
        )
        os.close(fd)
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        try:
            yield tmp_path
            _fsync(tmp_path)
            os.replace(tmp_path, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
            raise


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(target: str | os.PathLike, obj) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def atomic_link(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """`target` becomes a hard link to `source` (the same file, no second copy), replacing any old
    `target` at once; a copy where the filesystem cannot link (another device, no hard links)."""
    target = Path(target)
    with contextlib.suppress(OSError):
        if os.path.samefile(source, target):
            return  # rename() of two links to one file would leave the temporary link behind
    with naming_a_full_disk(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            try:
                os.link(source, tmp)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
