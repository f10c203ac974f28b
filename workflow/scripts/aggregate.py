"""Rule aggregate: every run's files -> results/aggregate/{epochs,summary,stats}.csv."""

import logging
from pathlib import Path

from lrstudy.analysis.aggregate import aggregate, drop_seed_plans, write_csv
from lrstudy.config import stats_from_param
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    stats = stats_from_param(sm.params.stats)
    runs = [Path(p).parent for p in sm.input.summaries]
    tables = aggregate(runs, sm.params.variants, stats, sm.params.seeds)
    for name, table in tables.items():
        write_csv(table, sm.output[name])
    if stats.adaptive is None:
        for path in drop_seed_plans(Path(sm.output.stats).parent):
            logging.getLogger("lrstudy").info("%s: removed, the study's design is no longer adaptive", path)


run_logged(sm.log[0], main, expected=(ValueError,))
