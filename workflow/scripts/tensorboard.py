"""Rule tensorboard: the study's runs -> results/tensorboard/, every run's event file and the HPARAMS columns."""

from pathlib import Path

from lrstudy.logs import run_logged
from lrstudy.train.tensorboard import write_folder

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    write_folder(Path(sm.output[0]), [Path(p).parent for p in sm.input.summaries], sm.params.columns)


run_logged(sm.log[0], main)
