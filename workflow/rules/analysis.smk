# Analysis: every run -> results/aggregate/*.csv -> results/figures/* -> report.html.
# Outputs flagged with report() also go into Snakemake's own report:
#   snakemake --report results/snakemake-report.zip

import os
import sys

from snakemake.exceptions import WorkflowError

FIGURES = ["accuracy", "loss", "lr", "final_accuracy"]
CAPTIONS = "../../report/captions"  # report() captions are relative to this file


# `snakemake --report` with no path (its default is report.html) would write Snakemake's report over
# the study's own: refuse it, and an explicit report.html too.
_args = [p for a in sys.argv[1:] for p in (a.split("=", 1) if a.startswith("--report=") else [a])] + ["-"]
_report_paths = [after for arg, after in zip(_args, _args[1:]) if arg == "--report"]
if any(p.startswith("-") or os.path.normpath(p) == "report.html" for p in _report_paths):
    raise WorkflowError("`snakemake --report` without a path writes report.html, over the study's own report: "
                        "give it another path, e.g. snakemake --report results/snakemake-report.zip")


rule aggregate:
    """Every run's metrics and summary -> one table per epoch, per run and per variant."""
    input:
        metrics=study_runs("metrics.csv"),
        summaries=study_runs("summary.json"),
    output:
        epochs=report("results/aggregate/epochs.csv", category="Tables", caption=f"{CAPTIONS}/epochs.rst"),
        summary=report("results/aggregate/summary.csv", category="Tables", caption=f"{CAPTIONS}/summary.rst"),
        stats=report("results/aggregate/stats.csv", category="Tables", caption=f"{CAPTIONS}/stats.rst"),
    params:
        variants=VARIANTS,
        design={"adaptive": config.get("adaptive"), "seeds": SEEDS},
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/aggregate.py"


rule figures:
    """Curves, learning rates and final accuracies: PNG for report.html, SVG for print."""
    input:
        epochs=rules.aggregate.output.epochs,
        summary=rules.aggregate.output.summary,
        stats=rules.aggregate.output.stats,
    output:
        png=[report(f"results/figures/{f}.png", category="Figures", caption=f"{CAPTIONS}/{f}.rst") for f in FIGURES],
        svg=[f"results/figures/{f}.svg" for f in FIGURES],
    params:
        variants=VARIANTS,
    log:
        "logs/figures.log",
    benchmark:
        "benchmarks/figures.tsv"
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/figures.py"


rule report:
    """report.html: verdicts, tables, figures, config, provenance; one file that opens offline."""
    input:
        stats=rules.aggregate.output.stats,
        summary=rules.aggregate.output.summary,
        summaries=study_runs("summary.json"),
        seed_plan=seed_plan_input,
        figures=rules.figures.output.png,
        captions=expand("report/captions/{figure}.rst", figure=FIGURES),
        template="report/templates/report.html.j2",
        seed_numbers="report/reference.yaml",
    output:
        "report.html",
    params:
        config=config,
        repo=workflow.basedir,
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/render_report.py"
