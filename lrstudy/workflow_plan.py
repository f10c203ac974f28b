"""The workflow's plan: every fact the Snakefile needs when it is parsed, in one frozen object built from
(the workflow, its command line): the study's config from its layers, where its files are, which runs are
in place and whether each is still the configured run, which runs the tables list but are gone.

Building the plan writes nothing. The writes a command makes before its jobs (remembering a named study's
config, keeping finished runs in the run cache) are `Plan.on_start`, called from Snakemake's `onstart:`,
which runs only in a run that holds the directory lock and starts jobs: a dry run, a listing, a graph or a
run refused by the lock writes nothing. The one exception is `working_directory`: a reading command of a
study never run plans in a temporary folder (Snakemake writes .snakemake/ where it works), removed at exit.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrstudy import run_cache, staged_runs, study_state
from lrstudy.analysis.adaptive import design_of
from lrstudy.config import ConfigError, Study, checked_study, json_hash, load_yaml, recipe_param, run_hash
from lrstudy.names_regex import one_of
from lrstudy.provenance import script_fingerprint
from lrstudy.refusal import refuse
from lrstudy.snakemake_compat import (
    Invocation,
    command_line_config,
    config_files,
    default_storage,
    recorded_params,
)
from lrstudy.storage import StudyStorage, remembered_in
from lrstudy.studies import REMEMBERED_FILE, assemble, remember, remembered_path, study_report_at


def _logger() -> logging.Logger:
    """Snakemake's logger: what the workflow says at parse time and before its jobs reaches the user's
    terminal and Snakemake's log file, at every level."""
    from snakemake.logging import logger

    return logger


TOKEN = "runs-token:"  # the prefix of the tables' runs token among a job's recorded params
RUN_FILE = re.compile(r"results/runs/(?P<variant>[^/]+)/seed(?P<seed>\d+)/(?:metrics\.csv|summary\.json|model\.pt)")


class PlanError(ConfigError):
    """A command the workflow refuses before planning any job; the message says what to type instead."""


