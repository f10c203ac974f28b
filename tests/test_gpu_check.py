"""tools/gpu/check.py, the GPU measurements script: how it picks the mode for the 200-epoch run, how it
compares runs, and that a call cut short by its deadline still leaves a README that says what is missing.
The whole script is rehearsed on the CPU with `DRY=1 bash tools/gpu/check.sh` (about 3 minutes, too long
for CI's budget); these parts run in seconds."""

import importlib.util
import json
import sys

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("gpu_check", REPO / "tools" / "gpu" / "check.py")
check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = check  # dataclasses look their module up while the class is made
spec.loader.exec_module(check)


def bench(**rows) -> dict:
    """Benchmark rows by mode: (s/epoch, final test accuracy) or an error message."""
    pipelines = [{"mode": "published", "s_per_epoch": 8.0}]
    for mode, row in rows.items():
        mode = mode.replace("_", "+")
        if isinstance(row, str):
            pipelines.append({"mode": mode, "error": row})
        else:
            pipelines.append({"mode": mode, "s_per_epoch": row[0], "final_test_acc": row[1]})
    return {"pipelines": pipelines}


@pytest.fixture
def checker(tmp_path):
    class Args:
        out, project, budget_s, dry, archive = tmp_path, tmp_path, 60.0, False, tmp_path / "a.tar.gz"

    c = check.Check.__new__(check.Check)
    c.args, c.plan, c.dir = Args, check.FULL, tmp_path
    return c


def test_the_fastest_mode_that_trains_like_eager_and_matches_it_is_chosen(checker):
    rows = bench(eager=(2.3, 0.60), compile=(0.9, 0.61), graph=(0.7, 0.59), compile_graph=(0.4, 0.10))
    choice = checker.choose(rows, {"graph_equals_eager_deterministic": True})
    assert choice["mode"] == "graph" and choice["cuda_graph"] and not choice["compile"]
    assert "test accuracy 0.1000, eager 0.6000" in choice["rejected"]["compile+graph"]
    assert json.loads((checker.dir / "choice.json").read_text())["mode"] == "graph"


def test_graph_modes_are_out_when_they_compute_otherwise_than_eager(checker):
    rows = bench(eager=(2.3, 0.60), compile=(0.9, 0.61), graph=(0.7, 0.59), compile_graph="RuntimeError: capture")
    choice = checker.choose(rows, {"graph_equals_eager_deterministic": False})
    assert choice["mode"] == "compile"
    assert choice["rejected"]["compile+graph"] == "RuntimeError: capture"
    assert "differ from the eager path's" in choice["rejected"]["graph"]


def test_without_a_benchmark_the_run_falls_back_to_eager(checker):
    choice = checker.choose(None, {"graph_equals_eager_deterministic": None})
    assert choice["mode"] == "eager" and choice["s_per_epoch"] is None and choice["passed"] == []


def test_runs_compare_apart_from_timing():
    a = [
        {
            "epoch": 1,
            "lr": 0.1,
            "train_loss": 2.0,
            "train_acc": 0.3,
            "test_loss": 1.9,
            "test_acc": 0.35,
            "epoch_seconds": 1,
        }
    ]
    b = [dict(a[0], epoch_seconds=2)]
    c = [dict(a[0], test_acc=0.38)]
    assert check.same(a, b) is True and check.same(a, c) is False and check.same(a, []) is None
    assert check.max_abs_diff(a, c)["test_acc"] == pytest.approx(0.03) and check.max_abs_diff(a, b)["train_loss"] == 0


def test_packing_counts_steady_epochs_of_every_run():
    runs = [[{"epoch_seconds": 9.0}, {"epoch_seconds": 1.0}, {"epoch_seconds": 1.0}]] * 2
    row = check.packing_row(2, runs, 30.0, "two")
    assert row["steady_s_per_epoch_each"] == 1.0 and row["run_epochs_per_s"] == 2.0 and row["complete"]
    assert check.packing_row(3, runs, 30.0, "one missing")["run_epochs_per_s"] is None


def test_card_folder_names():
    assert check.slug("NVIDIA H200") == "h200"
    assert check.slug("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"


def test_a_call_out_of_time_skips_every_step_and_says_so(archive, workflow, tmp_path, capsys):
    out = tmp_path / "out"
    rc = check.main(
        ["--archive", str(archive), "--out", str(out), "--project", str(workflow.root), "--dry", "--budget-s", "0"]
        + ["--scratch", str(tmp_path / "scratch")]
    )
    assert rc == 1
    [folder] = (out / "measurements").iterdir()
    steps = json.loads((folder / "steps.json").read_text())
    assert {s["status"] for s in steps} == {"skipped: out of time"} and len(steps) == 9
    readme = (folder / "README.md").read_text()
    assert "The benchmark did not finish" in readme and "The run did not finish" in readme
    assert "a CPU rehearsal: not GPU evidence" in readme and "no goal applies" in readme
    graph = "the graph path against the eager path, deterministic kernels, lr changed at every step"
    assert f"{graph}: identical: **not measured**" in readme
    assert "check: seed-recipe: skipped: out of time" in capsys.readouterr().err


def test_goals_are_judged_on_this_calls_figures_only():
    bench_rows = bench(eager=(2.3, 0.60), graph=(0.5, 0.59))
    choice = {"mode": "graph", "s_per_epoch": 0.5}
    packing = {"k": {"1": {"run_epochs_per_s": 2.0}, "2": {"run_epochs_per_s": 2.5}}}
    result = check.goals(choice, bench_rows, {"final_test_acc": 0.9512}, packing)
    assert [met for *_, met in result] == [True, True, True, True]
    assert result[1][1] == "16.0x" and result[2][1] == "95.12%" and result[3][1].startswith("16.0 min")
    nothing = check.goals({"mode": "eager"}, None, None, {"k": {}})
    assert [met for *_, met in nothing] == [None] * 4


def test_a_missing_archive_is_refused_before_anything_is_emptied(tmp_path, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "kept").write_text("a previous call's files")
    with pytest.raises(SystemExit):
        check.main(["--archive", str(tmp_path / "nope.tar.gz"), "--out", str(tmp_path), "--scratch", str(scratch)])
    assert "nope.tar.gz: no such file (ARCHIVE= for check.sh)" in capsys.readouterr().err
    assert (scratch / "kept").exists() and not (tmp_path / "measurements").exists()
