"""Beyond one machine, on Snakemake's own plugins, against a real S3 server on loopback (moto; issue 35):
each cloud profile plans the default study with its executor plugin installed, every file of the study in
the bucket and the workflow's own files read where the workflow is."""

from __future__ import annotations

import concurrent.futures
import io
import json
import shutil

import pytest
from conftest import Workflow, job_counts, small_study
from s3_server import BUCKET

pytestmark = [pytest.mark.system, pytest.mark.workflow]

# Each plugin's own name for what a training job needs: a GPU of the node, an accelerator of the VM.
GPU_RESOURCES = {
    "kubernetes": ["gpu=1", "gpu_manufacturer=nvidia"],
    "googlebatch": ["nvidia_gpu=nvidia-l4", "googlebatch_machine_type=g2-standard-8", "googlebatch_container="],
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Workflow:
    return Workflow(tmp_path_factory.mktemp("cloud") / "wf")


def test_each_cloud_profile_plans_the_default_study_in_its_bucket(project, s3):
    """`snakemake -n --profile profiles/<executor>`, the profile's bucket replaced by the local server's:
    the whole default study, report included (its template and captions are not looked for in the
    bucket), the training jobs with the plugin's GPU resources; a plan writes nothing to the bucket. The two
    dry runs side by side: each mostly waits for its imports."""
    with concurrent.futures.ThreadPoolExecutor() as pool:
        plans = pool.map(
            lambda p: (p, project.snakemake("-n", "--profile", f"profiles/{p}", *s3.storage_args(p), cores=False)),
            sorted(GPU_RESOURCES),
        )
    for profile, proc in plans:
        out = proc.stdout + proc.stderr
        counts = job_counts(proc.stdout)
        assert counts["train"] == 12 and counts["report"] == 1 and counts["prepare_data"] == 1, out
        train = out.split("\nrule train:\n", 1)[1].split("\n\n", 1)[0]
        assert all(name in train for name in GPU_RESOURCES[profile]), train
        assert f"s3://{BUCKET}/{profile}/results/runs/" in train
        planned = [line for line in out.splitlines() if line.strip().startswith(("output:", "input:"))]
        assert planned and all(f"s3://{BUCKET}/{profile}/" in line for line in planned if "s3://" in line)
        report = out.split("\nrule report:\n", 1)[1].split("\n\n", 1)[0]
        assert "report/templates/report.html.j2" in report and f"s3://{BUCKET}/{profile}/report/" not in report
    assert s3.objects() == {}


def test_apptainer_without_images_is_refused_with_the_keys_named(project):
    proc = project.snakemake("-n", "--software-deployment-method", "apptainer", check=False)
    assert proc.returncode != 0
    assert "needs the jobs' images, but containers.train and containers.analysis are null" in proc.stdout + proc.stderr


def stored_epoch(s3, key) -> int:
    """The epoch of the checkpoint stored at `key` (0: none yet)."""
    import torch

    if key not in s3.objects(key):
        return 0
    return int(torch.load(io.BytesIO(s3.read(key)), map_location="cpu", weights_only=True)["epoch"])


def test_a_run_lost_with_its_node_resumes_elsewhere_from_the_bucket(tmp_path, archive, s3):
    """Two named studies of the same runs on one prefix (issue 35.2, 35.3): `resumed` is killed mid-run
    (SIGKILL to Snakemake and its job, as a lost node), every local file is deleted, and on another machine
    (a fresh folder) `snakemake --config study=resumed` alone, reading the study's config from the bucket,
    resumes the run from its last stored checkpoint, past epoch 1, to the numbers of `uninterrupted`. Every
    object of each study is under its name; the finished run leaves no checkpoint in the bucket."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd
    import torch

    study = small_study(archive, epochs=6, checkpoint_every=1)
    study.update(variants={"baseline": {}}, seeds=[0])
    study["dataset"].update(train_limit=500, test_limit=100)
    storage = s3.storage_args("lab")
    target = "results/runs/baseline/seed0/summary.json"
    checkpoint = "lab/studies/resumed/results/checkpoints/baseline/seed0.pt"

    def start(name: str) -> tuple[Workflow, subprocess.Popen]:
        wf = Workflow(tmp_path / name)
        cfg = wf.write_config({"study": name, **study})
        cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", str(cfg), *storage, "--", target]
        return wf, subprocess.Popen(
            cmd, cwd=wf.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    reference, uninterrupted = start("uninterrupted")
    node, killed = start("resumed")
    try:
        deadline = time.monotonic() + 600
        while stored_epoch(s3, checkpoint) < 2:
            assert killed.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint reached the bucket"
            time.sleep(0.2)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)  # the node is gone, with Snakemake and its training job
        killed.wait()
    killed_at = stored_epoch(s3, checkpoint)
    assert 2 <= killed_at < 6
    shutil.rmtree(node.root)  # nothing local is left: the study's config, the data, the checkpoint
    assert uninterrupted.wait(timeout=600) == 0

    other = Workflow(tmp_path / "another-node")
    other.snakemake("--config", "study=resumed", *storage, "--", target)
    assert "Nothing to be done" in other.snakemake("-n", "--config", "study=resumed", *storage, "--", target).stdout

    def run_file(name: str, study_name: str) -> bytes:
        return s3.read(f"lab/studies/{study_name}/results/runs/baseline/seed0/{name}")

    summary = json.loads(run_file("summary.json", "resumed"))
    assert summary["resumed_from_epoch"] >= killed_at >= 2
    trainer_log = s3.read("lab/studies/resumed/logs/train/baseline/seed0.trainer.log").decode()
    assert "resumed from" in trainer_log and trainer_log.count("run baseline seed 0 on cpu") == 2
    ours, theirs = (pd.read_csv(io.BytesIO(run_file("metrics.csv", s))) for s in ("resumed", "uninterrupted"))
    pd.testing.assert_frame_equal(ours.drop(columns="epoch_seconds"), theirs.drop(columns="epoch_seconds"))
    models = [torch.load(io.BytesIO(run_file("model.pt", s)), weights_only=True) for s in ("resumed", "uninterrupted")]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[1])
    objects = s3.objects("lab/")
    assert all(k.startswith(("lab/studies/resumed/", "lab/studies/uninterrupted/")) for k in objects), objects
    assert checkpoint not in objects and "lab/studies/resumed/study.yaml" in objects
    assert reference.root.exists()
