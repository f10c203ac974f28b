"""Every use of Snakemake's internals, in one place: what the workflow reads from Snakemake beyond its
documented API (the parsed command line, the execution mode, the config given on the command line, the
config files read, the params recorded for a file). An upgrade of Snakemake that
changes any of these fails tests/test_snakemake_compat.py, which is pinned to SUPPORTED_SNAKEMAKE
(requirements.txt's pin), not a study.

Used by the workflow layer only (workflow/rules/common.smk, lrstudy/workflow_plan.py); nothing here runs
outside a Snakemake process except the tests.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_SNAKEMAKE = "9.27.1"

# The options under which snakemake.cli dispatches to something other than running the workflow's jobs
# (lint, listings, graphs, summaries, reports, clean-ups): the names of its parsed options, in the order
# of its dispatch. tests/test_snakemake_compat.py reads the dispatch from cli.py and fails on a new one.
NON_EXECUTING_OPTIONS = (
    "lint",
    "list_target_rules",
    "list_rules",
    "print_compilation",
    "containerize",
    "generate_unit_tests",
    "dag",
    "rulegraph",
    "filegraph",
    "d3dag",
    "unlock",
    "cleanup_metadata",
    "conda_cleanup_envs",
    "conda_create_envs_only",
    "list_conda_envs",
    "cleanup_shadow",
    "container_cleanup_images",
    "list_changes",
    "list_input_changes",
    "list_params_changes",
    "list_untracked",
    "summary",
    "detailed_summary",
    "archive",
    "delete_all_output",
    "delete_temp_output",
)


@dataclass(frozen=True)
class Invocation:
    """What this snakemake command was asked to do, from Snakemake's own parse of its command line; `args`
    is None where the process is not the snakemake CLI (a cluster job step, a test)."""

    args: argparse.Namespace | None
    main_process: bool  # Snakemake's exec mode is DEFAULT: not a job step or a subprocess of a job
    argv: tuple[str, ...] = ()  # the command line as typed, for a refusal that suggests it corrected

    @classmethod
    def of(cls, workflow, argv: Sequence[str]) -> Invocation:
        return cls(parse_command_line(argv), workflow.exec_mode.name == "DEFAULT", tuple(argv))

    def _main(self) -> bool:
        return self.args is not None and self.main_process

    @property
    def builds_the_dag_to_run(self) -> bool:
        """A run or a dry run: the command's dispatch reaches the workflow's execution, not a listing, a
        graph, a report, lint, an unlock or a clean-up."""
        if not self._main():
            return False
        report_only = bool(self.report_path) and not self.args.report_after_run
        return not report_only and not any(_given(self.args, name) for name in NON_EXECUTING_OPTIONS)

    @property
    def runs_jobs(self) -> bool:
        """A run that executes jobs (not a dry run, not --touch): the only command that may write."""
        return self.builds_the_dag_to_run and not self.args.dryrun and not self.args.touch

    @property
    def jobs_run_here(self) -> bool:
        """A run or a dry run of the main process whose jobs run on this machine with this Python: the local
        executor, no conda or container environments (so what this process sees, its jobs see)."""
        return (
            self.builds_the_dag_to_run
            and not self.args.touch
            and self.args.executor in (None, "local")
            and not self.deployment
        )

    @property
    def deployment(self) -> set[str]:
        """The software deployment asked for ('conda', 'apptainer'), however it is spelled: --sdm (alias
        --software-deployment-method), --use-conda, --use-apptainer or --use-singularity."""
        if self.args is None:
            return set()
        methods = {method.name.lower() for method in self.args.software_deployment_method or ()}
        methods |= {"conda"} if self.args.use_conda else set()
        return methods | ({"apptainer"} if self.args.use_apptainer else set())

    @property
    def starts_over(self) -> bool:
        """--replace-workflow-config: the command line's config replaces what a named study remembered."""
        return self.args is not None and bool(self.args.replace_workflow_config)

    @property
    def no_hooks(self) -> bool:
        return self.args is not None and bool(self.args.no_hooks)

    @property
    def report_path(self) -> str | None:
        """The path of Snakemake's own report (--report PATH, or --reporter html --report-html-path PATH)."""
        if self.args is None:
            return None
        path = self.args.report or getattr(self.args, "report_html_path", None)
        return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None

    @property
    def targets(self) -> list[str]:
        return sorted(self.args.targets or []) if self.args is not None else []

    @property
    def forcerun(self) -> list[str]:
        # Sorted, as targets: Snakemake parses both into sets, whose order changes from process to process.
        return sorted(self.args.forcerun or []) if self.args is not None else []

    @property
    def forces_targets(self) -> bool:
        """-f: the targets' own jobs run again."""
        return self.args is not None and bool(self.args.force)

    @property
    def forces_all(self) -> bool:
        """-F: every job the targets need runs again."""
        return self.args is not None and bool(self.args.forceall)


def _given(args: argparse.Namespace, name: str) -> bool:
    value = getattr(args, name)
    return value is not None and value is not False and value != [] and value != set()


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace | None:
    """Snakemake's own parse of `argv` (sys.argv[1:]): the workflow decides from parsed settings, never
    from argv strings. None for a command line that is not Snakemake's."""
    from snakemake.cli import parse_args

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return parse_args(list(argv))[1]
    except BaseException:  # argparse exits on a command line that is not Snakemake's
        return None


def command_line_config(workflow) -> Mapping:
    """The config given on the command line (--configfile files, then --config), merged by Snakemake."""
    return workflow.config_settings.overwrite_config


def default_storage(workflow) -> dict | None:
    """The default storage provider's plugin name, prefix, settings (as given: command line, profile or
    SNAKEMAKE_STORAGE_* variables) and the local prefix of its copies; None without one. In a job's own
    Snakemake they are what the main process passed it."""
    storage = workflow.storage_settings
    if storage.default_storage_provider is None:
        return None
    tagged = (workflow.storage_provider_settings or {}).get(storage.default_storage_provider)
    settings = tagged.get_settings(None) if tagged is not None else None
    return {
        "plugin": storage.default_storage_provider,
        "prefix": storage.default_storage_prefix or "",
        "settings": dataclasses.asdict(settings) if settings is not None else {},
        "local_prefix": str(storage.local_storage_prefix),
    }


def use_storage_prefix(workflow, prefix: str) -> None:
    """Every file declared from now on maps under `prefix` in the default storage, and the jobs are given it.
    Called before the first rule is declared."""
    workflow.storage_settings.default_storage_prefix = prefix


def ship_with_the_workflow(workflow, path: Path) -> None:
    """A file the jobs of a cloud executor must see as this process does (local.yaml): listed among the config
    files Snakemake read, which it packs with the workflow for jobs that share no filesystem with it."""
    if str(path) not in map(str, workflow.configfiles):
        workflow.configfiles.append(str(path))


def config_files(workflow) -> list[Path]:
    """The config files Snakemake read (config.yaml's `configfile:` and every --configfile)."""
    return [Path(p) for p in workflow.configfiles]


def recorded_params(workflow, path: str) -> list:
    """The params Snakemake recorded for `path` when its job last finished (read while jobs are planned;
    [] when it has none): the values, unnamed, that Python can read back from the reprs it keeps."""
    from snakemake.io import IOFile

    persistence = getattr(workflow, "persistence", None)
    recorded = persistence.params(IOFile(path)) if persistence is not None else None
    values = []
    for text in recorded or []:
        with contextlib.suppress(ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            values.append(ast.literal_eval(text))
    return values
