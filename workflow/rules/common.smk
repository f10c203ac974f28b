import atexit
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from snakemake.logging import logger

from lrstudy.config import ConfigError, checked_study, load_yaml, recipe_param, shareable, stats_param
from lrstudy.provenance import script_fingerprint
from lrstudy.refusal import refuse, said_alone
from lrstudy.snakemake_compat import (
    Invocation,
    command_line_config,
    config_files,
    default_storage,
    ship_with_the_workflow,
    use_storage_prefix,
)
from lrstudy.storage import STORAGE_ENV, StudyStorage, remembered_in
from lrstudy.studies import LOCAL_FILE, REMEMBERED_FILE, assemble, remember, remembered_path, study_report_at
from lrstudy.study_state import cache_is_current, dataset_sizes, warn_if_cache_damaged

PROJECT = Path(workflow.basedir)


# Snakemake's internals are read in lrstudy/snakemake_compat.py only (pinned by its test).
INVOCATION = Invocation.of(workflow, sys.argv[1:])
# Only a plain run of the main process changes files at parse time; dry runs, --report, --lint, --unlock,
# listings and job steps only read. The parse-time effects, each listed here (README: contributing):
#   1. remember(): a named study's command-line config is written to studies/<name>/study.yaml;
#   2. the named study's directory is created (Snakemake's workdir must exist; a reading command of a
#      study never run plans in an empty temporary folder instead);
#   3. drop_stale_aggregate() (end of analysis.smk): tables listing a run whose files are gone are deleted
#      with everything made from them, so that they are rebuilt (Snakemake would keep them: a deleted input
#      of an up-to-date output is not a reason to rerun).
# 1 and 3 happen on a plain run only. Reading only: the config files' duplicate keys, the cache check.
PLAIN_RUN = INVOCATION.plain_run

# Snakemake has read the config files already; read them again to refuse a key written twice (YAML keeps
# the last silently) and name the file of any other problem.
for _path in config_files(workflow):
    said_alone(load_yaml, _path)


def refuse_report_over_ours():
    """Snakemake's own report must not replace any study's report.html, however its path is written
    (--report, --report=..., an absolute or ../ path, a link, --reporter html --report-html-path ...)."""
    path = INVOCATION.report_path
    if not isinstance(path, (str, os.PathLike)):
        return
    theirs = study_report_at(path, PROJECT)
    if theirs is not None:
        refuse(
            f"`snakemake --report {path}` would write Snakemake's report over the study report {theirs}: give it "
            "another path, e.g. snakemake --report results/snakemake-report.zip"
        )


def refuse_swallowed_targets():
    """`--forcerun train results/runs/lr_x5/summary.csv` forces that file and, with no target left, builds
    the default one: every run of the study would retrain. Snakemake accepts it; nobody means it."""
    forced = INVOCATION.forcerun
    if INVOCATION.targets or not forced:
        return
    paths = [f for f in forced if len(Path(f).parts) > 1 or Path(f).suffix]  # rule names have neither
    if paths:
        refuse(
            f"`--forcerun` reads {' '.join(paths)} as something to force, not as a "
            "target, so the whole study would be built and every run forced to retrain. Put `--` before the "
            f"targets: snakemake --forcerun {' '.join(f for f in forced if f not in paths)} -- "
            f"{' '.join(paths)}"
        )


refuse_swallowed_targets()


def refuse_apptainer_without_images():
    """--software-deployment-method apptainer with no image configured would run every job outside any
    container, silently: the images are config keys (containers.train, containers.analysis)."""
    missing = [f"containers.{job}" for job, image in config["containers"].items() if image is None]
    if "apptainer" in INVOCATION.deployment and missing:
        refuse(
            f"--software-deployment-method apptainer needs the jobs' images, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} null: build them (containers/Dockerfile) and set them in "
            "local.yaml or the study's config, e.g. containers: {train: docker://REGISTRY/lrstudy-train:TAG, "
            "analysis: docker://REGISTRY/lrstudy-analysis:TAG}"
        )


