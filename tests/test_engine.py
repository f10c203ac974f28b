"""The engine: seeded runs repeat exactly on CPU, and a resumed run ends where an uninterrupted one does."""

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from lrstudy.config import Execution, Recipe, execution_of, recipe_of, run_hash
from lrstudy.data import cifar10 as dataset
from lrstudy.schedule import step_lrs
from lrstudy.train import loop
from lrstudy.train.device import AUTO_CPU_LIMIT_S, DeviceError, cpu_seconds, refuse_auto_on_cpu, resolve_device
from lrstudy.train.engine import Trainer
from lrstudy.train.loop import DeviceData
from lrstudy.train.model import ResNet18
from lrstudy.train.run import RunFiles, RunSpec, execute, tensorboard_log
from lrstudy.train.steps import GraphedSteps

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cache(archive, tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    dataset.prepare(archive, d / "c.npz", d / "c.json", train_limit=200, test_limit=100)
    return d / "c.npz", d / "c.json"


def train_cfg(**over):
    defaults = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg = {**defaults["train"], **defaults["execution"]}
    # One thread: the fast tier must not depend on a second core being free.
    cfg.update({"epochs": 2, "batch_size": 64, "lr": 0.05, "width": 4, "device": "cpu", "cpu_threads": 1, **over})
    return cfg


def parts(**over) -> tuple[Recipe, Execution]:
    """The typed recipe and execution settings of train_cfg(**over)."""
    cfg = train_cfg(**over)
    return recipe_of(cfg, where="test"), execution_of(cfg)


def run(cache, out: Path, seed=0, checkpoint=None, board=None, trainer_log=None, **over):
    recipe, execution = parts(**over)
    spec = RunSpec(recipe, execution, seed, "v")
    files = RunFiles(out / "metrics.csv", out / "summary.json", out / "model.pt", checkpoint, board, trainer_log)
    return execute(spec, cache, files, on_epoch=tensorboard_log(spec, files))


def metrics_without_timing(path: Path) -> list[str]:
    return [",".join(line.split(",")[:-1]) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def fresh_two_epochs(cache, tmp_path_factory) -> list[str]:
    """Seed 0's uninterrupted 2-epoch run: the reference for the repeat, resume and fresh-start tests."""
    out = tmp_path_factory.mktemp("fresh")
    run(cache, out)
    return metrics_without_timing(out / "metrics.csv")


def test_same_seed_same_metrics_other_seed_differs(cache, tmp_path, fresh_two_epochs):
    run(cache, tmp_path / "again", seed=0)
    run(cache, tmp_path / "other", seed=1)
    assert metrics_without_timing(tmp_path / "again" / "metrics.csv") == fresh_two_epochs
    assert metrics_without_timing(tmp_path / "other" / "metrics.csv") != fresh_two_epochs
    assert fresh_two_epochs[0] == "epoch,lr,lr_last,train_loss,train_acc,test_loss,test_acc"
    assert len(fresh_two_epochs) == 3


def test_resumed_run_equals_uninterrupted(cache, tmp_path, fresh_two_epochs):
    npz, meta = cache
    data = DeviceData.from_arrays(dataset.load_cache(npz), torch.device("cpu"))
    ckpt = tmp_path / "ckpt.pt"

    class Stop(Exception):
        pass

    def stop_after_one(row):
        if row["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        Trainer(*parts(), 0, data, torch.device("cpu"), hash_of(cache, train_cfg(), 0)).run(
            ckpt, on_epoch=stop_after_one
        )
    assert ckpt.exists()
    summary = run(cache, tmp_path / "resumed", seed=0, checkpoint=ckpt)
    assert summary["resumed_from_epoch"] == 1
    assert metrics_without_timing(tmp_path / "resumed" / "metrics.csv") == fresh_two_epochs
    assert not ckpt.exists(), "a finished run removes its checkpoint, so that a forced rerun trains again"


def test_the_cuda_graph_path_computes_what_the_eager_path_does(cache):
    # GraphedSteps without capturing (the CPU has no CUDA graphs) runs its own arithmetic: static batch
    # buffers, the lr as a tensor refilled at every step, gradients zeroed in place, an eager remainder on
    # both train (200 % 64) and eval (100 % 64). Any of those done wrong changes the numbers; the capture
    # itself needs a GPU (tools/gpu/check.sh).
    npz, _ = cache
    cpu = torch.device("cpu")
    recipe, execution = parts(eval_batch_size=64, schedule={"name": "onecycle", "pct_start": 0.4}, lr_update="step")

    def metrics(graphed: bool) -> list[dict]:
        trainer = Trainer(recipe, execution, 2, DeviceData.from_arrays(dataset.load_cache(npz), cpu), cpu, "h")
        if graphed:
            trainer.steps = trainer.make_steps(graphs=True, capture=False)
            assert isinstance(trainer.steps, GraphedSteps)
        return [{k: v for k, v in m.items() if k != "epoch_seconds"} for m in trainer.run(None).metrics]

    eager, graphed = metrics(False), metrics(True)
    # The tensor lr is float32 (what SGD's float32 update rounds any lr to): lr_last, read back from it, is
    # the schedule's to float32 precision; everything the run computed is the same.
    assert [r.pop("lr_last") for r in graphed] == pytest.approx([r.pop("lr_last") for r in eager], rel=1e-7)
    assert graphed == eager and eager[0]["train_acc"] != eager[1]["train_acc"]


def test_every_optimizer_step_runs_at_the_schedules_lr(cache):
    """The lr the optimizer holds at each of its steps is lr_at's for that step (a warmup of fractional
    epochs, then one-cycle, advancing at every step), and metrics.csv's lr and lr_last are the first and
    the last of each epoch's."""
    npz, _ = cache
    cpu = torch.device("cpu")
    recipe, execution = parts(
        schedule={"name": "onecycle", "pct_start": 0.5}, warmup={"epochs": 0.5}, lr_update="step", epochs=2
    )
    trainer = Trainer(recipe, execution, 0, DeviceData.from_arrays(dataset.load_cache(npz), cpu), cpu, "h")
    seen = []
    trainer.optimizer.register_step_pre_hook(lambda opt, *_: seen.append(opt.param_groups[0]["lr"]))
    rows = trainer.run(None).metrics
    assert trainer.steps_per_epoch == 4 and seen == step_lrs(recipe, 4) and len(set(seen)) == 8
    assert [(r["lr"], r["lr_last"]) for r in rows] == [(seen[0], seen[3]), (seen[4], seen[7])]


# ATen ops that torch.use_deterministic_algorithms(True) refuses on CUDA (PyTorch's "Reproducibility"
# notes), by overload name; `execution.deterministic: true` would fail at the first step on a GPU.
CUDA_NONDETERMINISTIC = {
    "_adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_backward",
    "avg_pool3d_backward",
    "max_pool3d_with_indices_backward",
    "fractional_max_pool2d_backward",
    "max_unpool2d",
    "reflection_pad2d_backward",
    "replication_pad2d_backward",
    "upsample_bilinear2d_backward",
    "upsample_bicubic2d_backward",
    "nll_loss2d_forward",
    "index_add",
    "index_copy",
    "index_put",
    "scatter_add",
    "scatter_reduce",
    "put",
    "histc",
    "bincount",
    "kthvalue",
    "median",
    "grid_sampler_2d_backward",
    "embedding_dense_backward",
}


def test_an_epoch_uses_no_op_that_deterministic_cuda_refuses(cache):
    # The CPU runs the same ATen ops as CUDA here (adaptive pooling to 1x1 is a mean on both), so a
    # model or augmentation change that brings in such an op fails this test before it fails on a GPU.
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        ops: set = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    npz, _ = cache
    cpu = torch.device("cpu")
    trainer = Trainer(*parts(epochs=1), 0, DeviceData.from_arrays(dataset.load_cache(npz), cpu), cpu, "h")
    with Record() as record:
        trainer.run(None)
    assert {"convolution_backward", "native_batch_norm_backward", "nll_loss_forward"} <= record.ops
    assert not record.ops & CUDA_NONDETERMINISTIC


def test_checkpoint_of_another_config_is_not_resumed(cache, tmp_path, caplog):
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"config_hash": "something-else", "epoch": 1}, ckpt)
    summary = run(cache, tmp_path / "b", checkpoint=ckpt, epochs=2)
    assert summary["resumed_from_epoch"] == 0
    assert "not resuming" in caplog.text


