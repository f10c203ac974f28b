"""Checkpoint plan_stage: the runs so far -> results/aggregate/seed_plan/stage{k}.csv, the looks of the
adaptive design up to this stage and what each open comparison gets next."""

import logging
from pathlib import Path

from lrstudy.analysis import adaptive
from lrstudy.analysis.aggregate import run_tables, seed_plan, write_csv
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    design = adaptive.design_from_config(sm.params.design)
    _, summary = run_tables([Path(p).parent for p in sm.input.summaries], sm.params.variants)
    plan = seed_plan(summary, sm.params.variants, design, sm.params.design["seeds"])
    log = logging.getLogger("lrstudy")
    for row in plan[plan["stage"] == int(sm.wildcards.stage)].itertuples():
        short = row.design_power < design.power  # the reason says by how much and what would reach it
        (log.warning if short else log.info)("%s: %s (%s)", row.variant, row.decision, row.reason)
    write_csv(plan, sm.output[0])


run_logged(sm.log[0], main, expected=(ValueError,))
