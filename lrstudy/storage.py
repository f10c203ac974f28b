"""A study's storage: with a default storage provider (snakemake --default-storage-provider s3
--default-storage-prefix s3://bucket/...), every file the workflow declares lives in the bucket, moved by
Snakemake's storage plugin; a named study's under `<prefix>/studies/<name>/`, so that two studies on one
prefix never share an object.

Two files are not declared, and must still outlive the machine that wrote them: a run's resumable state
(checkpoint, trainer log: lrstudy.train.stored), which a failed or preempted job leaves, and a named study's
remembered config (studies/<name>/study.yaml), which later commands read. They are stored beside the
study's other files through the same plugin. A job gets the study's storage from the environment
(STORAGE_ENV), set when the workflow is read in any Snakemake process, the job's own included.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import posixpath
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from lrstudy.studies import REMEMBERED_FILE, remembered_path

log = logging.getLogger(__name__)

STORAGE_ENV = "LRSTUDY_STORAGE"
_providers: dict[str, object] = {}  # StudyStorage.to_env() -> the plugin's provider: one per process


@dataclass(frozen=True)
class StudyStorage:
    plugin: str  # a Snakemake storage plugin's name, e.g. s3
    prefix: str  # the study's prefix: its relative paths live under it
    settings: dict  # the plugin's settings, as Snakemake was given them (credentials included, if so given)
    local_prefix: str  # where Snakemake keeps local copies of stored files (.snakemake/storage)

    @classmethod
    def of_study(cls, plugin: str, prefix: str, settings: dict, local_prefix: str, study_dir: str) -> StudyStorage:
        """The storage of the study whose files are at `study_dir` (`.` or studies/<name>) under the default
        `prefix`. Given the study's prefix already (a job's Snakemake gets it from the main one), unchanged."""
        prefix = prefix.rstrip("/")
        if study_dir != "." and not prefix.endswith(f"/{study_dir}"):
            prefix = f"{prefix}/{study_dir}"
        return cls(plugin, prefix, settings, local_prefix)

    def to_env(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_env(cls, environ=os.environ) -> StudyStorage | None:
        value = environ.get(STORAGE_ENV)
        return cls(**json.loads(value)) if value else None

    def query(self, path: str | os.PathLike) -> str:
        return f"{self.prefix}/{posixpath.normpath(Path(path).as_posix())}"

    def object(self, path: str | os.PathLike):
        """The plugin's storage object of `path` (relative to the study)."""
        return self._provider().object(self.query(path))

    def local(self, path: str | os.PathLike) -> Path:
        """Where the local copy of `path` lives (under the local prefix, so two studies never share one)."""
        return Path(self.object(path).local_path())

    def fetch(self, path: str | os.PathLike, to: Path) -> bool:
        """Copy `path` from storage to `to` if it is stored there; whether it was."""
        obj = self.object(path)
        if not obj.exists():
            return False
        to.parent.mkdir(parents=True, exist_ok=True)
        obj.set_local_path(to)
        obj.retrieve_object()
        return True

    def store(self, path: str | os.PathLike, source: Path) -> None:
        """Store the file `source` as `path` (an object is written whole: a reader never sees half of it)."""
        obj = self.object(path)
        obj.set_local_path(source)
        obj.store_object()

    def remove(self, path: str | os.PathLike) -> None:
        obj = self.object(path)
        if obj.exists():
            obj.remove()

    def _provider(self):
        key = self.to_env()
        if key not in _providers:
            from snakemake_interface_storage_plugins.registry import StoragePluginRegistry

            plugin = StoragePluginRegistry().get_plugin(self.plugin)
            _providers[key] = plugin.storage_provider(
                local_prefix=Path(self.local_prefix) / self.plugin,
                logger=log,
                settings=plugin.settings_cls(**self.settings) if plugin.settings_cls else None,
            )
        return _providers[key]


def remembered_in(base: dict):
    """lrstudy.studies.assemble's `remembered_at` with a default storage provider (`base`, as
    snakemake_compat.default_storage gives it): a named study's remembered config is the one in its storage,
    read from a temporary copy (removed at exit; a command that only plans writes nothing); the local file
    where the storage has none."""

    def at(project: Path, name: str) -> Path:
        storage = StudyStorage.of_study(**base, study_dir=f"studies/{name}")
        copy = Path(tempfile.mkdtemp(prefix="lrstudy-remembered-")) / REMEMBERED_FILE
        atexit.register(shutil.rmtree, copy.parent, ignore_errors=True)
        return copy if storage.fetch(REMEMBERED_FILE, copy) else remembered_path(project, name)

    return at
