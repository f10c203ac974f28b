# Analysis: every run -> results/aggregate/*.csv -> results/figures/* -> report.html.
# Outputs flagged with report() also go into Snakemake's own report:
#   snakemake --report results/snakemake-report.zip

from lrstudy.grid import caption_of, figure_names, sweeps_param
from lrstudy.train.tensorboard import study_hparams

# A grid study also gets its sweep figures: sweep (against each lr window's factor), sweep_<key> per key a
# cross sweeps, heatmap_<key1>_<key2> per two-key cross.
FIGURES = ["accuracy", "loss", "lr", "final_accuracy", *figure_names(config.get("grid"), STUDY.sweeps)]
CAPTIONS = "../../report/captions"  # report() captions are relative to this file
SWEEPS = sweeps_param(STUDY.sweeps)  # the cross entries' variants and values: params of the figures, tables, report


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
        runs=PLAN.runs_token("results/aggregate/epochs.csv"),
    script:
        "../scripts/aggregate.py"


rule figures:
    """Curves, learning rates and final accuracies: PNG for report.html, SVG for print."""
    input:
        epochs=rules.aggregate.output.epochs,
        summary=rules.aggregate.output.summary,
        stats=rules.aggregate.output.stats,
    output:
        png=[
            report(f"results/figures/{f}.png", category="Figures", caption=f"{CAPTIONS}/{caption_of(f)}.rst")
            for f in FIGURES
        ],
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
        sweeps=SWEEPS,
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
        sweeps=SWEEPS,
        code=code_of("tables.py"),
    script:
        "../scripts/tables.py"


rule report:
    """report.html: verdicts, tables, figures, config, provenance; one file that opens offline."""
    input:
        stats=rules.aggregate.output.stats,
        summary=rules.aggregate.output.summary,
        summaries=study_runs("summary.json"),
        seed_plan=[] if DESIGN is None else rules.seed_plan.output,
        tables=rules.tables.output,
        figures=rules.figures.output.png,
        captions=[source_file(f"report/captions/{c}.rst") for c in dict.fromkeys(map(caption_of, FIGURES))],
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
        sweeps=SWEEPS,
        code=code_of("render_report.py"),
    script:
        "../scripts/render_report.py"


# The study's HPARAMS columns, every value a run of it may have (rule tensorboard's params).
TENSORBOARD_COLUMNS = study_hparams((STUDY.recipes[v].as_dict(), v, s) for v in VARIANTS for s in PLAN.run_seeds)


rule tensorboard:
    """With execution.tensorboard: results/tensorboard/ made again from the study's runs once they are
    trained, each run's curves, HPARAMS and status from its own files (a run's live event files, written
    as it trains, are replaced; a run trained while TensorBoard was off gets its folder; a run no longer
    in the study leaves). At the top: the study's HPARAMS columns, with the final test accuracy as metric."""
    input:
        metrics=study_runs("metrics.csv"),
        summaries=study_runs("summary.json"),
    output:
        directory("results/tensorboard"),
    log:
        "logs/tensorboard.log",
    benchmark:
        "benchmarks/tensorboard.tsv"
    conda:
        "../envs/tensorboard.yaml"
    params:
        columns=TENSORBOARD_COLUMNS,
        code=code_of("tensorboard.py"),
    script:
        "../scripts/tensorboard.py"


rule mlflow:
    """Optional (snakemake mlflow): the study to MLflow, a parent run with the report and a child run per
    run; exporting again adds nothing, a retrained or removed run's old export is deleted. The local
    store's path is a param: after the project folder moves, the export runs again and follows it."""
    input:
        metrics=study_runs("metrics.csv"),
        summaries=study_runs("summary.json"),
        models=study_runs("model.pt"),
        report=rules.report.output[0],
        figures=[*rules.figures.output.png, *rules.figures.output.svg],
        tables=rules.tables.output,
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
        tracking_uri=config["mlflow"]["tracking_uri"],  # null: the local store, results/mlflow/mlflow.db
        store=os.path.abspath("results/mlflow"),
        code=code_of("mlflow_export.py"),
    script:
        "../scripts/mlflow_export.py"