def test_summary_fields(cache, tmp_path):
    s = run(cache, tmp_path / "a")
    assert s["epochs_completed"] == 2 and s["diverged"] is False
    assert 0 <= s["final_test_acc"] <= 1 and s["best_test_acc"] >= s["final_test_acc"]
    assert s["device"] == "cpu" and s["versions"]["torch"] == torch.__version__
    assert s["dataset"]["train_size"] == 200 and len(s["config_hash"]) == 16
    assert set(torch.load(tmp_path / "a" / "model.pt", weights_only=True)) >= {"fc.weight", "stem.0.weight"}


def test_a_cpu_run_says_and_records_that_compile_and_cuda_graph_were_ignored(cache, tmp_path, caplog):
    caplog.set_level("INFO")
    s = run(cache, tmp_path / "a", epochs=1, compile=True, cuda_graph=True)
    assert s["execution"]["compile"] and s["execution"]["cuda_graph"]  # what was asked
    assert s["execution"]["compile_used"] is False and s["execution"]["cuda_graph_used"] is False  # what ran
    assert "execution.compile and execution.cuda_graph apply on CUDA only; this CPU run is eager" in caplog.text


def test_cuda_without_cuda_says_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="execution.device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_auto_without_cuda_refuses_a_run_too_long_for_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    study, _ = parts(width=64, epochs=200)
    estimate = cpu_seconds(study, 50_000, 10_000, threads=2)
    assert estimate == pytest.approx(200 * (50_000 / 30 + 10_000 / 170))  # the README's 30 min per epoch
    assert cpu_seconds(parts(width=8, epochs=200)[0], 50_000, 10_000, threads=4) == pytest.approx(estimate / 64 / 2)
    with pytest.raises(
        DeviceError,
        match=r"(?s)'auto' but PyTorch sees no CUDA device \(torch .*build\).*"
        r"about 95.9 h on the CPU .*nvidia-smi.*CUDA_VISIBLE_DEVICES.*"
        r"CUDA build.*execution.device: cpu .* anyway",
    ):
        resolve_device("auto", estimate)
    assert resolve_device("auto", AUTO_CPU_LIMIT_S / 2).type == "cpu"
    assert resolve_device("cpu", estimate).type == "cpu"  # asked for explicitly: never refused


