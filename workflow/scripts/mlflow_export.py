"""Rule mlflow: every finished run -> MLflow; results/mlflow/exported.json lists run -> MLflow run id."""

import json
from pathlib import Path

from lrstudy.analysis.mlflow_export import export, local_store
from lrstudy.atomic import atomic_write_text
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    out = Path(sm.output[0])
    uri = sm.params.tracking_uri or local_store(out.parent / "mlruns")
    exported = export([Path(p).parent for p in sm.input.summaries], sm.params.study, uri)
    atomic_write_text(out, json.dumps({"tracking_uri": uri, "runs": exported}, indent=2) + "\n")


run_logged(sm.log[0], main, expected=(ValueError,))