# With a default storage provider (a bucket: --default-storage-provider) every file of the study lives
# there, a named study's under its name; its remembered config too (lrstudy/storage.py).
STORAGE_BASE = default_storage(workflow)
_config, _to_remember = said_alone(
    assemble,
    PROJECT,
    command_line_config(workflow),
    # A job's own Snakemake reads no archive (the download runs where Snakemake runs), and a cloud job
    # could not see this machine's copy.
    check_files=INVOCATION.main_process,
    remembered_at=remembered_in(STORAGE_BASE) if STORAGE_BASE else remembered_path,
)
if STORAGE_BASE and (PROJECT / LOCAL_FILE).exists():
    ship_with_the_workflow(workflow, PROJECT / LOCAL_FILE)  # the jobs assemble the config this process does
config.clear()
config.update(_config)
STUDY = said_alone(checked_study, config, PROJECT / "workflow" / "schemas" / "config.schema.yaml")
refuse_apptainer_without_images()
STORAGE = StudyStorage.of_study(**STORAGE_BASE, study_dir=STUDY.outdir) if STORAGE_BASE else None
if STORAGE is not None:
    use_storage_prefix(workflow, STORAGE.prefix)
    os.environ[STORAGE_ENV] = STORAGE.to_env()  # how a training job stores its checkpoints (train.py)
if _to_remember and PLAIN_RUN:
    _remembered = remember(PROJECT, _to_remember)
    if STORAGE is not None:
        STORAGE.store(REMEMBERED_FILE, _remembered)

# Under a default storage provider the study's files are in storage and Snakemake works in the project:
# the jobs of a cloud executor get the workflow as the files below Snakemake's working directory.
if STUDY.outdir != "." and STORAGE is None:
    STUDY_DIR = PROJECT / STUDY.outdir
    if not PLAIN_RUN and not STUDY_DIR.is_dir():
        # A dry run (or another reading command) of a study never run: Snakemake's workdir must exist and
        # it writes .snakemake/ there, so it plans in an empty temporary folder, removed at exit; the
        # project is left as it was.
        STUDY_DIR = Path(tempfile.mkdtemp(prefix=f"lrstudy-{STUDY.name}-plan-"))
        atexit.register(shutil.rmtree, STUDY_DIR, ignore_errors=True)
    os.makedirs(STUDY_DIR, exist_ok=True)
    # Snakemake's header names the directory it started in; the study's files are here.
    logger.info(f"Study {STUDY.name!r}: working directory {STUDY_DIR}")

    workdir: STUDY_DIR


# The project's own files (templates, captions, GPU locks) as seen from the study's directory: relative,
# so that moving the project folder changes no job's input or params.
SRC = os.path.relpath(PROJECT, os.getcwd())
refuse_report_over_ours()
VARIANTS = STUDY.variants
SEEDS = list(STUDY.seeds)
warn_if_cache_damaged("results/data/cifar10.npz", "results/data/cifar10.json")
# Every seed a run may have: the configured ones, and with `adaptive` the later stages' (workflow/rules/adaptive.smk).
RUN_SEEDS = STUDY.run_seeds


wildcard_constraints:
    variant="|".join(re.escape(v) for v in VARIANTS),
    seed="|".join(str(s) for s in RUN_SEEDS),


def deleted_runs(wildcards):
    """Params of the rules that make tables from the runs (aggregate; variant_summary, for its variant): the
    runs the tables list whose files are gone (DELETED_RUNS, end of analysis.smk). A plain run has deleted
    those tables by then (drop_stale_aggregate), so the value is empty, as recorded when the tables were
    made. A dry run still sees them, and the changed value makes it plan what the plain run does: the runs
    retrained and everything after them rebuilt. (Snakemake reruns nothing for a deleted input of an
    up-to-date output, but does for changed params.)"""
    variant = dict(wildcards.items()).get("variant")
    return [run for run in DELETED_RUNS if variant in (None, run.split("/")[0])]


def src(path):
    return os.path.normpath(os.path.join(SRC, path))


