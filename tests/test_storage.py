"""A study's storage, without a server (the S3 runs are tests/test_cloud.py): where a study's objects go, how
a job learns of them, and the stored run state's place among a run's epoch logs."""

from __future__ import annotations

import pytest

from lrstudy.storage import STORAGE_ENV, StudyStorage
from lrstudy.train.run import EpochLogs

BASE = {"plugin": "s3", "prefix": "s3://bucket/lab/", "settings": {"endpoint_url": "http://x"}, "local_prefix": ".s"}


@pytest.mark.parametrize(
    "prefix, study_dir, expected",
    [
        ("s3://bucket/lab/", ".", "s3://bucket/lab"),
        ("s3://bucket/lab", "studies/demo", "s3://bucket/lab/studies/demo"),
        # a job's own Snakemake is given the study's prefix by the main one: it stays as it is
        ("s3://bucket/lab/studies/demo", "studies/demo", "s3://bucket/lab/studies/demo"),
        ("s3://bucket/lab/studies/demo", "studies/other", "s3://bucket/lab/studies/demo/studies/other"),
    ],
)
def test_a_named_study_lives_under_its_name(prefix, study_dir, expected):
    storage = StudyStorage.of_study(**{**BASE, "prefix": prefix}, study_dir=study_dir)
    assert storage.prefix == expected
    assert storage.query("results/runs/a/seed0/../seed0/metrics.csv") == f"{expected}/results/runs/a/seed0/metrics.csv"


def test_a_job_gets_the_study_storage_from_its_environment():
    storage = StudyStorage.of_study(**BASE, study_dir="studies/demo")
    assert StudyStorage.from_env({STORAGE_ENV: storage.to_env()}) == storage
    assert StudyStorage.from_env({}) is None


class Recorder:
    def __init__(self, name, seen):
        self.name, self.seen = name, seen

    def __enter__(self):
        self.seen.append(("enter", self.name))
        return self

    def __exit__(self, failed, *_):
        self.seen.append(("exit", self.name, failed))

    def __call__(self, metrics):
        self.seen.append(("epoch", self.name, len(metrics)))


def test_epoch_logs_enter_in_order_exit_in_reverse_and_each_sees_a_failure():
    seen = []
    logs = EpochLogs(Recorder("tensorboard", seen), None, Recorder("stored", seen))
    with pytest.raises(MemoryError), logs:
        logs([{}])
        raise MemoryError
    assert seen == [
        ("enter", "tensorboard"),
        ("enter", "stored"),
        ("epoch", "tensorboard", 1),
        ("epoch", "stored", 1),
        ("exit", "stored", MemoryError),
        ("exit", "tensorboard", MemoryError),
    ]
