"""A run's files are checked before the analysis believes them (issue 20.5): hand-edited or corrupted
metrics are refused, naming the file, row and column."""

import hashlib
import json

import pytest
from synthetic_runs import write_run

from lrstudy.analysis import aggregate as ag
from lrstudy.validation import read_run


def edit_cell(metrics, row: int, column: str, value: str) -> None:
    lines = metrics.read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    cells = lines[row].rstrip("\n").split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells) + "\n"
    metrics.write_text("".join(lines))


@pytest.mark.parametrize(
    "column, value, why",
    [
        ("test_acc", "nan", "nan is not a finite number"),
        ("train_loss", "inf", "inf is not a finite number"),
        ("train_acc", "1.7", r"1.7 is out of range \(must be in \[0, 1\]\)"),
        ("epoch_seconds", "-5", r"-5.0 is out of range \(must be >= 0\)"),
        ("test_loss", "-0.1", r"-0.1 is out of range \(must be >= 0\)"),
        ("lr", "0.123", r"0.123 is not the recipe's schedule at epoch 3's first step \(0.0"),
        ("lr_last", "0.123", r"0.123 is not the recipe's schedule at epoch 3's last step \(0.0"),
    ],
)
def test_a_bad_value_is_named_by_file_row_and_column(tmp_path, column, value, why):
    run = write_run(tmp_path, "lr_x5", 0, 0.95)
    edit_cell(run / "metrics.csv", 3, column, value)
    with pytest.raises(ValueError, match=f"{run / 'metrics.csv'}: row 3 \\(line 4\\), column {column}: {why}"):
        ag.aggregate([run], ["lr_x5"])


def test_the_lr_of_a_window_epoch_is_checked_against_the_window(tmp_path):
    run = write_run(tmp_path, "lr_x5", 0, 0.95)  # window epochs 4..7 at x5
    base = write_run(tmp_path, "baseline", 0, 0.95)
    base_lr = (base / "metrics.csv").read_text().splitlines()[5].split(",")[1]
    edit_cell(run / "metrics.csv", 5, "lr", base_lr)  # epoch 5 without its window
    with pytest.raises(ValueError, match="row 5 \\(line 6\\), column lr: .* is not the recipe's schedule at epoch 5"):
        read_run(run)


def test_a_changed_value_in_range_is_refused_by_the_recorded_digest(tmp_path):
    run = write_run(tmp_path, "baseline", 0, 0.95)
    summary = json.loads((run / "summary.json").read_text())
    summary["metrics_sha256"] = hashlib.sha256((run / "metrics.csv").read_bytes()).hexdigest()
    (run / "summary.json").write_text(json.dumps(summary))
    read_run(run)  # as written
    edit_cell(run / "metrics.csv", 2, "train_loss", "0.5")
    with pytest.raises(ValueError, match="metrics.csv was changed after its run wrote it"):
        read_run(run)


def test_a_diverged_runs_last_loss_may_be_nan_or_inf(tmp_path):
    run = write_run(tmp_path, "lr_x5", 1, 0.95, diverged_epoch=5)
    summary, metrics = read_run(run)
    assert summary["diverged"] and len(metrics) == 5
    edit_cell(run / "metrics.csv", 4, "test_loss", "inf")  # an epoch before the divergence
    with pytest.raises(ValueError, match="row 4 \\(line 5\\), column test_loss: inf is not a finite number"):
        read_run(run)
