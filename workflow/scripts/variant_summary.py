"""Rule variant_summary: one variant's runs -> results/runs/{variant}/summary.csv, one row per seed."""

from pathlib import Path

from lrstudy.analysis.aggregate import run_tables, write_csv
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    _, summary = run_tables([Path(p).parent for p in sm.input.summaries], [sm.wildcards.variant])
    write_csv(summary, sm.output[0])


run_logged(sm.log[0], main, expected=(ValueError,))
