"""Checkpoint plan_stage: the runs so far -> results/aggregate/seed_plan/stage{k}.csv, the looks of the
adaptive design up to this stage and what each open comparison gets next."""

import logging
from pathlib import Path

from lrstudy.analysis.aggregate import run_tables, seed_plan, write_csv
from lrstudy.config import stats_from_param
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    settings = stats_from_param(sm.params.stats)
    _, summary = run_tables([Path(p).parent for p in sm.input.summaries], sm.params.variants)
    plan = seed_plan(summary, sm.params.variants, settings, sm.params.seeds)
    log = logging.getLogger("lrstudy")
    for row in plan[plan["stage"] == int(sm.wildcards.stage)].itertuples():
        short = row.design_power < settings.adaptive.power  # the reason says by how much and what would reach it
        (log.warning if short else log.info)("%s: %s (%s)", row.variant, row.decision, row.reason)
    write_csv(plan, sm.output[0])


run_logged(sm.log[0], main, expected=(ValueError,))
