"""profiles/slurm end to end: a study shaped like the CPU demo (every rule, two variants x two seeds, at
test size) goes through sbatch on a one-node SLURM cluster that this module starts (tools/slurm/start.sh)
and always stops. Needs root and Debian's slurm-wlm + munge."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, Workflow, small_study

TOOLS = REPO / "tools/slurm"

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.system,
    pytest.mark.skipif(
        shutil.which("slurmctld") is None or shutil.which("munged") is None or os.geteuid() != 0,
        reason="needs root and SLURM + munge (apt-get install slurm-wlm munge) to start a test cluster",
    ),
]


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    """The environment for SLURM clients of a cluster that lives for this module: its SLURM_CONF, and
    its bin/ first on PATH (an srun that keeps SLURM_CONF: see tools/slurm/start.sh)."""
    cluster = tmp_path_factory.mktemp("slurm")
    try:
        start = subprocess.run([TOOLS / "start.sh", cluster], capture_output=True, text=True, timeout=120)
        assert start.returncode == 0, f"tools/slurm/start.sh failed:\n{start.stdout}\n{start.stderr}"
        yield {
            **os.environ,
            "SLURM_CONF": str(cluster / "etc/slurm.conf"),
            "PATH": f"{cluster / 'bin'}{os.pathsep}{os.environ['PATH']}",
        }
    finally:
        subprocess.run([TOOLS / "stop.sh", cluster], timeout=60)


def slurm_jobs(env) -> list[dict]:
    """Every job the controller knows (finished ones for MinJobAge, an hour here), as key -> value."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], env=env, capture_output=True, text=True, check=True).stdout
    return [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines() if line.strip()]


def test_study_runs_through_sbatch(slurm_env, archive, tmp_path):
    wf = Workflow(tmp_path / "wf")
    # device auto makes train request a GPU: the --gpus=1 path, on the node's placeholder GPU.
    study = wf.write_config(small_study(archive, device="auto"))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "profiles/slurm",
        "--configfile",
        str(study),
        # no slurmdbd here, so no sacct: squeue sees jobs for MinJobAge after they end
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
    ]
    proc = subprocess.run(cmd, cwd=wf.root, env=slurm_env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        job_logs = "".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(wf.root.glob("logs/slurm/**/*.log")))
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stderr[-8000:]}\nSLURM job logs:\n{job_logs}")
    assert "data:image/png;base64," in (wf.root / "report.html").read_text()

    jobs = [j for j in slurm_jobs(slurm_env) if j.get("WorkDir") == str(wf.root)]
    assert jobs and all(j["JobState"] == "COMPLETED" and j["JobName"].startswith("lrstudy_") for j in jobs)
    by_rule = {}
    for j in jobs:
        by_rule.setdefault(j["Comment"].removeprefix("rule_").split("_wildcards_")[0], []).append(j)
    # download, aggregate, figures and report are localrules: they run beside Snakemake, not via sbatch.
    assert {r: len(js) for r, js in by_rule.items()} == {"prepare_data": 1, "train": 4}
    for j in by_rule["train"]:
        assert j["Partition"] == "gpu" and "gres:gpu:1" in j.get("TresPerJob", ""), j
        variant, seed = j["Comment"].split("_wildcards_")[1].rsplit("_", 1)
        assert (wf.root / f"logs/slurm/rule_train/{variant}_{seed}/{j['JobId']}.log").is_file()
        # SLURM's GPU is used as given (no lease lock); with no CUDA here, 'auto' then trains on the CPU.
        run_log = (wf.root / f"logs/train/{variant}/seed{seed}.log").read_text()
        assert f"GPU 0 assigned by SLURM job {j['JobId']}" in run_log and " on cpu " in run_log
    assert not (wf.root / ".locks").exists()
    assert all(j["Partition"] == "cpu" for rule, js in by_rule.items() if rule != "train" for j in js)
