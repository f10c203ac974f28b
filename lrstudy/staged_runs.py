"""Which runs an adaptive study has, read from the stage plans the checkpoint plan_stage writes
(workflow/rules/adaptive.smk): the inputs of each stage's look and of the analysis.

Stage 1 is the configured seeds. After stage k the look writes results/aggregate/seed_plan/stage{k}.csv;
stage k+1's runs are the open variants' and the reference's next seeds, until no comparison is open.
`checkpoints` is the Snakefile's own object: each `.get()` waits for its checkpoint to have run.
"""

from __future__ import annotations

from collections.abc import Sequence

from lrstudy.analysis import adaptive
from lrstudy.analysis.stats import reference_variant


def planned_files(design, variants: Sequence[str], seeds: Sequence[int], plan_path: str | None, name: str) -> list[str]:
    """`name` of every run a stage plan asks for (before any plan: the first stage)."""
    import pandas as pd

    plan = pd.read_csv(plan_path) if plan_path else pd.DataFrame(columns=adaptive.PLAN_COLUMNS)
    planned = adaptive.planned_seeds(design, plan, variants, reference_variant(variants), seeds)
    return [f"results/runs/{v}/seed{s}/{name}" for v in variants for s in planned[v]]


def final_plan(checkpoints) -> str:
    """The first stage plan with nothing left open."""
    import pandas as pd

    k = 1
    while True:
        path = checkpoints.plan_stage.get(stage=k).output[0]
        if adaptive.is_final(pd.read_csv(path)):
            return path
        k += 1


def previous_plan(checkpoints, stage: int) -> str | None:
    """The plan the look after `stage` starts from: the one after stage-1 (none before stage 1's look)."""
    return checkpoints.plan_stage.get(stage=stage - 1).output[0] if stage > 1 else None
