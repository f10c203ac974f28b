"""Rule train: one seeded run of one variant, resumed from its checkpoint if one matches."""

import json
from pathlib import Path

from lrstudy.engine import DeviceError
from lrstudy.logs import run_logged
from lrstudy.run import execute

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    execute(
        train=json.loads(sm.params.train), seed=int(sm.wildcards.seed), variant=sm.wildcards.variant,
        data_npz=Path(sm.input.npz), data_meta=Path(sm.input.meta), metrics_out=Path(sm.output.metrics),
        summary_out=Path(sm.output.summary), model_out=Path(sm.output.model),
        checkpoint_path=Path(sm.params.checkpoint), threads=sm.threads,
    )


run_logged(sm.log[0], main, expected=(DeviceError,))
