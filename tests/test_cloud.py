"""Beyond one machine, on Snakemake's own plugins, against a real S3 server on loopback (moto; issue 35):
each cloud profile plans the default study with its executor plugin installed, every file of the study in
the bucket and the workflow's own files read where the workflow is."""

from __future__ import annotations

import pytest
from conftest import Workflow, job_counts
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


@pytest.mark.parametrize("profile", sorted(GPU_RESOURCES))
def test_each_cloud_profile_plans_the_default_study_in_its_bucket(project, s3, profile):
    """`snakemake -n --profile profiles/<executor>`, the profile's bucket replaced by the local server's:
    the whole default study, report included (its template and captions are not looked for in the
    bucket), the training jobs with the plugin's GPU resources; a plan writes nothing to the bucket."""
    proc = project.snakemake("-n", "--profile", f"profiles/{profile}", *s3.storage_args(profile), cores=False)
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
