# The adaptive design's input functions (rules in adaptive.smk): which runs each stage's look and the
# analysis need, read from the stage plans the checkpoint plan_stage writes.

import pandas as pd

from lrstudy.analysis import adaptive
from lrstudy.analysis.stats import reference_variant

DESIGN = adaptive.design_of(STUDY.stats)  # STUDY.stats: parsed once, with the rest of the study


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
