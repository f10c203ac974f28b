import os
import sys

from snakemake.logging import logger

from lrstudy.analysis.adaptive import design_of
from lrstudy.config import ConfigError, shareable, stats_param
from lrstudy.refusal import said_alone
from lrstudy.snakemake_compat import ship_with_the_workflow, use_storage_prefix
from lrstudy.storage import STORAGE_ENV
from lrstudy.studies import LOCAL_FILE
from lrstudy.workflow_plan import plan_of

# Every fact the rules need, read once from the command line, the config's layers (config.yaml, local.yaml,
# a named study's remembered config, --configfile/--config) and the study's files: lrstudy/workflow_plan.py.
# Building it writes nothing (a reading command of a study never run plans in a temporary folder); a
# command it refuses (a config error, `--forcerun` eating the targets) ends with that sentence alone.
PLAN = said_alone(plan_of, workflow, sys.argv[1:])
config.clear()
config.update(PLAN.config)
STUDY = PLAN.study
VARIANTS = PLAN.variants
SEEDS = PLAN.seeds
DESIGN = design_of(STUDY.stats)  # the adaptive design; None: a fixed design
src = PLAN.src
code_of = PLAN.code_of  # a rule's code identity (its script's lrstudy imports): the analysis reruns on a change

if PLAN.storage is not None:
    # A default storage provider (a bucket, lrstudy/storage.py): every file declared below lives under the
    # study's prefix; the jobs get the study's storage from the environment (for the run's checkpoint) and
    # local.yaml with the workflow, so that they assemble the config this process does.
    use_storage_prefix(workflow, PLAN.storage.prefix)
    os.environ[STORAGE_ENV] = PLAN.storage.to_env()
    if (PLAN.project / LOCAL_FILE).exists():
        ship_with_the_workflow(workflow, PLAN.project / LOCAL_FILE)

if PLAN.workdir != PLAN.project:
    # Snakemake's header names the directory it started in; a named study's files are here.
    logger.info(f"Study {STUDY.name!r}: working directory {PLAN.workdir}")

    workdir: PLAN.workdir


# The writes before the first job, in a run that holds the directory lock and starts jobs (never in a dry
# run, a listing or a refused run): remember a named study's config; keep every finished run in the run
# cache, so that a config change replacing one loses nothing (lrstudy/run_cache.py).
onstart:
    PLAN.on_start()


# A failed run ends with what to do: where the disk is full, if that is why.
onerror:
    PLAN.on_error()


wildcard_constraints:
    variant=PLAN.variant_regex,
    seed="|".join(str(s) for s in PLAN.run_seeds),


def study_runs(name):
    return PLAN.study_runs(name, checkpoints)


def source_file(path):
    """An input that is a file of the workflow itself (the report's template, captions): read where the
    workflow is, never from the study's storage, where --default-storage-provider puts every other file."""
    return local(src(path))
