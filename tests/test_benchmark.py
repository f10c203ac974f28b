"""The benchmark command runs end to end on CPU with tiny sizes (a smoke test, not a timing test)."""

import json

import pytest

from lrstudy.tools import benchmark


def test_flops_match_the_published_compute_per_epoch():
    # DESIGN.md's anchor: 0.167 PFLOP to train one epoch (50k images, forward + backward) at width 64.
    assert benchmark.train_flops_per_image(64) * 50_000 == pytest.approx(0.167e15, rel=0.01)


def test_peak_lookup():
    assert benchmark.bf16_peak("NVIDIA H100 80GB HBM3") == 989.0
    assert benchmark.bf16_peak("NVIDIA H100 PCIe") == 756.0
    assert benchmark.bf16_peak("Intel Xeon") is None


@pytest.mark.system  # trains a few steps: make test, not the fast tier
def test_benchmark_smoke_on_cpu(archive, tmp_path):
    benchmark.main(
        [
            "--archive",
            str(archive),
            "--device",
            "cpu",
            "--width",
            "4",
            "--train-limit",
            "200",
            "--test-limit",
            "100",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--workers",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert [p["pipeline"].split(" ")[0] for p in result["pipelines"]] == ["published-style", "lrstudy"]
    for p in result["pipelines"]:
        assert p["epochs"] == 2 and p["s_per_epoch"] > 0 and p["train_images_per_s"] > 0
        assert p["share_of_bf16_peak"] is None  # no bf16 peak is claimed for a CPU
    assert "| published-style" in (tmp_path / "benchmark.md").read_text()


def test_modes_are_checked_and_cuda_modes_are_skipped_on_the_cpu(archive, tmp_path, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(["--archive", str(archive), "--modes", "eager,turbo", "--out", str(tmp_path)])
    assert "choose from published, eager, compile, graph, compile+graph" in capsys.readouterr().err
    small = ["--device", "cpu", "--width", "4", "--train-limit", "100", "--test-limit", "50", "--epochs", "1"]
    benchmark.main(["--archive", str(archive), *small, "--modes", "graph,eager", "--out", str(tmp_path)])
    assert "mode graph needs CUDA; skipped on cpu" in capsys.readouterr().out
    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert [p["mode"] for p in result["pipelines"]] == ["graph", "eager"]
    assert result["pipelines"][0]["skipped"] == "needs CUDA, this is a cpu"
    assert 0 <= result["pipelines"][1]["final_test_acc"] <= 1
    table = (tmp_path / "benchmark.md").read_text()
    assert "| lrstudy graph | skipped: needs CUDA, this is a cpu |" in table
    assert "One epoch per mode: no steady state" in table and "Accuracy after 1 epoch," in table


def test_a_failing_mode_is_recorded_and_the_others_still_run(archive, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(benchmark, "published_style_epochs", broken)
    small = ["--device", "cpu", "--width", "4", "--train-limit", "100", "--test-limit", "50", "--epochs", "1"]
    benchmark.main(["--archive", str(archive), *small, "--out", str(tmp_path)])
    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert result["pipelines"][0] == {
        "mode": "published",
        "pipeline": "published-style (DataLoader+PIL, 2 workers, fp32)",
        "error": "RuntimeError: CUDA error: an illegal memory access was encountered",
    }
    assert result["pipelines"][1]["mode"] == "eager" and result["pipelines"][1]["s_per_epoch"] > 0
    table = (tmp_path / "benchmark.md").read_text()
    assert "failed: RuntimeError: CUDA error" in table and "Speed-up" not in table