@dataclass(frozen=True)
class Plan:
    project: Path  # the workflow's folder (config.yaml, workflow/, report/)
    home: Path  # the study's folder: the project for the default study, else studies/<name>
    workdir: Path  # where Snakemake works: `home`, or a temporary folder (working_directory)
    study: Study
    config: dict  # the assembled, checked config: what Snakemake's `config` becomes
    invocation: Invocation
    to_remember: dict | None  # what on_start writes to studies/<name>/study.yaml
    run_seeds: tuple[int, ...]  # every seed a run may have (the adaptive design's later stages included)
    meta: dict | None  # the dataset cache's description, when the cache is the configured data's
    finished: frozenset[str]  # "variant/seedN" of every finished run in place, of a configured variant
    current_runs: frozenset[str]  # those still the configured run
    replaced: Mapping[str, str]  # "variant/seedN" in place that the config changed -> why
    missing: tuple[str, ...]  # runs a table lists whose files are gone
    variant_summaries: tuple[str, ...]  # made variant summaries: they follow their runs
    forced: frozenset[str]  # runs this command forces to train again
    # With a default storage provider (a bucket): the study's files live there, not in `home`; Snakemake works
    # in the project and the plan reads no run's state from this machine's disk.
    storage: StudyStorage | None = None
    workflow: Any = field(default=None, compare=False, repr=False)
    disk_full: DiskFullWatch = field(default_factory=lambda: DiskFullWatch(), compare=False, repr=False)

    # ------------------------------------------------------------------------------ what the rules read

    @property
    def variants(self) -> list[str]:
        return self.study.variants

    @property
    def seeds(self) -> list[int]:
        return list(self.study.seeds)

    @property
    def cache_is_current(self) -> bool:
        return self.meta is not None

    @property
    def dataset_identity(self) -> str:
        return json.dumps(self.study.dataset.identity(), sort_keys=True)

    def src(self, path: str) -> str:
        """A project file (template, caption, lock folder) as seen from where Snakemake works: relative, so
        that moving the project folder changes no job's input or params."""
        return os.path.normpath(os.path.join(os.path.relpath(self.project, self.workdir), path))

    def run_files(self, name: str) -> list[str]:
        """`name` (e.g. metrics.csv) of every configured run, variants in config order."""
        return [f"results/runs/{v}/seed{s}/{name}" for v in self.variants for s in self.seeds]

    def study_runs(self, name: str, checkpoints):
        """`name` (e.g. summary.json) of every run the study has: the analysis rules' input. With `adaptive`,
        an input function reading the last stage plan (lrstudy.staged_runs)."""
        if self.study.stats.adaptive is None:
            return self.run_files(name)
        return lambda wildcards: self._planned(staged_runs.final_plan(checkpoints), name)

    def stage_runs(self, checkpoints) -> Callable:
        """The input of the look after stage k: the runs the plan after stage k-1 asked for."""

        def runs(wildcards):
            return self._planned(staged_runs.previous_plan(checkpoints, int(wildcards.stage)), "summary.json")

        return runs

    def _planned(self, plan_path: str | None, name: str) -> list[str]:
        return staged_runs.planned_files(design_of(self.study.stats), self.variants, self.seeds, plan_path, name)

    def recipe_json(self, wildcards) -> str:
        """The variant's recipe, as JSON: a params value, so that changing one variant reruns that variant
        only, and nothing else (execution settings, paths) reruns a finished run."""
        return recipe_param(self.study.recipes[wildcards.variant])

    def data_input(self, path: str):
        """The dataset cache as an input of the data's own rules: ancient() while it holds the configured
        data, so a relinked archive or a rebuilt cache remakes nothing downstream."""
        from snakemake.io import ancient

        return ancient(path) if self.cache_is_current else path

    def run_data_input(self, path: str) -> Callable:
        """The dataset cache as a train job's input: ancient() for a run in place that is still the
        configured run (a rebuilt or relinked cache never retrains it); a plain input for any other run, so
        that it waits for the cache and is made in the same command as a new dataset (Snakemake does not look
        at the params of a job after one that runs, when all its inputs are ancient)."""
        from snakemake.io import ancient

        def data(wildcards):
            current = study_state.run_name(wildcards.variant, wildcards.seed) in self.current_runs
            return ancient(path) if current else path

        return data

    def code_of(self, script: str) -> str:
        """A rule's code identity, its params `code`: every lrstudy module its script imports, directly or not
        (lrstudy/provenance.py). The tables, figures and report rerun when it changes (cheap); training does
        not (docs/reruns-and-recovery.md)."""
        return script_fingerprint(self.project / "workflow" / "scripts" / script)

    def uses_gpu(self, wildcards) -> int:
        return 0 if self.study.execution.device == "cpu" else 1

    def runs_token(self, output: str) -> Callable:
        """A params value for a rule made from the runs (the tables, a variant's summary), `output` its first
        output's pattern: Snakemake reruns nothing for a deleted input of an up-to-date output, so a run
        deleted after the tables were made would stay deleted and listed. The token is the value the output
        was last made with while none of its runs is missing (so it never reruns it), and changes when one
        is: the job then runs and, needing the run, retrains or restores it. A dry run computes the same.
        ([] until a run goes missing: the value the tables' rules had before the token.)"""
        workflow = self.workflow

        def token(wildcards) -> list[str]:
            path = output.format(**dict(wildcards.items()))
            last = next((v for v in recorded_params(workflow, path) if _is_token(v)), [])
            variant = dict(wildcards.items()).get("variant")
            missing = [run for run in self.missing if variant in (None, run.split("/")[0])]
            return last if not missing else [TOKEN + json_hash([last, missing])]

        return token

    @property
    def variant_regex(self) -> str:
        """The variants as one compact regex (a trie, lrstudy/names_regex.py): Snakemake copies it into every
        pattern that names {variant}, so its length is paid per pattern at 1,000 variants."""
        return one_of(self.variants)

    @property
    def unconfigured_run(self) -> str:
        """ "variant/seedN" of any run that is not configured (a negative lookahead over the configured ones)."""
        seeds = "|".join(map(str, self.run_seeds))
        return _negative([f"(?:{self.variant_regex})/seed(?:{seeds})"]) + "[^/]+/seed[^/]+"

    @property
    def unconfigured_variant(self) -> str:
        # The wildcard is followed by a slash and summary.csv, so the lookahead ends at the slash, not at $.
        return _negative([self.variant_regex]) + "[^/]+"

    def reject_unconfigured(self, wildcards):
        what = wildcards.get("other_run") or wildcards.get("other_variant")
        refuse(
            f"results/runs/{what}: no such run or variant in the study {self.study.name!r} "
            f"(variants: {', '.join(self.variants)}; seeds: {', '.join(map(str, self.run_seeds))})"
        )

    # -------------------------------------------------------------------------- before the first job

    def on_start(self) -> None:
        """What a run does once it holds the directory lock, before its first job (Snakemake's onstart):
        remember a named study's config, and keep every finished run in the run cache (hard links) except
        those this command forces to train again, whose kept copies go: the user asked for new ones."""
        if self.to_remember and remember(self.project, self.to_remember):
            _logger().info(f"study {self.study.name}: config remembered in {self.home / REMEMBERED_FILE}")
        if self.storage is not None:
            # The study's files, its remembered config with them, are in the bucket; no run is on this disk.
            if self.to_remember:
                self.storage.store(REMEMBERED_FILE, remembered_path(self.project, self.study.name))
            return
        forced_hashes = {}
        for folder in sorted((self.home / run_cache.RUNS).glob("*/seed*")):
            name = f"{folder.parent.name}/{folder.name}"
            summary = run_cache.finished_summary(folder)
            if summary is None:
                continue
            if name in self.forced:
                forced_hashes[name] = summary["config_hash"]
            else:
                run_cache.keep(self.home, folder)
        for name, config_hash in forced_hashes.items():
            variant, seed = name.split("/seed")
            for entry in run_cache.drop(self.home, variant, int(seed), [config_hash]):
                _logger().info(f"{name}: its kept copy {entry.path} goes: this command forces the run to train")

    def on_error(self) -> None:
        """What a failed run says last (Snakemake's onerror): where the disk is full, if that is why. A full
        disk can stop a job before its own code runs (Snakemake writes the rule's script to a temporary file
        first), and then only Snakemake's OSError would say it."""
        if self.disk_full.seen:
            _logger().error(no_space_sentence(self.home if self.home.is_dir() else self.project))

    def announce(self) -> None:
        """Say once, before any job, which finished runs the config no longer describes (they are replaced
        when trained again, and kept in the run cache), which runs the tables list are gone, and which come
        back from the run cache."""
        if self.replaced:
            lines = "\n".join(f"  {run}: {why}" for run, why in sorted(self.replaced.items()))
            _logger().warning(
                f"{len(self.replaced)} finished runs are no longer the configured runs: each is replaced when a "
                f"target needs it, and kept in {run_cache.CACHE} (it comes back if the config asks for it "
                f"again):\n{lines}"
            )
        if self.missing:  # the tables' token (deleted_runs) replans them; say why they are made again
            _logger().warning(f"runs deleted since the tables were made: {', '.join(self.missing)}")
        restored = self.restorable()
        if restored:
            _logger().info(f"{len(restored)} runs come back from the run cache, not trained: {', '.join(restored)}")

    def restorable(self) -> list[str]:
        """The configured runs to be made that the run cache holds, where that can be told now (the data cache
        is the configured data's); the train job decides in any case."""
        if self.meta is None:
            return []
        out = []
        for variant, recipe in self.study.recipes.items():
            for seed in self.run_seeds:
                name = study_state.run_name(variant, seed)
                if name in self.current_runs or name in self.forced:
                    continue
                config_hash = run_hash(recipe, seed, self.meta)
                if run_cache.find(self.home, variant, seed, config_hash, engine="") is not None:
                    out.append(name)
        return out


