import json
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from lrstudy.adaptive import possible_seeds
from lrstudy.config import (
    ConfigError,
    check_study,
    check_unique_keys,
    describe_schema_error,
    normalise_variants,
    replace_study_lists,
    run_config,
)

check_unique_keys(workflow.configfiles)
# variants/seeds from --configfile or --config replace config.yaml's as a whole (Snakemake merges dicts).
replace_study_lists(config, workflow.config_settings.overwrite_config)
normalise_variants(config)
try:
    validate(config, "../schemas/config.schema.yaml")
except WorkflowError as error:
    raise ConfigError(describe_schema_error(error)) from None
check_study(config)

VARIANTS = list(config["variants"])
SEEDS = [int(s) for s in config["seeds"]]
# Every seed a run may have: the configured ones, and with `adaptive` the later stages' (workflow/rules/adaptive.smk).
RUN_SEEDS = possible_seeds(config)


wildcard_constraints:
    variant="|".join(re.escape(v) for v in VARIANTS),
    seed="|".join(str(s) for s in RUN_SEEDS),


def run_files(name):
    """`name` (e.g. metrics.csv) of every configured run, variants in config order."""
    return expand("results/runs/{variant}/seed{seed}/{name}", variant=VARIANTS, seed=SEEDS, name=name)


def train_config(wildcards):
    """The variant's complete train config, as JSON: a params value, so that changing one variant's
    settings reruns that variant only."""
    return json.dumps(run_config(config, wildcards.variant), sort_keys=True)


def uses_gpu(wildcards):
    return 0 if run_config(config, wildcards.variant)["device"] == "cpu" else 1


# "variant/seedN" of any run that is not configured (a negative lookahead over the configured ones).
UNCONFIGURED_RUN = "(?!(?:{})/seed(?:{})/)[^/]+/seed[^/]+".format(
    "|".join(re.escape(v) for v in VARIANTS), "|".join(str(s) for s in RUN_SEEDS)
)


def reject_unconfigured(wildcards):
    raise ConfigError(
        f"results/runs/{wildcards.other_run}: no such run in the config "
        f"(variants: {', '.join(VARIANTS)}; seeds: {', '.join(map(str, RUN_SEEDS))})"
    )
