"""ResNet18 / CIFAR-10 learning-rate schedule study: the code behind the Snakemake workflow.

The subpackages follow the workflow's stages: data/ (download, prepare_data), train/ (train), analysis/
(aggregate, figures, report, adaptive seeds). The modules at this level are shared by all of them: the
config (config.py, studies.py), atomic outputs, logging, the metrics file format, provenance, the
workflow's plan (workflow_plan.py: what the Snakefile reads when it is parsed, from study_state.py and
snakemake_compat.py), the run cache (run_cache.py) and a study's status (study_status.py).
"""