class DiskFullWatch(logging.Handler):
    """Remembers, in memory, whether anything Snakemake logged says a write failed for lack of space."""

    MARKS = ("No space left on device", "Disk quota exceeded", "no space left on ")

    def __init__(self):
        super().__init__()
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        self.seen = self.seen or any(mark in str(record.msg) for mark in self.MARKS)


def no_space_sentence(folder: Path) -> str:
    free = shutil.disk_usage(folder).free
    return (
        f"no space left on {folder} ({free / 2**20:.1f} MiB free): free some space on that filesystem and run the "
        "same command again. Nothing half-written is kept: finished runs are whole, and a job that stopped "
        "runs again."
    )


def _is_token(value) -> bool:
    return isinstance(value, list) and len(value) == 1 and isinstance(value[0], str) and value[0].startswith(TOKEN)


def _negative(alternatives) -> str:
    return "(?!(?:{})/)".format("|".join(alternatives))


# ------------------------------------------------------------------------------------------ the builder


def plan_of(workflow, argv: list[str]) -> Plan:
    """The plan of this snakemake command: its config assembled and checked, the study's files read.
    Refuses (PlanError, ConfigError) a command that would do what nobody means."""
    project = Path(workflow.basedir)
    invocation = Invocation.of(workflow, argv)
    # Snakemake has read the config files already; read them again to refuse a key written twice (YAML keeps
    # the last silently) and name the file of any other problem.
    for path in config_files(workflow):
        load_yaml(path)
    refuse_swallowed_targets(invocation)
    base = default_storage(workflow)  # a bucket (--default-storage-provider), or None: lrstudy/storage.py
    config, to_remember = _assembled(project, workflow, invocation, base)
    study = checked_study(config, project / "workflow" / "schemas" / "config.schema.yaml")
    refuse_apptainer_without_images(invocation, config)
    storage = StudyStorage.of_study(**base, study_dir=study.outdir) if base else None
    home = project / study.outdir
    refuse_no_hooks(invocation)
    # Under a default storage provider the study's files are in the bucket: none is read from this disk.
    on_disk = storage is None
    meta = study_state.read_meta(home) if on_disk else None
    meta = meta if study_state.cache_is_current(meta, study.dataset.identity()) else None
    run_seeds = tuple(study.run_seeds)
    finished = study_state.finished_runs(home, study.variants) if on_disk else {}
    current, replaced = _still_configured(finished, study, run_seeds, meta)
    plan = Plan(
        project=project,
        home=home,
        # Under a default storage provider Snakemake works in the project: the jobs of a cloud executor get
        # the workflow as the files below Snakemake's working directory.
        workdir=working_directory(home, study.name, invocation) if study.outdir != "." and on_disk else project,
        study=study,
        config=config,
        invocation=invocation,
        to_remember=to_remember,
        run_seeds=run_seeds,
        meta=meta,
        finished=frozenset(finished),
        current_runs=frozenset(current),
        replaced=replaced,
        missing=tuple(study_state.missing_runs(home, study.variants)) if on_disk else (),
        variant_summaries=tuple(study_state.made_variant_summaries(home, study.variants)) if on_disk else (),
        forced=frozenset(forced_runs(invocation, study.variants, run_seeds)),
        storage=storage,
        workflow=workflow,
    )
    refuse_report_over_ours(invocation, project)
    if invocation.runs_jobs:
        refuse_a_full_disk(home if home.is_dir() else project)
    if on_disk:
        study_state.warn_if_cache_damaged(home, study_state.read_meta(home), study.name)
    if invocation.main_process:
        _logger().addHandler(plan.disk_full)
        plan.announce()
    refuse_a_study_too_long_for_this_cpu(plan)
    return plan


