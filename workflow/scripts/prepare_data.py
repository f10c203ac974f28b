"""Rule prepare_data: decode the archive into the uint8 cache training reads."""

import json
import logging
import os
from pathlib import Path

from lrstudy.data.cifar10 import DatasetError, prepare
from lrstudy.logs import run_logged
from lrstudy.studies import archive_set_in

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    identity = json.loads(sm.params.identity)
    meta = prepare(
        Path(sm.input[0]),
        Path(sm.output.npz),
        Path(sm.output.meta),
        train_limit=identity["train_limit"],
        test_limit=identity["test_limit"],
        # The project folder holds local.yaml: this script is its workflow/scripts/prepare_data.py (Snakemake
        # gives the folder as workflow/rules/../scripts).
        archive_set_in=archive_set_in(
            Path(os.path.normpath(sm.scriptdir)).parent.parent, sm.config["dataset"]["archive"]
        ),
    )
    logging.getLogger("lrstudy").info(
        "dataset cache: %d train / %d test images, archive sha256 %s",
        meta["train_size"],
        meta["test_size"],
        meta["sha256"],
    )


run_logged(sm.log[0], main, expected=(DatasetError,))
