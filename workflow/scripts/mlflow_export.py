"""Rule mlflow: the study and its runs -> MLflow; results/mlflow/exported.json records where they went."""

from pathlib import Path

from lrstudy.analysis.mlflow_export import Store, Study, export, study_key
from lrstudy.atomic import atomic_write_json
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    out = Path(sm.output[0])
    study = Study(
        name=sm.params.study,
        key=study_key(out.parent / "study_key"),
        run_dirs=[Path(p).parent for p in sm.input.summaries],
        report=[
            ("", Path(sm.input.report)),
            *(("figures", Path(f)) for f in sm.input.figures),
            *(("tables", Path(t)) for t in sm.input.tables),
        ],
    )
    atomic_write_json(out, export(study, Store.of(sm.params.tracking_uri, sm.params.store)))


run_logged(sm.log[0], main, expected=(ValueError,))
