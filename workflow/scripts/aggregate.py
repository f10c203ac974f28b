"""Rule aggregate: every run's files -> results/aggregate/{epochs,summary,stats}.csv."""

from pathlib import Path

from lrstudy.analysis.aggregate import aggregate, write_csv
from lrstudy.config import stats_from_param
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    runs = [Path(p).parent for p in sm.input.summaries]
    tables = aggregate(runs, sm.params.variants, stats_from_param(sm.params.stats), sm.params.seeds)
    for name, table in tables.items():
        write_csv(table, sm.output[name])


run_logged(sm.log[0], main, expected=(ValueError,))
