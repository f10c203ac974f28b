import math

import pytest
import torch

from lrstudy.config import defaults, recipe_of
from lrstudy.schedule import base_lr, lr_for_epoch, lr_table


def recipe(**keys):
    """config.yaml's recipe (lr 0.1 cosine over 200 epochs) with `keys` changed."""
    return recipe_of({**defaults()["train"], "lr": 0.1, "epochs": 200, "schedule": "cosine", **keys}, where="test")


BASE = recipe()


def torch_lrs(scheduler_factory, epochs, lr=0.1):
    """The lr each epoch uses when a PyTorch scheduler is stepped once per epoch, as the published run did."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = scheduler_factory(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_matches_cosine_annealing_lr_stepped_per_epoch():
    ours = lr_table(BASE)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=200), 200)
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert ours[0] == 0.1 and ours[100] == pytest.approx(0.05)


def test_step_matches_multistep_lr_whose_milestones_count_from_zero():
    cfg = recipe(schedule="step", epochs=40, step_milestones=[11, 31], step_gamma=0.2)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[10, 30], gamma=0.2), 40)
    assert lr_table(cfg) == pytest.approx(ref, rel=1e-12)


def test_a_window_and_a_milestone_with_the_same_number_act_on_the_same_epoch():
    step = recipe(schedule="step", epochs=20, step_milestones=[8], step_gamma=0.1)
    window = recipe(schedule="constant", epochs=20, lr_windows=[{"start": 8, "end": 21, "factor": 0.1}])
    changed = [e for e in range(2, 21) if lr_for_epoch(e, step) != lr_for_epoch(e - 1, step)]
    windowed = [e for e in range(2, 21) if lr_for_epoch(e, window) != lr_for_epoch(e - 1, window)]
    assert changed == windowed == [8]


def test_step_default_milestones_are_half_and_three_quarters():
    cfg = recipe(schedule="step", epochs=8, step_milestones=None)
    assert lr_table(cfg) == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_constant():
    assert set(lr_table(recipe(schedule="constant", epochs=5))) == {0.1}


def test_window_multiplies_inside_and_returns_to_the_base_curve():
    win = recipe(lr_windows=[{"start": 50, "end": 100, "factor": 5.0}])
    for epoch in (1, 49, 100, 150, 200):
        assert lr_for_epoch(epoch, win) == lr_for_epoch(epoch, BASE)
    for epoch in (50, 75, 99):
        assert lr_for_epoch(epoch, win) == pytest.approx(5.0 * lr_for_epoch(epoch, BASE))
    expected_50 = 5 * 0.1 * (1 + math.cos(math.pi * 49 / 200)) / 2
    assert lr_for_epoch(50, win) == pytest.approx(expected_50)


def test_epoch_outside_the_run_is_an_error():
    with pytest.raises(ValueError, match="outside the run"):
        base_lr(201, lr=0.1, epochs=200, schedule="cosine")
