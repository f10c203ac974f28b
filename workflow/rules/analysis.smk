# Analysis: every run -> results/aggregate/*.csv -> results/figures/* -> report.html.
# Outputs flagged with report() also go into Snakemake's own report:
#   snakemake --report results/snakemake-report.zip

from lrstudy.study_state import drop_stale_aggregate, missing_runs

# A grid study also gets the sweep plot: final accuracy against each window's factor.
FIGURES = ["accuracy", "loss", "lr", "final_accuracy", *(["sweep"] if config.get("grid") else [])]
CAPTIONS = "../../report/captions"  # report() captions are relative to this file


rule aggregate:
    """Every run's metrics and summary -> one table per epoch, per run and per variant."""
    input:
        metrics=study_runs("metrics.csv"),
        summaries=study_runs("summary.json"),
    output:
        epochs=report("results/aggregate/epochs.csv", category="Tables", caption=f"{CAPTIONS}/epochs.rst"),
        summary=report("results/aggregate/summary.csv", category="Tables", caption=f"{CAPTIONS}/summary.rst"),
        stats=report("results/aggregate/stats.csv", category="Tables", caption=f"{CAPTIONS}/stats.rst"),
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/aggregate.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        variants=VARIANTS,
        code=code_of("aggregate.py"),
        stats=stats_param(STUDY.stats),
        seeds=SEEDS,
        deleted_runs=deleted_runs,
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
    log:
        "logs/figures.log",
    benchmark:
        "benchmarks/figures.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        variants=VARIANTS,
        seed_lines=config["figures"]["seed_lines"],
        code=code_of("figures.py"),
    script:
        "../scripts/figures.py"


rule tables:
    """stats.csv -> the per-variant table for a paper, as Markdown and as LaTeX (a booktabs longtable)."""
    input:
        stats=rules.aggregate.output.stats,
    output:
        md=report("results/aggregate/stats.md", category="Tables", caption=f"{CAPTIONS}/stats_md.rst"),
        tex=report("results/aggregate/stats.tex", category="Tables", caption=f"{CAPTIONS}/stats_tex.rst"),
    log:
        "logs/tables.log",
    benchmark:
        "benchmarks/tables.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        study=STUDY.name,  # stats.tex's \label
        code=code_of("tables.py"),
    script:
        "../scripts/tables.py"


rule report:
    """report.html: verdicts, tables, figures, config, provenance; one file that opens offline."""
    input:
        stats=rules.aggregate.output.stats,
        summary=rules.aggregate.output.summary,
        summaries=study_runs("summary.json"),
        seed_plan=seed_plan_input,
        tables=rules.tables.output,
        figures=rules.figures.output.png,
        captions=[source_file(f"report/captions/{figure}.rst") for figure in FIGURES],
        template=source_file("report/templates/report.html.j2"),
        published=source_file("report/published_run.yaml"),
    output:
        "report.html",
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        config=shareable(config),
        stats=stats_param(STUDY.stats),
        code=code_of("render_report.py"),
    script:
        "../scripts/render_report.py"


rule mlflow:
    """Optional (snakemake mlflow): every finished run to MLflow, the study as the experiment; exporting
    again adds nothing. Needs the mlflow extra: pip install '.[mlflow]'."""
    input:
        metrics=study_runs("metrics.csv"),
        summaries=study_runs("summary.json"),
    output:
        "results/mlflow/exported.json",
    log:
        "logs/mlflow.log",
    benchmark:
        "benchmarks/mlflow.tsv"
    conda:
        "../envs/mlflow.yaml"
    params:
        study=config["study"],
        tracking_uri=config["mlflow"]["tracking_uri"],  # null: the file store results/mlflow/mlruns
    script:
        "../scripts/mlflow_export.py"


# Parse-time effect 3 (common.smk): here, where the analysis rules' outputs are known.
if PLAIN_RUN:
    drop_stale_aggregate(
        VARIANTS,
        [*rules.aggregate.output, *rules.tables.output, *rules.figures.output, *rules.report.output],
    )
# Read once, after the drop: the params function deleted_runs (common.smk) reads it when jobs are planned.
DELETED_RUNS = missing_runs(VARIANTS)
