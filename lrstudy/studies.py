"""A study is a named thing: its config is assembled from layers, and a named study remembers its own.

    config.yaml              the defaults (one source of them)
    local.yaml               machine-local settings (the archive's path, the images), git-ignored, read by every command
    studies/<name>/study.yaml  a named study's own config, remembered by its last run
    the command line         --configfile / --config, over all of these, key by key

The default study keeps its files at the top (results/, report.html); a study named `demo` keeps them
under studies/demo/. A later command on a named study needs only `--config study=demo`, and what it gives
changes only the keys it names; `--replace-workflow-config` starts the study's own config over.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from lrstudy.atomic import atomic_write_text
from lrstudy.config import DEFAULT_STUDY, SCHEMA_FILE, ConfigError, load_yaml, merge, snakemake_for
from lrstudy.data.cifar10 import not_cifar10

DEFAULTS_NAME = "config.yaml"
LOCAL_FILE = "local.yaml"
REMEMBERED_FILE = "study.yaml"
# A study's dataset cache (rule prepare_data), in its folder.
CACHE_NPZ = Path("results/data/cifar10.npz")
CACHE_META = Path("results/data/cifar10.json")


def rebuild_cache_command(study: str) -> str:
    """The command that rebuilds a study's dataset cache. It keeps the finished runs: they depend on the
    dataset's checksums, not on the cache file."""
    return f"{snakemake_for(study)} --forcerun prepare_data -- {CACHE_NPZ}"


def remembered_path(project: Path, name: str) -> Path:
    return project / "studies" / name / REMEMBERED_FILE


def assemble(
    project: Path,
    command_line: Mapping,
    check_files: bool = True,
    starts_over: bool = False,
    remembered_at=remembered_path,
) -> tuple[dict, dict | None]:
    """(the study's config before checks, the study's own config to remember, or None). `project` is the
    workflow's folder, which holds config.yaml (the defaults), local.yaml and studies/.

    The command line's keys other than `study` are the study's own settings. A named study remembers its
    own: a later command's keys are layered over what it remembered, key by key as over config.yaml
    (`variants`, `seeds` and `grid` replaced as a whole, only when given), so a partial config changes
    what it names and nothing else. `starts_over` (--replace-workflow-config): the command line's keys
    replace what the study remembered. `check_files`: refuse a dataset.archive that does not exist (a
    command that reads no data, e.g. lrstudy-design, passes False). `remembered_at(project, name)`: where a
    named study's remembered config is read (lrstudy.storage: from the study's storage, with a default
    storage provider)."""
    config = load_yaml(project / DEFAULTS_NAME)
    layers = [(project / DEFAULTS_NAME, config)]  # (where, what it sets), for naming where a setting came from
    local = project / LOCAL_FILE
    if local.exists():
        layers.append((local, _machine_local(local)))
        config = merge(config, layers[-1][1])
    name = command_line.get("study", config.get("study", DEFAULT_STUDY))
    own = {k: v for k, v in command_line.items() if k != "study"}
    to_remember = None
    if name != DEFAULT_STUDY and isinstance(name, str):
        check_study_name(name)  # before a path is made of it, or a config suggested that would be refused
        path = remembered_at(project, name)
        if starts_over and not own:
            raise ConfigError(
                f"--replace-workflow-config starts study {name!r} over from the config given with it: give "
                "that config with --configfile FILE"
            )
        if path.exists() and not starts_over:
            remembered = {k: v for k, v in load_yaml(path).items() if k != "study"}
            layers.append((path, remembered))
            own = merge(remembered, own)
        elif not own:
            raise ConfigError(
                f"study {name!r} has no remembered config ({path} does not exist): start it once "
                f"with --configfile FILE, a file that says `study: {name}`"
            )
        to_remember = {"study": name, **own}
    if own.get("grid") and "variants" not in own:
        own = {**own, "variants": {}}  # a grid-only study does not inherit the default variants
    layers.append(("the command line (--configfile / --config)", {k: v for k, v in command_line.items()}))
    config = merge(config, own)
    config["study"] = name
    if check_files:
        check_archive(config, layers)
    return config, to_remember


def check_archive(config: Mapping, layers: list) -> None:
    """dataset.archive names an existing file that starts as a CIFAR-10 archive does, checked before any job
    starts (a missing one passed a dry run and failed in the download job; another file failed in the
    prepare_data job, which told the user to delete it), naming the config layer the setting came from."""
    archive = (config.get("dataset") or {}).get("archive")
    if not isinstance(archive, str):
        return
    path = Path(archive).expanduser()
    problem = "does not exist or is not a file" if not path.is_file() else not_cifar10(path)
    if problem is None:
        return
    if path.is_file():
        problem = f"is not a CIFAR-10 archive: {problem}"
    source = next(where for where, data in reversed(layers) if "archive" in (data.get("dataset") or {}))
    raise ConfigError(
        f"dataset.archive: {archive} {problem} (set in {source}); give the path of a "
        "cifar-10-python.tar.gz, e.g. make local ARCHIVE=/path/to/cifar-10-python.tar.gz"
    )


def archive_set_in(project: Path, archive: str | None) -> str:
    """Where the assembled config's dataset.archive, `archive`, was set, for a job that has only that config:
    local.yaml when it sets this path (the usual place, make local), else the study's own config."""
    local = project / LOCAL_FILE
    try:
        if local.is_file() and (load_yaml(local).get("dataset") or {}).get("archive") == archive:
            return str(local)
    except ConfigError:
        pass  # a local.yaml that cannot be read was refused as the workflow started
    return "the study's config"


def check_study_name(name: str) -> None:
    """A study name is a folder under studies/: the schema's pattern (no '/', no '..'), said in words."""
    pattern = yaml.safe_load(SCHEMA_FILE.read_text())["properties"]["study"]["pattern"]
    if not re.fullmatch(pattern, name):
        raise ConfigError(
            f"invalid config: study: {name!r} is not a study name: up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (it names the folder studies/<name>/)"
        )


def _machine_local(path: Path) -> dict:
    data = load_yaml(path)
    unknown = set(data) - {"dataset", "execution", "containers"}
    if unknown:
        raise ConfigError(
            f"{path}: only machine-local settings belong here (dataset, execution, containers); "
            f"put {sorted(unknown)} in a study config"
        )
    return data


def remember(project: Path, own: dict) -> bool:
    """Write a named study's own config (over config.yaml and local.yaml), so that later commands need only
    its name; whether the file changed. Called when a run starts its jobs (Plan.on_start), never by a
    command that only reads."""
    path = remembered_path(project, own["study"])
    text = (
        "# Remembered by the workflow: this study's own config, over config.yaml and local.yaml, as its last\n"
        "# run used it. Later commands need only --config study=NAME; a --configfile or --config given then\n"
        "# changes the keys it names; --replace-workflow-config starts the study's config over.\n"
    )
    text += yaml.safe_dump(own, sort_keys=False)
    if path.exists() and path.read_text() == text:
        return False
    atomic_write_text(path, text)
    return True


def study_report_at(path: str | os.PathLike, project: Path) -> Path | None:
    """The report.html of any study of `project` that writing `path` would replace, or None. Compared by
    identity (device and inode, links resolved): a relative, absolute, ../ or hard-linked spelling of another
    study's report is still that report. A path that does not exist yet is compared by its resolved path."""
    reports = [project / "report.html", *sorted(project.glob("studies/*/report.html"))]
    try:
        target = os.stat(path)
    except OSError:
        return next((r for r in reports if os.path.realpath(r) == os.path.realpath(path)), None)
    for report in reports:
        try:
            found = os.stat(report)
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino):
            return report
    return None
