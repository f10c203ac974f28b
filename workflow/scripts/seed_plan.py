"""Rule seed_plan: the last stage's plan -> results/aggregate/seed_plan.csv."""

from pathlib import Path

from lrstudy.atomic import atomic_write_bytes
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    atomic_write_bytes(sm.output[0], Path(sm.input[0]).read_bytes())


run_logged(sm.log[0], main)
