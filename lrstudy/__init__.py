"""ResNet18 / CIFAR-10 learning-rate schedule study: the code behind the Snakemake workflow.

The subpackages follow the workflow's stages: data/ (download, prepare_data), train/ (train), analysis/
(aggregate, figures, report, adaptive seeds). The modules at this level are shared by all of them: the
config (config.py, studies.py), atomic outputs, logging, the metrics file format, provenance, and the
checks of a study's files made when the workflow starts (study_state.py).
"""
