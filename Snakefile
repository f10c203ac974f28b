# ResNet18 on CIFAR-10 under several learning-rate schedules, each with several seeds.
#
#   snakemake --cores 1 --resources gpu=1          the whole study (default target: report.html)
#   snakemake --configfile config/smoke.yaml ...   the few-minute CPU demo
#   snakemake results/runs/lr_x5/seed0/metrics.csv one run
#
# Stages: workflow/rules/{common,data,train,analysis}.smk. Training engine: lrstudy/.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        "report.html",
