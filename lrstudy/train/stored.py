"""A run's resumable state in the study's storage (lrstudy.storage): its checkpoint and its trainer log,
stored as the run trains, so that a job lost with its node (a preempted spot VM, a pod evicted) resumes on
another node from its last stored checkpoint, where Snakemake's storage plugin, which moves only a
finished job's outputs, would have it start from epoch 1.

Storing runs beside training, in a thread: an upload takes about as long as a fast GPU epoch, and the run
must not wait for it. A checkpoint is stored from a hard link to the file it was when the epoch ended (a
checkpoint is replaced by a rename, never rewritten), so a later checkpoint cannot mix into it; while one
upload runs, newer states wait for the next epoch, and the last one is stored when training ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

from lrstudy.storage import StudyStorage

log = logging.getLogger(__name__)


class StoredRunState:
    """An EpochLog (lrstudy.train.run) for a run's `checkpoint` and `trainer_log`, local files stored in the
    study as `where[file]`. restore() before the run starts; entered, the state is stored after each epoch
    that changed it, and when training fails; finish() once the run's outputs are written."""

    def __init__(self, storage: StudyStorage, checkpoint: Path, trainer_log: Path, where: dict[Path, str]):
        self.storage = storage
        self.checkpoint, self.trainer_log = checkpoint, trainer_log
        self.where = where
        self.stored: dict[Path, tuple[int, int] | None] = {}  # file -> (mtime_ns, size) when last stored
        self.thread: threading.Thread | None = None

    def restore(self) -> list[str]:
        """Each file of the state that this machine lacks, fetched from the study's storage; which were."""
        fetched = []
        for path in (self.checkpoint, self.trainer_log):
            if not path.exists() and self.storage.fetch(self.where[path], path):
                fetched.append(self.where[path])
            self.stored[path] = _version(path)
        return fetched

    def __enter__(self) -> StoredRunState:
        return self

    def __call__(self, metrics: list[dict]) -> None:
        if self.thread is not None and self.thread.is_alive():
            return  # the next epoch stores what changed meanwhile
        snapshot = self._snapshot()
        if snapshot:
            self.thread = threading.Thread(target=self._store, args=(snapshot,), name="store run state", daemon=True)
            self.thread.start()

    def __exit__(self, failed: type | None, *_: object) -> None:
        if self.thread is not None:
            self.thread.join()
        if failed is not None:  # out of memory, a crash: its last state, for the next try
            self._store(self._snapshot())

    def finish(self) -> None:
        """The run's outputs are written: its log stored whole, its checkpoint's stored copy removed (the run
        resumes from its outputs now, and a forced rerun must train again, not resume at the end)."""
        self._store(self._snapshot())
        self.storage.remove(self.where[self.checkpoint])

    def _snapshot(self) -> dict[Path, Path]:
        """Each changed file -> a copy of it as it is now (a hard link for the checkpoint, which is replaced
        by a rename; a copy for the log, which is appended to)."""
        snapshot = {}
        for path in (self.checkpoint, self.trainer_log):
            version = _version(path)
            if version is None or version == self.stored.get(path):
                continue
            copy = path.with_name(f".{path.name}.storing")
            copy.unlink(missing_ok=True)
            try:
                if path == self.checkpoint:
                    os.link(path, copy)
                else:
                    shutil.copyfile(path, copy)
            except FileNotFoundError:  # replaced between the stat and the link: the next epoch stores it
                continue
            snapshot[path] = copy
            self.stored[path] = version
        return snapshot

    def _store(self, snapshot: dict[Path, Path]) -> None:
        for path, copy in snapshot.items():
            try:
                self.storage.store(self.where[path], copy)
            except Exception as exc:  # a storage hiccup must not end a run that can still finish
                self.stored.pop(path, None)
                log.warning("could not store %s (%s: %s); the run goes on", self.where[path], type(exc).__name__, exc)
            finally:
                copy.unlink(missing_ok=True)


def _version(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size
