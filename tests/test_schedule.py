"""The lr of every optimizer step (lrstudy.schedule) against PyTorch's own schedulers, to 1e-9 relative on
every step: each family per epoch and per step, with and without a warmup, with lr windows; and the
schedule's bad input, a sentence naming the key."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.optim import lr_scheduler as tl

from lrstudy.config import ConfigError, defaults, recipe_of
from lrstudy.schedule import FAMILIES as SCHEDULE_FAMILIES
from lrstudy.schedule import epoch_lrs, lr_at, step_lrs, warmup_updates, window_factor, words

S = 7  # steps per epoch: 200 images at batch 32, as the golden runs


def recipe(**keys):
    """config.yaml's recipe (lr 0.1 cosine) with `keys` changed."""
    return recipe_of({**defaults()["train"], "lr": 0.1, "epochs": 20, **keys}, where="test")


def family(opt, r, n: int, per: int):
    """PyTorch's scheduler for the recipe's family over n updates (per: updates per epoch)."""
    s, p = r.schedule, dict(r.schedule.params)
    if s.name == "constant":
        return tl.ConstantLR(opt, factor=1.0, total_iters=0)
    if s.name == "cosine":
        return tl.CosineAnnealingLR(opt, T_max=n, eta_min=p["eta_min"])
    if s.name == "step":
        ms = [n // 2, 3 * n // 4] if p["milestones"] is None else [(m - 1) * per for m in p["milestones"]]
        return tl.MultiStepLR(opt, milestones=ms, gamma=p["gamma"])
    if s.name == "linear":
        return tl.LinearLR(opt, start_factor=p["start_factor"], end_factor=p["end_factor"], total_iters=n)
    if s.name == "exponential":
        return tl.ExponentialLR(opt, gamma=p["gamma"])
    if s.name == "polynomial":
        return tl.PolynomialLR(opt, total_iters=n, power=p["power"])
    if s.name == "cosine_restarts":  # t_0 epochs = t_0 x per updates, stepped once per update
        return tl.CosineAnnealingWarmRestarts(opt, T_0=round(p["t_0"] * per), T_mult=p["t_mult"], eta_min=p["eta_min"])
    if s.name == "onecycle":
        return tl.OneCycleLR(
            opt,
            max_lr=r.lr,
            total_steps=n,
            pct_start=p["pct_start"],
            anneal_strategy=p["anneal"],
            div_factor=p["div_factor"],
            final_div_factor=p["final_div_factor"],
            three_phase=p["three_phase"],
            cycle_momentum=False,
        )
    if s.name == "piecewise":
        xs, ys = zip(*p["knots"], strict=True)
        return tl.LambdaLR(opt, lambda j: float(np.interp(j / per, xs, ys)))
    raise AssertionError(s.name)


def wsd(opt, r, n: int):
    """WSD as PyTorch's pieces: ConstantLR, then LinearLR to 0, CosineAnnealingLR, or 1 - sqrt by LambdaLR."""
    p = dict(r.schedule.params)
    d = round(p["decay_fraction"] * n)
    decay = {
        "linear": lambda: tl.LinearLR(opt, start_factor=1.0, end_factor=0.0, total_iters=d),
        "cosine": lambda: tl.CosineAnnealingLR(opt, T_max=d),
        "sqrt": lambda: tl.LambdaLR(opt, lambda k: 1 - math.sqrt(k / d)),
    }[p["decay"]]()
    return [tl.ConstantLR(opt, factor=1.0, total_iters=0), decay], [n - d]


def torch_step_lrs(r, steps: int = S) -> list[float]:
    """Every step's lr when PyTorch's schedulers run the recipe: SequentialLR([LinearLR warmup, family],
    [w]), stepped once per update (an epoch or a step), times the lr windows of the step's epoch."""
    per = steps if r.lr_update == "step" else 1
    total, w = r.epochs * per, warmup_updates(r, steps)
    if w and r.schedule.name == "onecycle":
        # OneCycleLR rewrites the groups' initial_lr to lr / div_factor, which SequentialLR then restores
        # as the lr its warmup starts from: the warmup and the cycle each run on an optimizer of their own.
        warm = stepped(total, lambda o: tl.LinearLR(o, start_factor=r.warmup.start_factor, total_iters=w), r.lr)
        per_update = warm[:w] + stepped(total - w, lambda o: family(o, r, total - w, per), r.lr)
    else:
        per_update = stepped(total, lambda o: sequence(o, r, total, per, w), r.lr)
    return [
        per_update[k if per > 1 else k // steps] * window_factor(k // steps + 1, r.lr_windows)
        for k in range(r.epochs * steps)
    ]


def sequence(opt, r, total: int, per: int, w: int):
    parts, milestones = [], []
    if w:
        parts, milestones = [tl.LinearLR(opt, start_factor=r.warmup.start_factor, end_factor=1.0, total_iters=w)], [w]
    if r.schedule.name == "wsd":
        more, at = wsd(opt, r, total - w)
        parts, milestones = parts + more, milestones + [w + m for m in at]
    else:
        parts.append(family(opt, r, total - w, per))
    return parts[0] if len(parts) == 1 else tl.SequentialLR(opt, parts, milestones=milestones)


def stepped(updates: int, make, lr: float) -> list[float]:
    """The lr of each of `updates` updates of the scheduler `make(optimizer)` makes, stepped after each."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched, out = make(opt), []
    for j in range(updates):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if j < updates - 1:
            sched.step()
    return out


FAMILIES = [
    {"name": "constant"},
    {"name": "cosine"},
    {"name": "cosine", "eta_min": 0.004},
    {"name": "step", "milestones": [6, 15], "gamma": 0.2},
    {"name": "step"},
    {"name": "linear"},
    {"name": "linear", "start_factor": 0.5, "end_factor": 0.1},
    {"name": "exponential", "gamma": 0.9},
    {"name": "polynomial", "power": 2.0},
    {"name": "cosine_restarts", "t_0": 3, "t_mult": 2, "eta_min": 0.001},
    {"name": "cosine_restarts", "t_0": 4},
    {"name": "onecycle", "pct_start": 0.25, "div_factor": 10.0},
    {"name": "onecycle", "anneal": "linear", "three_phase": True},
    {"name": "wsd"},
    {"name": "wsd", "decay_fraction": 0.3, "decay": "cosine"},
    {"name": "wsd", "decay_fraction": 0.25, "decay": "sqrt"},
    {"name": "piecewise", "knots": [[0, 0.1], [3.5, 1.0], [12, 0.0]]},
]


def _id(p):
    return "-".join(f"{v}" for v in p.values())


@pytest.mark.parametrize("update", ["epoch", "step"])
@pytest.mark.parametrize("warmup", [None, {"epochs": 3, "start_factor": 0.05}], ids=["no-warmup", "warmup"])
@pytest.mark.parametrize("schedule", FAMILIES, ids=_id)
def test_every_step_is_pytorchs_lr(schedule, warmup, update):
    r = recipe(schedule=schedule, warmup=warmup, lr_update=update, lr_windows=[{"start": 9, "end": 11, "factor": 3.0}])
    ours, ref = step_lrs(r, S), torch_step_lrs(r)
    assert len(ours) == 20 * S
    assert ours == pytest.approx(ref, rel=1e-9, abs=0.0)


def test_a_fractional_warmup_and_restart_period_count_in_steps():
    r = recipe(schedule={"name": "cosine_restarts", "t_0": 2.5}, warmup={"epochs": 1.5}, lr_update="step")
    assert warmup_updates(r, S) == round(1.5 * S) == 10  # 10.5 rounds to even
    ours = step_lrs(r, S)
    assert ours[:10] == pytest.approx([0.1 * (0.1 + 0.9 * k / 10) for k in range(10)], rel=1e-12)
    restarts = [k for k in range(11, 20 * S) if ours[k] > ours[k - 1]]
    # "stepped with the fractional epoch": CosineAnnealingWarmRestarts.step((k - 10) / S), every 2.5 epochs
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    fractional = tl.CosineAnnealingWarmRestarts(opt, T_0=5, eta_min=0.0)  # T_0 in half epochs: x2 below
    ref = []
    for k in range(10, 20 * S):
        fractional.step(2 * (k - 10) / S)
        ref.append(opt.param_groups[0]["lr"])
    assert ours[10:] == pytest.approx(ref, rel=1e-9)
    assert restarts == [10 + math.ceil(2.5 * S * c) for c in range(1, 8)]  # the first step of each cycle


def test_cosine_restarts_stepped_with_the_fractional_epoch():
    r = recipe(schedule={"name": "cosine_restarts", "t_0": 3, "t_mult": 2, "eta_min": 0.001}, lr_update="step")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = tl.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.001)
    ref = []
    for k in range(20 * S):
        sched.step(k / S)
        ref.append(opt.param_groups[0]["lr"])
    assert step_lrs(r, S) == pytest.approx(ref, rel=1e-9)


def test_the_published_cosine_is_unchanged_bit_for_bit():
    # The formula the runs before per-step schedules used: each epoch's lr, exactly.
    r = recipe(epochs=200)
    for e in (1, 2, 50, 101, 200):
        assert epoch_lrs(r, e, 196) == (0.1 * (1.0 + math.cos(math.pi * (e - 1) / 200)) / 2.0,) * 2


def test_a_window_and_a_milestone_with_the_same_number_act_on_the_same_epoch():
    step = recipe(schedule={"name": "step", "milestones": [8]})
    window = recipe(schedule="constant", lr_windows=[{"start": 8, "end": 21, "factor": 0.1}])
    for r in (step, window):
        firsts = [epoch_lrs(r, e, S)[0] for e in range(1, 21)]
        assert [e for e in range(2, 21) if firsts[e - 1] != firsts[e - 2]] == [8]


def test_the_old_spelling_of_the_step_schedule_is_the_same_schedule():
    old = recipe(schedule="step", step_milestones=[6, 15], step_gamma=0.2)
    assert old.schedule == recipe(schedule={"name": "step", "milestones": [6, 15], "gamma": 0.2}).schedule
    assert step_lrs(recipe(schedule="step", epochs=8), 1) == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_a_step_outside_the_run_is_an_error():
    with pytest.raises(ValueError, match="outside the run"):
        lr_at(recipe(), 20 * S, S)


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"schedule": "cosin"}, r"train.schedule.name: unknown family 'cosin' \(did you mean `cosine`\?\)"),
        ({"schedule": {"pct_start": 0.3}}, r"train.schedule: a mapping without `name`"),
        (
            {"schedule": {"name": "cosine", "pct_start": 0.3}},
            r"train.schedule.pct_start: not a parameter of the cosine schedule \(its parameters: eta_min\)",
        ),
        ({"schedule": {"name": "onecycle", "pct_strt": 0.3}}, r"pct_strt: .*\(did you mean `pct_start`\?\)"),
        ({"schedule": {"name": "wsd", "decay": "sqr"}}, r"schedule.decay: 'sqr' is not one of linear, cosine, sqrt"),
        ({"schedule": {"name": "exponential", "gamma": -0.5}}, r"train.schedule.gamma: -0.5 must be > 0"),
        ({"schedule": {"name": "piecewise"}}, r"train.schedule.knots: required by the piecewise schedule"),
        (
            {"schedule": {"name": "piecewise", "knots": [[0, 0.1], [5, 1], [3, 0]]}},
            r"train.schedule.knots\[2\]: epoch 3 is not after the previous knot's 5: knots go in order",
        ),
        ({"schedule": {"name": "piecewise", "knots": [[0, 0.1], [5, -1]]}}, r"knots\[1\]: factor -1 is negative"),
        (
            {"schedule": {"name": "piecewise", "knots": [[0, 0.1], [25, 0]]}},
            r"train.schedule.knots\[1\]: epoch 25 is after the run's end \(20 epochs\)",
        ),
        ({"warmup": {"epochs": 20}}, r"train.warmup.epochs: 20 is not shorter than the run's 20 epochs"),
        ({"warmup": {"epochs": 2.5}}, r"train.warmup.epochs: 2.5 is not a whole number of epochs"),
        ({"warmup": {"epochs": 2, "start": 0.1}}, r"train.warmup.start: not a parameter of warmup .*start_factor"),
        ({"warmup": {"epochs": 2, "start_factor": 0}}, r"train.warmup.start_factor: 0.0 must be in \(0, 1\]"),
        (
            {"warmup": {"epochs": 5}, "schedule": {"name": "step", "milestones": [17]}},
            r"train.schedule.milestones: \[17\] not inside the run of 15 epochs after its 5-epoch warmup",
        ),
        ({"schedule": "step", "step_milestones": [21]}, r"train.step_milestones: \[21\] not inside the run of 20"),
        (
            {"schedule": {"name": "step"}, "step_gamma": 0.5},
            r"train.step_gamma: the old spelling of the step schedule's parameters, beside a schedule written as a",
        ),
        ({"schedule": {"name": "onecycle", "pct_start": 0.05}}, r"train.schedule.pct_start: 0.05 of 20 epochs leaves"),
    ],
)
def test_bad_input_is_a_sentence_naming_the_key(keys, message):
    with pytest.raises(ConfigError, match=message):
        recipe_of({**defaults()["train"], "epochs": 20, **keys}, where="train")


def test_what_only_the_steps_per_epoch_decide_is_checked_with_them():
    from lrstudy.config import check_recipe

    r = recipe(schedule={"name": "onecycle", "pct_start": 0.05}, lr_update="step", epochs=2)
    with pytest.raises(ConfigError, match=r"recipe.schedule.pct_start: 0.05 of 14 steps leaves no rise"):
        check_recipe(r, "recipe", steps_per_epoch=S)
    check_recipe(r, "recipe", steps_per_epoch=196)  # 392 steps: rises over 19


def test_schedules_in_words():
    said = {
        "cosine": "cosine down to 0",
        "{name: step, milestones: [101, 151]}": "step x0.1 at epochs 101 and 151",
        "{name: onecycle, pct_start: 0.25, final_div_factor: 1000}": (
            "one-cycle from 0.016 to 0.4 at 25%, cosine down to 1.6e-05"
        ),
        "{name: wsd, decay: sqrt}": "WSD: 20% sqrt decay",
        "{name: cosine_restarts, t_0: 10, t_mult: 2}": (
            "cosine restarts every 10 epochs, each cycle x2 longer, down to 0"
        ),
        "{name: piecewise, knots: [[0, 0.2], [15, 1], [200, 0]]}": (
            "piecewise x0.2 at epoch 0, x1 at epoch 15, x0 at epoch 200"
        ),
    }
    for written, text in said.items():
        assert words(recipe(epochs=200, lr=0.4, schedule=yaml.safe_load(written))) == text
    r = recipe(schedule={"name": "wsd", "decay": "sqrt"}, warmup={"epochs": 5}, lr_update="step")
    assert words(r) == "WSD: 20% sqrt decay, 5-epoch warmup, per step"


def test_config_readme_lists_every_family_and_parameter():
    text = (Path(__file__).resolve().parent.parent / "config" / "README.md").read_text()
    table = text.split("### Schedule families")[1].split("\n## ")[0]
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \| (.*)$", table, re.M)}
    assert list(rows) == list(SCHEDULE_FAMILIES)
    for name, params in SCHEDULE_FAMILIES.items():
        for p in params:
            assert f"`{p}` (" in rows[name], (name, p)


def test_a_variant_changes_parameters_of_the_base_schedule_and_warmup_or_replaces_them():
    from lrstudy.config import checked_study, merge

    study = {
        "study": "s",
        "train": {"schedule": "onecycle", "warmup": {"epochs": 2, "start_factor": 0.2}, "lr_update": "step"},
        "variants": {
            "baseline": {},
            "later_peak": {"schedule": {"pct_start": 0.4}},  # a parameter of the base one-cycle
            "longer_warmup": {"warmup": {"epochs": 4}},  # the base warmup's start_factor stays
            "cosine": {"schedule": {"name": "cosine"}, "warmup": None},  # another family, no warmup
        },
    }
    recipes = checked_study(merge(defaults(), study)).recipes
    base = recipes["baseline"]
    assert recipes["later_peak"].schedule == base.schedule.__class__(
        "onecycle", tuple((k, 0.4 if k == "pct_start" else v) for k, v in base.schedule.params)
    )
    assert recipes["later_peak"].warmup == base.warmup
    assert (recipes["longer_warmup"].warmup.epochs, recipes["longer_warmup"].warmup.start_factor) == (4.0, 0.2)
    assert recipes["cosine"].schedule.name == "cosine" and recipes["cosine"].warmup is None
