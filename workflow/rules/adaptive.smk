# The adaptive multi-seed design (config key `adaptive`; the statistics are lrstudy/adaptive.py).
#
# Stage 1 is the configured seeds. After each stage the checkpoint plan_stage looks at every comparison
# still open and writes results/aggregate/seed_plan/stage{k}.csv; the input functions below read it to
# list stage k+1's runs (the open variants and the reference), until no comparison is open. The last
# stage's plan becomes results/aggregate/seed_plan.csv, and its runs are the study's runs.
#
# Without `adaptive` the study's runs are the configured ones and none of this runs.

import pandas as pd

from lrstudy import adaptive
from lrstudy.stats import reference_variant

DESIGN = adaptive.design_from_config(config)


def study_runs(name):
    """`name` (e.g. summary.json) of every run the study has: input of the analysis rules."""
    if DESIGN is None:
        return run_files(name)
    return lambda wildcards: planned_files(final_plan(), name)


def seed_plan_input(wildcards):
    return [] if DESIGN is None else rules.seed_plan.output


def planned_files(plan_path, name):
    """`name` of every run a stage plan asks for (before any plan: the first stage)."""
    plan = pd.read_csv(plan_path) if plan_path else pd.DataFrame(columns=adaptive.PLAN_COLUMNS)
    planned = adaptive.planned_seeds(DESIGN, plan, VARIANTS, reference_variant(VARIANTS), SEEDS)
    return [f"results/runs/{v}/seed{s}/{name}" for v in VARIANTS for s in planned[v]]


def stage_runs(wildcards):
    """The runs the look after stage k needs: those the plan after stage k-1 asked for."""
    k = int(wildcards.stage)
    return planned_files(checkpoints.plan_stage.get(stage=k - 1).output[0] if k > 1 else None, "summary.json")


def final_plan():
    """The first stage plan with nothing left open (each .get() waits for its checkpoint to have run)."""
    k = 1
    while True:
        path = checkpoints.plan_stage.get(stage=k).output[0]
        if adaptive.is_final(pd.read_csv(path)):
            return path
        k += 1


localrules:
    plan_stage,
    seed_plan,


checkpoint plan_stage:
    """After stage k: every open comparison is settled or gets the next stage's seeds."""
    input:
        summaries=stage_runs,
    output:
        "results/aggregate/seed_plan/stage{stage}.csv",
    params:
        design={"adaptive": config.get("adaptive"), "seeds": SEEDS},
        variants=VARIANTS,
    wildcard_constraints:
        stage=r"[1-9]\d*",
    log:
        "logs/plan_stage/stage{stage}.log",
    benchmark:
        "benchmarks/plan_stage/stage{stage}.tsv"
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/plan_seeds.py"


rule seed_plan:
    """The last stage's plan: every look of every comparison, and the seeds each variant got."""
    input:
        lambda wildcards: final_plan(),
    output:
        report("results/aggregate/seed_plan.csv", category="Tables", caption="../../report/captions/seed_plan.rst"),
    log:
        "logs/seed_plan.log",
    benchmark:
        "benchmarks/seed_plan.tsv"
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/seed_plan.py"
