# The adaptive multi-seed design (config key `adaptive`; the statistics are lrstudy/analysis/adaptive.py).
#
# Stage 1 is the configured seeds. After each stage the checkpoint plan_stage looks at every comparison
# still open and writes results/aggregate/seed_plan/stage{k}.csv; the input functions (adaptive_inputs.smk)
# read it to list stage k+1's runs (the open variants and the reference), until no comparison is open.
# The last stage's plan becomes results/aggregate/seed_plan.csv, and its runs are the study's runs.
#
# Without `adaptive` the study's runs are the configured ones and these rules do not exist.


include: "adaptive_inputs.smk"


# Only with `adaptive`: a checkpoint anywhere in the workflow changes how Snakemake reads --allowed-rules,
# and a fixed study must stay exactly as it was.
if DESIGN is not None:

    localrules:
        plan_stage,
        seed_plan,

    checkpoint plan_stage:
        """After stage k: every open comparison is settled or gets the next stage's seeds."""
        input:
            summaries=stage_runs,
        output:
            "results/aggregate/seed_plan/stage{stage}.csv",
        log:
            "logs/plan_stage/stage{stage}.log",
        benchmark:
            "benchmarks/plan_stage/stage{stage}.tsv"
        wildcard_constraints:
            stage=r"[1-9]\d*",
        conda:
            "../envs/analysis.yaml"
        params:
            stats=stats_param(STUDY.stats),
            seeds=SEEDS,
            variants=VARIANTS,
        script:
            "../scripts/plan_seeds.py"

    rule seed_plan:
        """The last stage's plan: every look of every comparison, and the seeds each variant got."""
        input:
            lambda wildcards: final_plan(),
        output:
            report("results/aggregate/seed_plan.csv", category="Tables", caption="../../report/captions/seed_plan.rst"),
        log:
            "logs/seed_plan.log",
        benchmark:
            "benchmarks/seed_plan.tsv"
        conda:
            "../envs/analysis.yaml"
        script:
            "../scripts/seed_plan.py"