def test_auto_without_cuda_refuses_a_study_once_for_all_its_long_runs(monkeypatch):
    hour = 3600.0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runs = {"baseline seed 0": 5 * hour, "lr_x5 seed 0": 1 * hour, "lr_x5 seed 1": 10 * hour}
    with pytest.raises(
        DeviceError, match=r"'auto' but .*, and 2 runs still to train would take up to about 10.0 h each"
    ):
        refuse_auto_on_cpu("auto", runs)
    with pytest.raises(
        DeviceError, match=r"and the run baseline seed 0 would take about 5.0 h on the CPU .* run it on"
    ):
        refuse_auto_on_cpu("auto", {"baseline seed 0": 5 * hour, "lr_x5 seed 0": hour})
    refuse_auto_on_cpu("auto", {"lr_x5 seed 0": AUTO_CPU_LIMIT_S})  # not longer than the limit
    refuse_auto_on_cpu("auto", {})
    refuse_auto_on_cpu("cpu", runs)  # asked for explicitly: never refused
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    refuse_auto_on_cpu("auto", runs)


def test_auto_without_cuda_trains_a_short_run_on_the_cpu_and_refuses_a_long_one_first(
    cache, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run(cache, tmp_path / "short", epochs=1, device="auto")["device"] == "cpu"
    assert "training on the CPU (estimated about 1 min)" in caplog.text
    with pytest.raises(DeviceError, match="would take about .* h on the CPU"):
        run(cache, tmp_path / "long", device="auto", width=64, epochs=10_000)
    assert not (tmp_path / "long").exists()


def hash_of(cache, train: dict, seed: int) -> str:
    meta = dataset.load_meta(cache[1])
    return run_hash(
        recipe_of(train, where="test"),
        seed,
        {k: meta[k] for k in ("md5", "sha256", "train_size", "test_size")},
    )


@pytest.fixture(scope="module")
def one_epoch_state(cache) -> dict:
    """A real checkpoint of a 2-epoch run after its first epoch, as Trainer.run writes it."""
    train = train_cfg(epochs=2)
    data = DeviceData.from_arrays(dataset.load_cache(cache[0]), torch.device("cpu"))
    trainer = Trainer(*parts(epochs=2), 0, data, torch.device("cpu"), hash_of(cache, train, 0))
    row = loop.run_epoch(1, trainer.recipe, trainer.steps, trainer.sums, data, trainer.generator, 100)
    trainer.epoch = 1
    trainer.metrics = [{**row, "test_loss": 1.0, "test_acc": 0.5, "epoch_seconds": 1.0}]
    return trainer.state(1.0)


def test_the_intact_checkpoint_resumes(cache, tmp_path, one_epoch_state):
    """The one the broken checkpoints below are made from: each differs from it only where it is broken."""
    torch.save(one_epoch_state, tmp_path / "ckpt.pt")
    assert run(cache, tmp_path / "out", checkpoint=tmp_path / "ckpt.pt", epochs=2)["resumed_from_epoch"] == 1


def test_a_checkpoint_from_before_lr_last_resumes(cache, tmp_path, one_epoch_state):
    """A run interrupted before lr_last was recorded resumes, not restarts: its epochs ran at one lr each."""
    row = {k: v for k, v in one_epoch_state["metrics"][0].items() if k != "lr_last"}
    torch.save({**one_epoch_state, "metrics": [row]}, tmp_path / "ckpt.pt")
    assert run(cache, tmp_path / "out", checkpoint=tmp_path / "ckpt.pt", epochs=2)["resumed_from_epoch"] == 1
    first = (tmp_path / "out" / "metrics.csv").read_text().splitlines()[1].split(",")
    assert first[1] == first[2] == repr(row["lr"])


BROKEN_CHECKPOINTS = {
    "a bare tensor": (lambda good: torch.zeros(3), "holds a Tensor, not a checkpoint's dict"),
    "a list": (lambda good: [good], "holds a list, not a checkpoint's dict"),
    "no model": (lambda good: {k: v for k, v in good.items() if k != "model"}, "lacks model"),
    "a model of another width": (
        lambda good: {**good, "model": ResNet18(width=8).state_dict()},
        "does not fit this run \\(RuntimeError: Error\\(s\\) in loading state_dict",
    ),
    # Restored after the weights and the optimizer: those must be undone for the fresh start.
    "a generator state that does not fit": (
        lambda good: {**good, "generator": torch.zeros(3, dtype=torch.uint8)},
        "does not fit this run \\(RuntimeError",
    ),
    "metrics that are not rows": (
        lambda good: {**good, "metrics": ["0.5"]},
        "does not fit this run \\(ValueError: its metrics row 1 is not epoch 1",
    ),
    # Issue 20.5: values a metrics.csv would be refused for, and an execution setting not trusted blindly.
    "a NaN test accuracy in its metrics": (
        lambda good: {**good, "metrics": [{**good["metrics"][0], "test_acc": float("nan")}]},
        "does not fit this run \\(ValueError: its metrics row 1, column test_acc: nan is not a finite number",
    ),
    "more CPU threads than the machine runs": (
        lambda good: {**good, "cpu_threads": 9999},
        "does not fit this run \\(ValueError: it records 9999 CPU threads; this machine runs 1 to",
    ),
}


@pytest.mark.parametrize("kind", BROKEN_CHECKPOINTS)
def test_a_checkpoint_of_the_wrong_structure_is_a_fresh_start(
    cache, tmp_path, caplog, one_epoch_state, fresh_two_epochs, kind
):
    make, reason = BROKEN_CHECKPOINTS[kind]
    ckpt = tmp_path / "ckpt.pt"
    torch.save(make(one_epoch_state), ckpt)
    summary = run(cache, tmp_path / "out", checkpoint=ckpt, epochs=2)
    assert summary["resumed_from_epoch"] == 0
    assert re.search(f"checkpoint {re.escape(str(ckpt))} {reason}.*starting from epoch 1", caplog.text), caplog.text
    assert metrics_without_timing(tmp_path / "out" / "metrics.csv") == fresh_two_epochs


def test_epoch_lines_name_their_run_and_cpu_epochs_report_from_inside(cache, tmp_path, caplog, monkeypatch):
    from lrstudy.train.engine import EpochProgress

    ticks = iter(range(0, 10_000, 20))  # every batch "takes" 20 s: a line every other batch, every 30 s
    monkeypatch.setattr(EpochProgress, "clock", staticmethod(lambda: next(ticks)))
    with caplog.at_level("INFO", logger="lrstudy.train"):
        run(cache, tmp_path / "r", epochs=2, seed=2, batch_size=32)
    lines = [r.getMessage() for r in caplog.records]
    epoch_lines = [line for line in lines if re.match(r"\[v/seed2\] epoch \d/2  lr ", line)]
    assert len(epoch_lines) == 2
    inside = [line for line in lines if "left in this epoch" in line]
    # 200 images in batches of 32: 7 batches; the clock starts after the first, a line 40 s and 80 s later
    # (batches 3 and 5), none at the last batch (the epoch line follows).
    assert inside == [
        "[v/seed2] epoch 1/2: 96/200 images, 40 s, about 0:00:43 left in this epoch",
        "[v/seed2] epoch 1/2: 160/200 images, 80 s, about 0:00:20 left in this epoch",
        "[v/seed2] epoch 2/2: 96/200 images, 40 s, about 0:00:43 left in this epoch",
        "[v/seed2] epoch 2/2: 160/200 images, 80 s, about 0:00:20 left in this epoch",
    ]


def test_a_short_epoch_reports_nothing_from_inside(monkeypatch, caplog):
    from lrstudy.train.engine import EpochProgress

    clock = iter([0.0, 5.0, 10.0, 29.0])
    monkeypatch.setattr(EpochProgress, "clock", staticmethod(lambda: next(clock)))
    progress = EpochProgress("v/seed0", 3)
    with caplog.at_level("INFO", logger="lrstudy.train"):
        for done in (64, 128, 192, 256):
            progress(1, done, 256)
    assert caplog.records == []


def test_more_threads_than_the_job_has_cores_is_said():
    from lrstudy.train.run import oversubscribed

    assert oversubscribed(1, 1) is None and oversubscribed(2, 4) is None
    assert oversubscribed(2, 1).startswith("execution.cpu_threads is 2 but this job has 1 core (--cores)")


def test_the_default_is_one_thread_per_run():
    # Measured on a busy 2-core machine: 24-31 s an epoch with 1 thread, 155-185 s with 2; the train
    # rule's threads are cpu_threads, so with --cores N at most N runs of 1 thread train at once.
    assert train_cfg()["cpu_threads"] == 1
    rule = (REPO / "workflow/rules/train.smk").read_text()
    assert "threads: STUDY.execution.cpu_threads" in rule


def board(directory: Path):
    """A run's folder as TensorBoard's loader reads it (orphaned steps kept: a duplicate epoch would show)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), purge_orphaned_data=False)
    acc.Reload()
    return acc


def board_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar event in a run's folder, tag -> [(epoch, value)]."""
    acc = board(directory)
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def board_session(directory: Path) -> tuple[dict, int | None]:
    """The run's HPARAMS values (name -> number, text or flag) and its status (None: not written)."""
    from google.protobuf.json_format import MessageToDict
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = board(directory).PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    end = content.get("_hparams_/session_end_info")
    status = HParamsPluginData.FromString(end).session_end_info.status if end else None
    return MessageToDict(start)["hparams"], status


def test_tensorboard_scalars_are_float32_metrics_and_a_resume_neither_repeats_nor_skips(cache, tmp_path, monkeypatch):
    """Issue 32.1: float32, which TensorBoard's default loader reads (tests/test_tensorboard.py asks its
    server); the status is written when the run ends, not while it trains or after it was stopped."""
    import numpy as np
    from tensorboard.plugins.hparams.api_pb2 import STATUS_SUCCESS

    from lrstudy.train.tensorboard import FINAL_TAG, TAGS

    ckpt, folder = tmp_path / "c.pt", tmp_path / "tb" / "v" / "seed0"
    real_run = Trainer.run

    def killed_after_three(self, checkpoint_path=None, on_epoch=None, on_batch=None):
        def hook(row):
            on_epoch(row)  # epoch 3 reaches TensorBoard, but the last checkpoint is epoch 2's
            if row["epoch"] == 3:
                assert board_session(folder)[1] is None  # training: no status yet
                raise KeyboardInterrupt

        return real_run(self, checkpoint_path, on_epoch=hook, on_batch=on_batch)

    monkeypatch.setattr(Trainer, "run", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        run(cache, tmp_path / "r", checkpoint=ckpt, board=folder, checkpoint_every=2, epochs=4)
    assert [step for step, _ in board_scalars(folder)["lr"]] == [1, 2, 3]
    assert board_session(folder)[1] is None  # stopped: it resumes, so neither success nor failure
    monkeypatch.setattr(Trainer, "run", real_run)
    resumed = run(cache, tmp_path / "r", checkpoint=ckpt, board=folder, checkpoint_every=2, epochs=4)
    assert resumed["resumed_from_epoch"] == 2

    import pandas as pd

    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    scalars = board_scalars(folder)
    assert set(scalars) == {*TAGS, FINAL_TAG}
    for tag, column in TAGS.items():
        assert scalars[tag] == [
            (e, float(np.float32(v))) for e, v in zip(metrics["epoch"], metrics[column], strict=True)
        ], tag
    assert scalars[FINAL_TAG] == [(4, float(np.float32(resumed["final_test_acc"])))]
    assert board_session(folder)[1] == STATUS_SUCCESS
    assert [p.name for p in folder.iterdir()] == ["events.out.tfevents.lrstudy"]


def test_tensorboard_records_the_variant_recipe_and_windows_and_the_event_files_belong_to_the_run(cache, tmp_path):
    """Issues 32.1 and 29.4: a run retrained with execution.tensorboard off keeps no event files of its
    old recipe."""
    windows = [{"start": 1, "end": 2, "factor": 2.0}]
    run(cache, tmp_path / "on", seed=5, board=tmp_path / "tb", epochs=1, lr_windows=windows)
    hparams, _ = board_session(tmp_path / "tb")
    assert hparams["variant"] == "v" and hparams["seed"] == 5 and hparams["lr"] == 0.05
    assert hparams["schedule.name"] == "cosine" and hparams["schedule.eta_min"] == 0.0 and "warmup" not in hparams
    assert hparams["lr_update"] == "epoch" and hparams["lr_windows"] == json.dumps(windows)
    assert {k: v for k, v in hparams.items() if k.startswith("lr_window1.")} == {
        "lr_window1.start": 1,
        "lr_window1.end": 2,
        "lr_window1.factor": 2.0,
    }
    run(cache, tmp_path / "on", seed=5, board=tmp_path / "tb", epochs=1, tensorboard=False)
    assert not (tmp_path / "tb").exists()
