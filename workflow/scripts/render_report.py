"""Rule report: tables, figures, config and provenance -> report.html."""

from pathlib import Path

from lrstudy.analysis.report import ReportInputs, write_report
from lrstudy.config import stats_from_param
from lrstudy.grid import sweeps_from_param
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    inputs = ReportInputs(
        stats_csv=sm.input.stats,
        summary_csv=sm.input.summary,
        summary_jsons=sm.input.summaries,
        figures=sm.input.figures,
        captions_dir=Path(sm.input.captions[0]).parent,
        published=sm.input.published,
        template=sm.input.template,
        seed_plan_csv=sm.input.seed_plan[0] if sm.input.seed_plan else None,
        paper_tables=sm.input.tables,
    )
    write_report(
        inputs, sm.params.config, stats_from_param(sm.params.stats), sm.output[0], sweeps_from_param(sm.params.sweeps)
    )


run_logged(sm.log[0], main)
