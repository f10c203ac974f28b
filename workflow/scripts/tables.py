"""Rule tables: results/aggregate/stats.csv -> stats.md and stats.tex."""

from lrstudy.analysis.tables import write_tables
from lrstudy.grid import sweeps_from_param
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    write_tables(sm.input.stats, sm.output.md, sm.output.tex, sm.params.study, sweeps_from_param(sm.params.sweeps))


run_logged(sm.log[0], main, expected=(ValueError,))
