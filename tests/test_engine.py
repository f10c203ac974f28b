"""The engine: seeded runs repeat exactly on CPU, and a resumed run ends where an uninterrupted one does."""

from pathlib import Path

import pytest
import torch
import yaml

from lrstudy import dataset
from lrstudy.config import config_hash
from lrstudy.engine import AUTO_CPU_LIMIT_S, DeviceData, DeviceError, Trainer, cpu_seconds, resolve_device
from lrstudy.run import execute

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cache(archive, tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    dataset.prepare(archive, d / "c.npz", d / "c.json", train_limit=500, test_limit=200)
    return d / "c.npz", d / "c.json"


def train_cfg(**over):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())["train"]
    cfg.update({"epochs": 4, "batch_size": 64, "lr": 0.05, "width": 4, "device": "cpu", **over})
    return cfg


def run(cache, out: Path, seed=0, checkpoint=None, **over):
    npz, meta = cache
    return execute(train=train_cfg(**over), seed=seed, variant="v", data_npz=npz, data_meta=meta,
                   metrics_out=out / "metrics.csv", summary_out=out / "summary.json", model_out=out / "model.pt",
                   checkpoint_path=checkpoint)


def metrics_without_timing(path: Path) -> list[str]:
    return [",".join(line.split(",")[:-1]) for line in path.read_text().splitlines()]


def test_same_seed_same_metrics_other_seed_differs(cache, tmp_path):
    run(cache, tmp_path / "a", seed=3)
    run(cache, tmp_path / "b", seed=3)
    run(cache, tmp_path / "c", seed=4)
    a = metrics_without_timing(tmp_path / "a" / "metrics.csv")
    assert a == metrics_without_timing(tmp_path / "b" / "metrics.csv")
    assert a != metrics_without_timing(tmp_path / "c" / "metrics.csv")
    assert a[0] == "epoch,lr,train_loss,train_acc,test_loss,test_acc" and len(a) == 5


def test_resumed_run_equals_uninterrupted(cache, tmp_path):
    run(cache, tmp_path / "full", seed=1)
    npz, meta = cache
    data = DeviceData.from_arrays(dataset.load_cache(npz), torch.device("cpu"))
    ckpt = tmp_path / "ckpt.pt"

    class Stop(Exception):
        pass

    def stop_after_two(rows, _epochs):
        if rows[-1]["epoch"] == 2:
            raise Stop

    h = config_hash(train_cfg(), 1, {k: dataset.load_meta(meta)[k] for k in ("md5", "sha256", "train_size", "test_size")})
    with pytest.raises(Stop):
        Trainer(train_cfg(), 1, data, torch.device("cpu"), h).run(ckpt, on_epoch=stop_after_two)
    assert ckpt.exists()
    summary = run(cache, tmp_path / "resumed", seed=1, checkpoint=ckpt)
    assert summary["resumed_from_epoch"] == 2
    assert metrics_without_timing(tmp_path / "resumed" / "metrics.csv") == metrics_without_timing(
        tmp_path / "full" / "metrics.csv")
    assert not ckpt.exists(), "a finished run removes its checkpoint, so that a forced rerun trains again"


def test_checkpoint_of_another_config_is_not_resumed(cache, tmp_path, caplog):
    ckpt = tmp_path / "ckpt.pt"
    run(cache, tmp_path / "a", checkpoint=None, epochs=2)
    torch.save({"config_hash": "something-else", "epoch": 1}, ckpt)
    summary = run(cache, tmp_path / "b", checkpoint=ckpt, epochs=2)
    assert summary["resumed_from_epoch"] == 0
    assert "not resuming" in caplog.text


def test_summary_fields(cache, tmp_path):
    s = run(cache, tmp_path / "a", epochs=3)
    assert s["epochs_completed"] == 3 and s["diverged"] is False
    assert 0 <= s["final_test_acc"] <= 1 and s["best_test_acc"] >= s["final_test_acc"]
    assert s["device"] == "cpu" and s["versions"]["torch"] == torch.__version__
    assert s["dataset"]["train_size"] == 500 and len(s["config_hash"]) == 16
    assert set(torch.load(tmp_path / "a" / "model.pt", weights_only=True)) >= {"fc.weight", "stem.0.weight"}


def test_cuda_without_cuda_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="train.device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_auto_without_cuda_refuses_a_run_too_long_for_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    study = train_cfg(width=64, epochs=200)
    estimate = cpu_seconds(study, 50_000, 10_000, threads=2)
    assert estimate == pytest.approx(200 * (50_000 / 30 + 10_000 / 170))  # the README's 30 min per epoch
    assert cpu_seconds(dict(study, width=8), 50_000, 10_000, threads=4) == pytest.approx(estimate / 64 / 2)
    with pytest.raises(DeviceError, match=r"(?s)'auto' but PyTorch sees no CUDA device \(torch .*build\).*"
                                          r"about 95.9 h on the CPU .*nvidia-smi.*CUDA_VISIBLE_DEVICES.*"
                                          r"CUDA build.*train.device: cpu .* anyway"):
        resolve_device("auto", estimate)
    assert resolve_device("auto", AUTO_CPU_LIMIT_S / 2).type == "cpu"
    assert resolve_device("cpu", estimate).type == "cpu"  # asked for explicitly: never refused


def test_auto_without_cuda_trains_a_short_run_on_the_cpu_and_refuses_a_long_one_first(cache, tmp_path, monkeypatch,
                                                                                       caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run(cache, tmp_path / "short", epochs=1, device="auto")["device"] == "cpu"
    assert "training on the CPU (estimated about 1 min)" in caplog.text
    with pytest.raises(DeviceError, match="would take about .* h on the CPU"):
        run(cache, tmp_path / "long", device="auto", width=64, epochs=10_000)
    assert not (tmp_path / "long").exists()