def source_file(path):
    """An input that is a file of the workflow itself (the report's template, captions): read where the
    workflow is, never from the study's storage, where --default-storage-provider puts every other file."""
    return local(src(path))


def run_files(name):
    """`name` (e.g. metrics.csv) of every configured run, variants in config order."""
    return expand("results/runs/{variant}/seed{seed}/{name}", variant=VARIANTS, seed=SEEDS, name=name)


def recipe_json(wildcards):
    """The variant's recipe, as JSON: a params value, so that changing one variant reruns that variant
    only, and nothing else (execution settings, paths) reruns a finished run."""
    return recipe_param(STUDY.recipes[wildcards.variant])


DATASET_IDENTITY = json.dumps(STUDY.dataset.identity(), sort_keys=True)
# The dataset's files as inputs. ancient() while the cache on disk was decoded from the configured data:
# then a relinked archive or a rebuilt cache reruns nothing (the runs depend on the data's identity, a
# params value). A plain input otherwise: Snakemake does not check the params of a job downstream of one
# that runs, and does not run it through an ancient() input, so a new dataset would take three
# invocations (download, then the cache, then the runs) instead of one.
CACHE_IS_CURRENT = cache_is_current("results/data/cifar10.json", STUDY.dataset.identity())


def data_input(path):
    return ancient(path) if CACHE_IS_CURRENT else path


def refuse_a_study_too_long_for_this_cpu():
    """`device: auto` on a machine without CUDA, decided once for the runs still to train, before any job
    starts: each training job would otherwise refuse on its own, once per run. Jobs that run elsewhere (a
    cluster, a conda environment) decide for themselves."""
    if STUDY.execution.device != "auto" or not INVOCATION.jobs_run_here:
        return
    todo = [(v, s) for v in VARIANTS for s in SEEDS if not Path(f"results/runs/{v}/seed{s}/summary.json").exists()]
    if not todo:
        return
    from lrstudy.train.device import DeviceError, cpu_seconds, refuse_auto_on_cpu  # torch: only when needed

    sizes = dataset_sizes("results/data/cifar10.json", STUDY.dataset, CACHE_IS_CURRENT)
    threads = STUDY.execution.cpu_threads
    try:
        refuse_auto_on_cpu(
            STUDY.execution.device, {f"{v} seed {s}": cpu_seconds(STUDY.recipes[v], *sizes, threads) for v, s in todo}
        )
    except DeviceError as e:
        if PLAIN_RUN:
            refuse(str(e))
        # A dry run still shows its plan (say, on a laptop, of a study meant for a GPU machine).
        logger.warning(f"{e}\nThis is a dry run; a run would stop here, before any job starts.")


refuse_a_study_too_long_for_this_cpu()


def code_of(script):
    """A rule's code identity, its params `code`: every lrstudy module its script imports, directly or not
    (lrstudy/provenance.py). The tables, figures and report rerun when it changes (cheap); training does
    not (docs/reruns-and-recovery.md)."""
    return script_fingerprint(PROJECT / "workflow" / "scripts" / script)


def uses_gpu(wildcards):
    return 0 if STUDY.execution.device == "cpu" else 1


def _negative(alternatives):
    return "(?!(?:{})/)".format("|".join(alternatives))


# "variant/seedN" of any run that is not configured (a negative lookahead over the configured ones).
UNCONFIGURED_RUN = _negative(f"{re.escape(v)}/seed(?:{'|'.join(map(str, RUN_SEEDS))})" for v in VARIANTS) + (
    "[^/]+/seed[^/]+"
)
# The wildcard is followed by a slash and summary.csv, so the lookahead ends at the slash, not at $.
UNCONFIGURED_VARIANT = _negative(re.escape(v) for v in VARIANTS) + "[^/]+"


def reject_unconfigured(wildcards):
    what = wildcards.get("other_run") or wildcards.get("other_variant")
    refuse(
        f"results/runs/{what}: no such run or variant in the study {STUDY.name!r} "
        f"(variants: {', '.join(VARIANTS)}; seeds: {', '.join(map(str, RUN_SEEDS))})"
    )
