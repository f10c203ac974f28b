"""GPU leases on simulated devices: holders are real processes, so a lock is what the kernel says it is."""

import os
import selectors
import signal
import subprocess
import sys

import pytest
import torch

from lrstudy.train.gpu_lease import gpu_lease, visible_devices

# Takes a lease (on the devices given, else on CUDA_VISIBLE_DEVICES), reports
# "<device> <CUDA_VISIBLE_DEVICES>", and holds the lease until its stdin closes.
HOLDER = """
import os, sys
from lrstudy.train.gpu_lease import gpu_lease
slots = int(os.environ.get("TEST_RUNS_PER_GPU", "1"))
wanted = sys.argv[2] if len(sys.argv) > 2 else None
with gpu_lease(sys.argv[1], wanted, poll_seconds=0.05, runs_per_gpu=slots) as device:
    print(device, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holders(tmp_path):
    """start(visible) -> a holder process; every holder is ended after the test."""
    procs = []

    def start(visible=None, env=()):
        env = {**{k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}, **dict(env)}
        args = [str(tmp_path / "locks")] + ([visible] if visible is not None else [])
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, *args], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def leased(proc, timeout=20.0):
    """The device a holder reports, or None if it reports nothing within `timeout` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return None
    device, visible = proc.stdout.readline().split()
    assert visible == device, "the holder sees only its own device"
    return device


def release(proc):
    proc.stdin.close()
    assert proc.wait(timeout=20) == 0


def test_holders_get_different_devices(holders):
    a, b = holders("0,1"), holders("0,1")
    assert {leased(a), leased(b)} == {"0", "1"}


def test_a_third_holder_waits_for_a_free_device(holders):
    a, b = holders("0,1"), holders("0,1")
    first, _ = leased(a), leased(b)
    c = holders("0,1")
    assert leased(c, timeout=1.0) is None, "both devices are held: the third must wait"
    release(a)
    assert leased(c) == first


def test_a_sigkilled_holders_device_is_reclaimed(holders, tmp_path):
    a = holders("0")
    assert leased(a) == "0"
    b = holders("0")
    assert leased(b, timeout=1.0) is None
    a.send_signal(signal.SIGKILL)
    a.wait()
    assert leased(b) == "0"
    assert f"pid {b.pid} " in (tmp_path / "locks/gpu0.lock").read_text()


def test_an_existing_cuda_visible_devices_is_honoured(holders, tmp_path):
    a, b = holders(env={"CUDA_VISIBLE_DEVICES": "3,5"}), holders(env={"CUDA_VISIBLE_DEVICES": "3,5"})
    assert {leased(a), leased(b)} == {"3", "5"}
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == ["gpu3.lock", "gpu5.lock"]


def test_the_previous_cuda_visible_devices_is_restored(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with gpu_lease(tmp_path) as device:
        assert device == "3" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"


def test_released_on_exception(tmp_path, holders):
    with pytest.raises(RuntimeError):
        with gpu_lease(tmp_path / "locks", "0"):
            raise RuntimeError("training failed")
    assert leased(holders("0"), timeout=5.0) == "0"
    assert (tmp_path / "locks/gpu0.lock").read_text().startswith("pid ")


@pytest.mark.parametrize("visible", ["", "-1"])
def test_no_visible_device_leases_nothing(tmp_path, monkeypatch, visible):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with gpu_lease(tmp_path / "locks") as device:
        assert device is None and os.environ["CUDA_VISIBLE_DEVICES"] == visible
    assert not (tmp_path / "locks").exists()


@pytest.mark.system  # torch.cuda.device_count() probes the driver for seconds on a machine without one
def test_unset_cuda_visible_devices_counts_what_torch_sees(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_devices() == [str(i) for i in range(torch.cuda.device_count())]


def test_slurm_assigned_gpu_is_used_without_a_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with gpu_lease(tmp_path / "locks", "0") as device:
        assert device == "0" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert not (tmp_path / "locks").exists()


def test_runs_per_gpu_shares_a_device_and_spreads_first(holders):
    slots = {"TEST_RUNS_PER_GPU": "2"}
    a, b = holders("0,1", env=slots), holders("0,1", env=slots)
    assert {leased(a), leased(b)} == {"0", "1"}, "one run per device before any device gets a second"
    c, d = holders("0,1", env=slots), holders("0,1", env=slots)
    assert {leased(c), leased(d)} == {"0", "1"}
    e = holders("0,1", env=slots)
    assert leased(e, timeout=1.0) is None, "two runs on each of two devices: the fifth waits"
    release(c)
    assert leased(e) in {"0", "1"}
