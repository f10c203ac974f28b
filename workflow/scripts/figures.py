"""Rule figures: the aggregate tables -> results/figures/*.png and *.svg."""

import pandas as pd

from lrstudy.analysis.figures import write_figures
from lrstudy.analysis.sweep_figures import sweep_plots
from lrstudy.grid import sweeps_from_param
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    tables = {name: pd.read_csv(sm.input[name]) for name in ("epochs", "summary", "stats")}
    write_figures(
        tables,
        sm.params.variants,
        [*sm.output.png, *sm.output.svg],
        seed_lines=sm.params.seed_lines,
        plots=sweep_plots(sweeps_from_param(sm.params.sweeps)),
    )


run_logged(sm.log[0], main, expected=(ValueError,))