def _assembled(project: Path, workflow, invocation: Invocation, base: dict | None) -> tuple[dict, dict | None]:
    """The study's config from its layers, and what a named study remembers (lrstudy.studies.assemble). With a
    default storage provider (`base`) every file of the study lives in the bucket, a named study's under its
    name; its remembered config too."""
    return assemble(
        project,
        command_line_config(workflow),
        # A job's own Snakemake reads no archive (the download runs where Snakemake runs), and a cloud job
        # could not see this machine's copy.
        check_files=invocation.main_process,
        starts_over=invocation.starts_over,
        remembered_at=remembered_in(base) if base else remembered_path,
    )


def _still_configured(
    finished: Mapping[str, dict], study: Study, run_seeds: tuple[int, ...], meta: dict | None
) -> tuple[set[str], dict[str, str]]:
    """(the finished runs that are still the configured runs, those the config changed -> why)."""
    current, replaced = set(), {}
    for name, summary in finished.items():
        variant, seed = name.split("/seed")
        if int(seed) not in run_seeds:
            continue
        is_current, why = study_state.why_replaced(summary, study.recipes[variant], study.dataset, meta)
        if is_current:
            current.add(name)
        elif why:
            replaced[name] = why
    return current, replaced


def working_directory(home: Path, name: str, invocation: Invocation) -> Path:
    """Where Snakemake works for a named study: its folder (Snakemake makes it on a run). A reading command
    (a dry run, a listing) of a study never run plans in an empty temporary folder, removed at exit: it
    must leave the project as it was, and Snakemake writes .snakemake/ in its working directory."""
    if home.is_dir() or invocation.runs_jobs:
        return home
    scratch = Path(tempfile.mkdtemp(prefix=f"lrstudy-{name}-plan-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def forced_runs(invocation: Invocation, variants: list[str], seeds: tuple[int, ...]) -> set[str]:
    """The runs this command asks to train again: all with -F or --forcerun train, else those whose files it
    names with --forcerun, or as targets with -f."""
    if invocation.forces_all or "train" in invocation.forcerun:
        return {study_state.run_name(v, s) for v in variants for s in seeds}
    named = invocation.forcerun + (invocation.targets if invocation.forces_targets else [])
    return {
        study_state.run_name(m["variant"], int(m["seed"]))
        for path in named
        if (m := RUN_FILE.fullmatch(os.path.normpath(path)))
    }


def refuse_no_hooks(invocation: Invocation) -> None:
    if invocation.no_hooks and invocation.runs_jobs:
        raise PlanError(
            "--no-hooks: this workflow's onstart hook remembers the study's config and keeps its finished runs "
            "before any job replaces one; run without --no-hooks"
        )


def refuse_a_full_disk(folder: Path) -> None:
    """A run on a filesystem without room for Snakemake's own lock files stops there, with its OSError: say
    it first, in a sentence. (Less than 1 MiB: a lock, a job's script and its log take about that.)"""
    if shutil.disk_usage(folder).free < 2**20:
        raise PlanError(no_space_sentence(folder))


def refuse_apptainer_without_images(invocation: Invocation, config: Mapping) -> None:
    """--software-deployment-method apptainer with no image configured would run every job outside any
    container, silently: the images are config keys (containers.train, containers.analysis)."""
    missing = [f"containers.{job}" for job, image in config["containers"].items() if image is None]
    if "apptainer" in invocation.deployment and missing:
        raise PlanError(
            f"--software-deployment-method apptainer needs the jobs' images, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} null: build them (containers/Dockerfile) and set them in "
            "local.yaml or the study's config, e.g. containers: {train: docker://REGISTRY/lrstudy-train:TAG, "
            "analysis: docker://REGISTRY/lrstudy-analysis:TAG}"
        )


def refuse_swallowed_targets(invocation: Invocation) -> None:
    """`--forcerun train results/runs/lr_x5/summary.csv` forces that file and, with no target left, builds
    the default one: every run of the study would retrain. Snakemake accepts it; nobody means it."""
    forced = invocation.forcerun
    if invocation.targets or not forced:
        return
    paths = [f for f in forced if len(Path(f).parts) > 1 or Path(f).suffix]  # rule names have neither
    if paths:
        raise PlanError(
            f"`--forcerun` reads {' '.join(paths)} as something to force, not as a "
            "target, so the whole study would be built and every run forced to retrain. Put `--` before the "
            f"targets: {shlex.join(['snakemake', *targets_after_dashes(invocation.argv, paths)])}"
        )


def targets_after_dashes(argv: Sequence[str], targets: Sequence[str]) -> list[str]:
    """The command line as typed, every option kept, with `targets` (values `--forcerun` swallowed: the
    last place each is in argv) moved to the end, after `--`, in the order they were typed."""
    at = sorted(len(argv) - 1 - list(argv)[::-1].index(target) for target in set(targets))
    return [*(a for i, a in enumerate(argv) if i not in at), "--", *(argv[i] for i in at)]


def refuse_report_over_ours(invocation: Invocation, project: Path) -> None:
    """Snakemake's own report must not replace any study's report.html, however its path is written
    (--report, --report=..., an absolute or ../ path, a link, --reporter html --report-html-path ...)."""
    path = invocation.report_path
    if path is None:
        return
    theirs = study_report_at(path, project)
    if theirs is not None:
        raise PlanError(
            f"`snakemake --report {path}` would write Snakemake's report over the study report {theirs}: give it "
            "another path, e.g. snakemake --report results/snakemake-report.zip"
        )


def refuse_a_study_too_long_for_this_cpu(plan: Plan) -> None:
    """`device: auto` on a machine without CUDA, decided once for the runs still to train, before any job
    starts: each training job would otherwise refuse on its own, once per run. Jobs that run elsewhere (a
    cluster, a conda environment) decide for themselves."""
    study = plan.study
    if study.execution.device != "auto" or not plan.invocation.jobs_run_here:
        return
    names = {(v, s): study_state.run_name(v, s) for v in study.variants for s in study.seeds}
    todo = [run for run, name in names.items() if name not in plan.finished or name in plan.replaced]
    if not todo:
        return
    from lrstudy.train.device import DeviceError, cpu_seconds, refuse_auto_on_cpu  # torch: only when needed

    sizes = study_state.dataset_sizes(plan.meta, study.dataset, plan.cache_is_current)
    threads = study.execution.cpu_threads
    try:
        refuse_auto_on_cpu(
            study.execution.device, {f"{v} seed {s}": cpu_seconds(study.recipes[v], *sizes, threads) for v, s in todo}
        )
    except DeviceError as e:
        if plan.invocation.runs_jobs:
            raise PlanError(str(e)) from None
        # A dry run still shows its plan (say, on a laptop, of a study meant for a GPU machine).
        _logger().warning(f"{e}\nThis is a dry run; a run would stop here, before any job starts.")
