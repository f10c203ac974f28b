"""Rule prepare_data: decode the archive into the uint8 cache training reads."""

import json
import logging
from pathlib import Path

from lrstudy.data.cifar10 import DatasetError, prepare
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    identity = json.loads(sm.params.identity)
    meta = prepare(
        Path(sm.input[0]),
        Path(sm.output.npz),
        Path(sm.output.meta),
        train_limit=identity["train_limit"],
        test_limit=identity["test_limit"],
    )
    logging.getLogger("lrstudy").info(
        "dataset cache: %d train / %d test images, archive sha256 %s",
        meta["train_size"],
        meta["test_size"],
        meta["sha256"],
    )


run_logged(sm.log[0], main, expected=(DatasetError,))
