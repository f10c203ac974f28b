"""Rule aggregate: every run's files -> results/aggregate/{epochs,summary,stats}.csv."""

import logging
from pathlib import Path

from lrstudy.analysis.adaptive import design_from_config
from lrstudy.analysis.aggregate import aggregate, drop_seed_plans, write_csv
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    design = design_from_config(sm.params.design)
    tables = aggregate(
        [Path(p).parent for p in sm.input.summaries],
        sm.params.variants,
        design,
        sm.params.design["seeds"],
        multiplicity=sm.params.design["stats"]["multiplicity"],
    )
    for name, table in tables.items():
        write_csv(table, sm.output[name])
    if design is None:
        for path in drop_seed_plans(Path(sm.output.stats).parent):
            logging.getLogger("lrstudy").info("%s: removed, the study's design is no longer adaptive", path)


run_logged(sm.log[0], main, expected=(ValueError,))
