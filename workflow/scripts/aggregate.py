"""Rule aggregate: every run's files -> results/aggregate/{epochs,summary,stats}.csv."""

from pathlib import Path

from lrstudy.analysis.adaptive import design_from_config
from lrstudy.analysis.aggregate import aggregate, write_csv
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    tables = aggregate(
        [Path(p).parent for p in sm.input.summaries],
        sm.params.variants,
        design_from_config(sm.params.design),
        sm.params.design["seeds"],
        multiplicity=sm.params.design["stats"]["multiplicity"],
    )
    for name, table in tables.items():
        write_csv(table, sm.output[name])


run_logged(sm.log[0], main, expected=(ValueError,))
