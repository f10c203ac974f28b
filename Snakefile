# ResNet18 on CIFAR-10 under several learning-rate schedules, each with several seeds.
#
#   snakemake --cores 1 --resources gpu=1          the whole study (default target: report.html)
#   snakemake report.html                          the same, the defaults from profiles/default
#   snakemake results/runs/lr_x5/summary.csv       one variant, every seed
#   snakemake --configfile config/smoke.yaml       the few-minute CPU demo, a study named `demo`
#   snakemake --config study=demo ...              later commands on that study (its config is remembered)
#
# Stages: workflow/rules/{common,data,train,adaptive,analysis}.smk. Training engine: lrstudy/.

import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The engine (lrstudy/) lives beside this Snakefile: importable here and in every job, whatever the
# job's environment (venv, --use-conda, a cluster node).
sys.path.insert(0, workflow.basedir)
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [workflow.basedir, os.getenv("PYTHONPATH")])))


# config.yaml is the defaults; workflow/rules/common.smk layers local.yaml, a named study's remembered
# config and the command line over it, and checks the result. An absolute path: a named study moves the
# working directory, and `--report` reads the config files again from there.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "report/workflow.rst"


# On a cluster these run where Snakemake runs: the download needs the internet, which compute nodes
# often lack, and the analysis jobs are too small to be worth a queue wait.
localrules:
    download,
    aggregate,
    figures,
    tables,
    report,
    mlflow,
    tensorboard,


include: "workflow/rules/common.smk"


# The image of every job under --software-deployment-method apptainer (config key containers; null: none);
# training runs in its own, with CUDA torch (train.smk).
container: config["containers"]["analysis"]


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/adaptive.smk"
include: "workflow/rules/analysis.smk"


# Every run's files are targets too: Snakemake does not remake a missing file that only feeds up-to-date
# tables, so without them a deleted run would stay deleted and the report would go on showing it. So is
# every variant summary someone made (results/runs/{variant}/summary.csv): it follows its runs.
rule all:
    default_target: True
    input:
        "report.html",
        rules.tables.output,
        study_runs("metrics.csv"),
        study_runs("summary.json"),
        study_runs("model.pt"),
        PLAN.variant_summaries,
        # With execution.tensorboard: the study's TensorBoard folder, made again from its runs.
        rules.tensorboard.output if STUDY.execution.tensorboard else [],
