"""tools/lr_cost.py, the measurement behind docs/configuration.md's figure for the per-step lr's cost: it
times the lr of a whole epoch's steps and the train step, here at width 4 so that it runs in seconds."""

import importlib.util

from conftest import REPO

spec = importlib.util.spec_from_file_location("lr_cost", REPO / "tools" / "lr_cost.py")
lr_cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lr_cost)


def test_the_per_step_lr_is_far_below_one_percent_of_an_epoch():
    result = lr_cost.main(["--width", "4", "--batch-size", "64", "--timed-steps", "2", "--repeats", "3", "--json"])
    assert result["steps_per_epoch"] == 782 and result["epoch_s"] == result["step_s"] * 782
    assert 0 < result["lr_pct_of_epoch"] < 1, result
