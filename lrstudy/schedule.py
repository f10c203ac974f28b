"""The learning rate of every optimizer step: a schedule family, an optional linear warmup before it, evaluated
once per epoch or at every step, times any lr windows.

    lr_at(recipe, step, steps_per_epoch)      # step 0 is the run's first optimizer step

is the one function the trainer, the validation of a run's files, the figures and the tests read. The
recipe's `lr` is the peak lr. Counting:

- steps per epoch S = ceil(train images / batch_size) (the last batch is the remainder);
- with `lr_update: epoch` the schedule advances once per epoch (the updates are the epochs), with `step` at
  every optimizer step (the updates are the steps): N = epochs, or epochs x S, updates in all;
- a warmup of `epochs` takes w updates (that many epochs, or round(epochs x S) steps), rising linearly from
  lr x start_factor to lr as LinearLR(start_factor, 1.0, total_iters=w) does; the family then runs from its
  own start over the remaining n = N - w updates (PyTorch's SequentialLR([warmup, family], [w]));
- epochs are 1-based where the user counts them (lr windows, step milestones: epoch 1 is the first), and
  fractional progress from the family's start where a family measures time (cosine_restarts' t_0,
  piecewise knots, warmup epochs with `lr_update: step`);
- an lr window {start, end, factor} multiplies the lr of every step of the epochs start <= e < end,
  whatever the family; after it the run is back on the family's curve.

Each family is PyTorch's scheduler of that name evaluated at update j = 0..n-1 (the tests use them as the
oracle, to 1e-9 relative, on every step), written here in closed form with PyTorch's own arithmetic:
cosine = CosineAnnealingLR(T_max=n, eta_min), linear = LinearLR(start_factor, end_factor, total_iters=n),
exponential = ExponentialLR(gamma) (gamma per update), polynomial = PolynomialLR(total_iters=n, power),
onecycle = OneCycleLR(max_lr=lr, total_steps=n, ..., cycle_momentum=False), cosine_restarts =
CosineAnnealingWarmRestarts(T_0=t_0, T_mult, eta_min) stepped with the fractional epoch, step =
MultiStepLR(milestone - 1) (a milestone is the first epoch at the lower lr; null: after one half and three
quarters of the updates). wsd (warmup-stable-decay) stays at lr, then over its last round(decay_fraction x n)
updates falls as 1 - x, (1 + cos(pi x)) / 2 or 1 - sqrt(x), x = (j - d0) / (n - d0) from 0 at the first decay
update d0. piecewise is lr x numpy.interp(epochs since its start, knot epochs, knot factors).

A leaf module: no torch and nothing from lrstudy but `suggest` (did-you-mean), so that the config, the
trainer, the validation and the analysis all read the same schedule cheaply.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from lrstudy.suggest import did_you_mean

UPDATES = ("epoch", "step")  # lr_update: when the schedule advances
LEGACY_STEP_GAMMA = 0.1  # step_gamma's default when schedules were names beside step_milestones/step_gamma


class ScheduleError(ValueError):
    """A schedule that cannot be used: `key` (relative to the recipe, e.g. "schedule.pct_start") and why."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


class Param(NamedTuple):
    default: Any  # REQUIRED: none
    kind: str | tuple[str, ...]  # how it is checked (_checked); a tuple: the values it may take
    meaning: str  # one line, for the docs and errors


REQUIRED: Any = object()  # the default of a parameter that must be given

# Every family, its parameters in the order they are written, their defaults (PyTorch's, where PyTorch has
# the scheduler) and their meaning. A new family: a row here, a branch in family_lr, words in _family_words.
FAMILIES: dict[str, dict[str, Param]] = {
    "constant": {},
    "cosine": {"eta_min": Param(0.0, "lr", "the lr it ends at (absolute)")},
    "step": {
        "milestones": Param(None, "milestones", "first epochs at each lower lr; null: at 1/2 and 3/4 of its updates"),
        "gamma": Param(0.1, "positive", "the factor at each milestone"),
    },
    "linear": {
        "start_factor": Param(1.0, "start_factor", "lr x this at the start, in (0, 1]"),
        "end_factor": Param(0.0, "unit", "lr x this at the end, in [0, 1]"),
    },
    "exponential": {"gamma": Param(0.97, "positive", "the factor per update (epoch or step)")},
    "polynomial": {"power": Param(1.0, "positive", "1.0 is linear to zero")},
    "cosine_restarts": {
        "t_0": Param(10.0, "positive", "epochs to the first restart"),
        "t_mult": Param(1, "count", "each cycle this many times longer than the last (an integer >= 1)"),
        "eta_min": Param(0.0, "lr", "the lr each cycle ends at (absolute)"),
    },
    "onecycle": {
        "pct_start": Param(0.3, "open_unit", "the fraction of updates rising to lr"),
        "div_factor": Param(25.0, "positive", "it starts at lr / div_factor"),
        "final_div_factor": Param(10000.0, "positive", "it ends at lr / div_factor / final_div_factor"),
        "anneal": Param("cos", ("cos", "linear"), "how it rises and falls"),
        "three_phase": Param(False, "bool", "back to the start lr before the final decay"),
    },
    "wsd": {
        "decay_fraction": Param(0.2, "decay_fraction", "the fraction of updates at the end that decay, in (0, 1]"),
        "decay": Param("linear", ("linear", "cosine", "sqrt"), "how it decays to zero"),
    },
    "piecewise": {"knots": Param(REQUIRED, "knots", "[[epoch, factor], ...]: lr x factor, linear between")},
}
WARMUP = {
    "epochs": Param(REQUIRED, "positive", "epochs of linear warmup, before the schedule"),
    "start_factor": Param(0.1, "start_factor", "lr x this at the first update, in (0, 1]"),
}


@dataclass(frozen=True)
class Schedule:
    """A family and every one of its parameters (defaults filled in), in the family's order."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def __getitem__(self, key: str) -> Any:
        return dict(self.params)[key]

    def as_dict(self) -> dict:
        """{name, every parameter}: summary.json's `schedule`, and a form schedule_of reads back."""
        return {"name": self.name, **{k: _plain(v) for k, v in self.params}}


@dataclass(frozen=True)
class Warmup:
    epochs: float
    start_factor: float

    def as_dict(self) -> dict:
        return {"epochs": self.epochs, "start_factor": self.start_factor}


# ------------------------------------------------------------------------------------------- parsing


def schedule_of(value: str | Mapping) -> Schedule:
    """A Schedule from a family's name (its defaults) or a mapping {name, parameters...}; a ScheduleError
    names the key."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise ScheduleError("schedule", f"{value!r} is neither a family's name nor a mapping {{name: ..., ...}}")
    name = value.get("name")
    if not isinstance(name, str) or name not in FAMILIES:
        what = "a mapping without `name`" if name is None else f"unknown family {name!r}{did_you_mean(name, FAMILIES)}"
        raise ScheduleError(
            f"schedule{'' if name is None else '.name'}", f"{what}; the families: {', '.join(FAMILIES)}"
        )
    return Schedule(name, _params(value, FAMILIES[name], "schedule", f"the {name} schedule"))


def warmup_of(value: Mapping | None) -> Warmup | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ScheduleError("warmup", f"{value!r} is not a mapping such as {{epochs: 5, start_factor: 0.1}} or null")
    return Warmup(**dict(_params(value, WARMUP, "warmup", "warmup")))


def written_schedule(train: Mapping) -> tuple[Schedule, tuple]:
    """A recipe's schedule as written, and the inert step keys of the old spelling: before schedules were
    mappings, `schedule: step` took `step_milestones` and `step_gamma` beside it, and every recipe carried
    them (a cosine or constant schedule ignored them)."""
    written = train["schedule"]
    legacy = {k: train[k] for k in ("step_milestones", "step_gamma") if train.get(k) is not None}
    if written == "step":
        gamma = legacy.get("step_gamma", LEGACY_STEP_GAMMA)
        step = {"name": "step", "milestones": legacy.get("step_milestones"), "gamma": gamma}
        try:
            return schedule_of(step), (None, LEGACY_STEP_GAMMA)
        except ScheduleError as e:
            raise ScheduleError(f"step_{e.key.removeprefix('schedule.')}", e.message) from None
    schedule = schedule_of(written)
    if schedule.name == "step" and legacy:
        raise ScheduleError(
            next(iter(legacy)),
            "the old spelling of the step schedule's parameters, beside a schedule written as a mapping: give "
            "them in it (schedule: {name: step, milestones: [...], gamma: ...})",
        )
    milestones = legacy.get("step_milestones")
    return schedule, (
        None if milestones is None else tuple(map(int, milestones)),
        float(legacy.get("step_gamma", LEGACY_STEP_GAMMA)),
    )


def recorded(train: Mapping) -> dict:
    """The schedule keys of a recipe as summary.json records them today ({schedule: {name, parameters},
    warmup, lr_update}), also from one recorded before schedules were mappings."""
    warmup = warmup_of(train.get("warmup"))
    return {
        "schedule": written_schedule(train)[0].as_dict(),
        "warmup": None if warmup is None else warmup.as_dict(),
        "lr_update": train.get("lr_update", "epoch"),
    }


def as_mapping(value: str | Mapping | None) -> dict | None:
    """A schedule written as a name, as the mapping it stands for: what a partial override merges into."""
    return {"name": value} if isinstance(value, str) else None if value is None else dict(value)


def _params(value: Mapping, spec: Mapping[str, Param], where: str, what: str) -> tuple[tuple[str, Any], ...]:
    unknown = [k for k in value if k not in spec and not (where == "schedule" and k == "name")]
    if unknown:
        k = unknown[0]
        valid = ", ".join(spec) or "none"
        raise ScheduleError(
            f"{where}.{k}", f"not a parameter of {what}{did_you_mean(k, spec)} (its parameters: {valid})"
        )
    out = []
    for key, param in spec.items():
        if key in value:
            out.append((key, _checked(value[key], param.kind, f"{where}.{key}")))
        elif param.default is REQUIRED:
            raise ScheduleError(f"{where}.{key}", f"required by {what} ({param.meaning})")
        else:
            out.append((key, param.default))
    return tuple(out)


def _checked(v: Any, kind: str | tuple, key: str) -> Any:
    """A parameter's value in its canonical type, or a ScheduleError saying what it must be."""
    if isinstance(kind, tuple):
        if v not in kind:
            raise ScheduleError(key, f"{v!r} is not one of {', '.join(kind)}{did_you_mean(v, kind)}")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise ScheduleError(key, f"{v!r} is not true or false")
        return v
    if kind == "milestones":
        if v is None:
            return None
        if not isinstance(v, Sequence) or isinstance(v, str) or not all(_is_int(m) for m in v) or not v:
            raise ScheduleError(key, f"{v!r} is not a list of epochs (integers), e.g. [101, 151], or null")
        return tuple(int(m) for m in v)
    if kind == "knots":
        return _knots(v, key)
    if kind == "count":
        if not _is_int(v) or v < 1:
            raise ScheduleError(key, f"{v!r} is not an integer >= 1")
        return int(v)
    if not _is_number(v):
        raise ScheduleError(key, f"{v!r} is not a number")
    v = float(v)
    ok, must = {
        "positive": (v > 0, "> 0"),
        "lr": (v >= 0, ">= 0"),
        "unit": (0 <= v <= 1, "in [0, 1]"),
        "open_unit": (0 < v < 1, "strictly between 0 and 1"),
        "start_factor": (0 < v <= 1, "in (0, 1]"),
        "decay_fraction": (0 < v <= 1, "in (0, 1]"),
    }[kind]
    if not (ok and math.isfinite(v)):
        raise ScheduleError(key, f"{v!r} must be {must}")
    return v


def _knots(v: Any, key: str) -> tuple[tuple[float, float], ...]:
    pairs = v if isinstance(v, Sequence) and not isinstance(v, str) else None
    if pairs is None or len(pairs) < 2 or not all(_is_pair(p) for p in pairs):
        raise ScheduleError(
            key, f"{v!r} is not a list of at least two [epoch, factor] pairs, e.g. [[0, 0.0], [15, 1.0], [30, 0.0]]"
        )
    knots = tuple((float(e), float(f)) for e, f in pairs)
    for i, (e, f) in enumerate(knots):
        if e < 0:
            raise ScheduleError(f"{key}[{i}]", f"epoch {e:g} is before the schedule's start (0)")
        if f < 0:
            raise ScheduleError(f"{key}[{i}]", f"factor {f:g} is negative")
        if i and e <= knots[i - 1][0]:
            raise ScheduleError(
                f"{key}[{i}]", f"epoch {e:g} is not after the previous knot's {knots[i - 1][0]:g}: knots go in order"
            )
    return knots


def _is_pair(p: Any) -> bool:
    return isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2 and all(map(_is_number, p))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return _is_number(v) and float(v).is_integer()


def _plain(v: Any) -> Any:
    """Tuples as lists (JSON, YAML)."""
    return [_plain(x) for x in v] if isinstance(v, tuple) else v


# -------------------------------------------------------------------------------------- counting updates


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    """Optimizer steps in an epoch: every image once, the last batch the remainder (drop_last=False)."""
    return -(-train_images // batch_size)


def updates_per_epoch(recipe, steps: int) -> int:
    return steps if recipe.lr_update == "step" else 1


def warmup_updates(recipe, steps: int) -> int:
    """w: the warmup's updates (its epochs, or round(epochs x S) steps); 0 without a warmup."""
    if recipe.warmup is None:
        return 0
    return round(recipe.warmup.epochs * updates_per_epoch(recipe, steps))


def problems(recipe, steps: int | None = None) -> list[tuple[str, str]]:
    """(key, why) of each way the recipe's schedule does not fit its run, the key relative to the recipe.
    Without `steps` (steps per epoch, unknown before the data is read) the checks that need it are made
    only for `lr_update: epoch`, where it does not matter."""
    if recipe.lr_update not in UPDATES:
        return [("lr_update", f"{recipe.lr_update!r} is not one of {', '.join(UPDATES)}")]
    out = _epoch_problems(recipe)
    if out or (steps is None and recipe.lr_update == "step"):
        return out
    return _update_problems(recipe, steps or 1)


def _epoch_problems(recipe) -> list[tuple[str, str]]:
    """What the run's epochs decide: the warmup shorter than the run, milestones and knots inside it."""
    out, w, s = [], recipe.warmup, recipe.schedule
    if w is not None and w.epochs >= recipe.epochs:
        out.append(("warmup.epochs", f"{w.epochs:g} is not shorter than the run's {recipe.epochs} epochs"))
    elif w is not None and recipe.lr_update == "epoch" and not w.epochs.is_integer():
        out.append(("warmup.epochs", f"{w.epochs:g} is not a whole number of epochs (with lr_update: step it may be)"))
    family_epochs = recipe.epochs - (w.epochs if w else 0.0)  # the family's run, in epochs
    after = f" after its {w.epochs:g}-epoch warmup" if w else ""
    if s.name == "step" and s["milestones"] is not None:
        bad = [m for m in s["milestones"] if not 1 < m < family_epochs + 1]
        if bad:
            why = (
                f"{bad} not inside the run of {family_epochs:g} epochs{after} (a milestone is the first epoch at "
                f"the lower lr, 2..{math.ceil(family_epochs)}, counted from the schedule's start)"
            )
            out.append(("schedule.milestones", why))
    if s.name == "piecewise" and s["knots"][-1][0] > family_epochs:
        i = len(s["knots"]) - 1
        why = f"epoch {s['knots'][i][0]:g} is after the run's end ({family_epochs:g} epochs{after})"
        out.append((f"schedule.knots[{i}]", why))
    return out


def _update_problems(recipe, steps: int) -> list[tuple[str, str]]:
    """What the number of updates decides: a warmup of at least one and fewer than all, a one-cycle that
    rises, a WSD that decays."""
    out, w, s = [], recipe.warmup, recipe.schedule
    per = updates_per_epoch(recipe, steps)
    total, warm = recipe.epochs * per, warmup_updates(recipe, steps)
    unit = "steps" if per > 1 else "epochs"
    if w is not None and warm < 1:
        out.append(("warmup.epochs", f"{w.epochs:g} epochs round to no step of {steps} per epoch"))
    elif w is not None and warm >= total:
        out.append(("warmup.epochs", f"{w.epochs:g} epochs round to {warm} {unit}, the whole run's {total}"))
    n = total - warm
    if s.name == "onecycle" and s["pct_start"] * n < 2:
        why = f"{s['pct_start']:g} of {n} {unit} leaves no rise to the peak (pct_start x {unit} must be >= 2)"
        out.append(("schedule.pct_start", why))
    if s.name == "wsd" and round(s["decay_fraction"] * n) < 1:
        out.append(("schedule.decay_fraction", f"{s['decay_fraction']:g} of {n} {unit} rounds to no decay"))
    return out


# ---------------------------------------------------------------------------------------------- the lr


def lr_at(recipe, step: int, steps: int) -> float:
    """The lr of optimizer step `step` (0-based over the whole run) of a run of `recipe` with `steps` steps
    per epoch."""
    if not 0 <= step < recipe.epochs * steps:
        raise ValueError(f"step {step} is outside the run (0..{recipe.epochs * steps - 1})")
    per = updates_per_epoch(recipe, steps)
    u = step if per > 1 else step // steps  # the update this step is in
    w = warmup_updates(recipe, steps)
    if u < w:
        s0 = recipe.warmup.start_factor
        lr = recipe.lr * (s0 + (1.0 - s0) * u / w)  # LinearLR(s0, 1.0, total_iters=w), closed form
    else:
        lr = family_lr(recipe.schedule, recipe.lr, u - w, recipe.epochs * per - w, per)
    return lr * window_factor(step // steps + 1, recipe.lr_windows)


def family_lr(s: Schedule, lr: float, j: int, n: int, per: int) -> float:
    """The family's lr at its update j of n (per: updates per epoch), PyTorch's arithmetic."""
    name, p = s.name, dict(s.params)
    if name == "constant":
        return lr
    if name == "cosine":
        return p["eta_min"] + (lr - p["eta_min"]) * (1 + math.cos(math.pi * j / n)) / 2
    if name == "step":
        thresholds = (n // 2, (3 * n) // 4) if p["milestones"] is None else ((m - 1) * per for m in p["milestones"])
        return lr * p["gamma"] ** sum(1 for t in thresholds if j >= t)
    if name == "linear":
        return lr * (p["start_factor"] + (p["end_factor"] - p["start_factor"]) * min(n, j) / n)
    if name == "exponential":
        return lr * p["gamma"] ** j
    if name == "polynomial":
        return lr * (1.0 - min(n, j) / n) ** p["power"]
    if name == "cosine_restarts":
        return _restarts(lr, j / per, p["t_0"], p["t_mult"], p["eta_min"])
    if name == "onecycle":
        return _onecycle(lr, j, n, p)
    if name == "wsd":
        d0 = n - round(p["decay_fraction"] * n)
        if j < d0:
            return lr
        x = (j - d0) / (n - d0)
        return lr * {"linear": 1 - x, "cosine": (1 + math.cos(math.pi * x)) / 2, "sqrt": 1 - math.sqrt(x)}[p["decay"]]
    if name == "piecewise":
        return lr * _interp(j / per, p["knots"])
    raise ValueError(f"unknown schedule {name!r}")


def _restarts(lr: float, epoch: float, t_0: float, t_mult: int, eta_min: float) -> float:
    """CosineAnnealingWarmRestarts.step(epoch), as PyTorch computes T_cur and T_i."""
    t_i, t_cur = t_0, epoch
    if epoch >= t_0:
        if t_mult == 1:
            t_cur = epoch % t_0
        else:
            k = int(math.log((epoch / t_0 * (t_mult - 1) + 1), t_mult))
            t_cur = epoch - t_0 * (t_mult**k - 1) / (t_mult - 1)
            t_i = t_0 * t_mult**k
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


def _onecycle(lr: float, j: int, n: int, p: Mapping) -> float:
    """OneCycleLR.get_lr at step j of total_steps n."""
    initial = lr / p["div_factor"]
    low = initial / p["final_div_factor"]
    pct = p["pct_start"]
    if p["three_phase"]:
        phases = [(float(pct * n) - 1, initial, lr), (float(2 * pct * n) - 2, lr, initial), (n - 1, initial, low)]
    else:
        phases = [(float(pct * n) - 1, initial, lr), (n - 1, lr, low)]
    start = 0.0
    for i, (end, a, b) in enumerate(phases):
        if j <= end or i == len(phases) - 1:
            x = (j - start) / (end - start)
            if p["anneal"] == "cos":
                return b + (a - b) / 2.0 * (math.cos(math.pi * x) + 1)
            return (b - a) * x + a
        start = end
    raise AssertionError("unreachable: the last phase always answers")


def _interp(x: float, knots: Sequence[tuple[float, float]]) -> float:
    """numpy.interp(x, epochs, factors) for increasing epochs: the end values outside them."""
    xs = [e for e, _ in knots]
    if x <= xs[0]:
        return knots[0][1]
    if x >= xs[-1]:
        return knots[-1][1]
    i = bisect.bisect_right(xs, x) - 1
    (x0, y0), (x1, y1) = knots[i], knots[i + 1]
    return (y1 - y0) / (x1 - x0) * (x - x0) + y0


def window_factor(epoch: int, windows: Sequence[tuple[int, int, float]]) -> float:
    """The product of the factors of the (start, end, factor) windows that hold `epoch`."""
    factor = 1.0
    for start, end, f in windows:
        if start <= epoch < end:
            factor *= f
    return factor


def epoch_lrs(recipe, epoch: int, steps: int) -> tuple[float, float]:
    """(lr of the first step, lr of the last step) of a 1-based epoch: metrics.csv's lr and lr_last."""
    first = (epoch - 1) * steps
    return lr_at(recipe, first, steps), lr_at(recipe, first + steps - 1, steps)


def step_lrs(recipe, steps: int) -> list[float]:
    """The lr of every optimizer step of the run."""
    return [lr_at(recipe, i, steps) for i in range(recipe.epochs * steps)]


# --------------------------------------------------------------------------------------------- in words


def words(recipe) -> str:
    """The schedule in a few words: "one-cycle to 0.4 at 25%, cosine down to 1.6e-05", "WSD: 20% sqrt
    decay, 5-epoch warmup", "cosine down to 0, per step"."""
    out = _family_words(recipe.schedule, recipe.lr)
    w = recipe.warmup
    if w is not None:
        start = "" if w.start_factor == WARMUP["start_factor"].default else f" from x{w.start_factor:g}"
        out += f", {w.epochs:g}-epoch warmup{start}"
    if recipe.lr_update == "step":
        out += ", per step"
    return out


def _family_words(s: Schedule, lr: float) -> str:
    p = dict(s.params)
    if s.name == "constant":
        return f"constant {lr:g}"
    if s.name == "cosine":
        return f"cosine down to {p['eta_min']:g}"
    if s.name == "step":
        at = "1/2 and 3/4 of the run" if p["milestones"] is None else "epochs " + _and(f"{m}" for m in p["milestones"])
        return f"step x{p['gamma']:g} at {at}"
    if s.name == "linear":
        return f"linear from {lr * p['start_factor']:g} to {lr * p['end_factor']:g}"
    if s.name == "exponential":
        return f"exponential x{p['gamma']:g} per update"
    if s.name == "polynomial":
        return f"polynomial (power {p['power']:g}) down to 0"
    if s.name == "cosine_restarts":
        longer = "" if p["t_mult"] == 1 else f", each cycle x{p['t_mult']} longer"
        return f"cosine restarts every {p['t_0']:g} epochs{longer}, down to {p['eta_min']:g}"
    if s.name == "onecycle":
        low = lr / p["div_factor"] / p["final_div_factor"]
        phases = "three-phase one-cycle" if p["three_phase"] else "one-cycle"
        anneal = "cosine" if p["anneal"] == "cos" else "linear"
        start = lr / p["div_factor"]
        return f"{phases} from {start:g} to {lr:g} at {100 * p['pct_start']:g}%, {anneal} down to {low:g}"
    if s.name == "wsd":
        return f"WSD: {100 * p['decay_fraction']:g}% {p['decay']} decay"
    if s.name == "piecewise":
        return "piecewise " + ", ".join(f"x{f:g} at epoch {e:g}" for e, f in p["knots"])
    return s.name


def _and(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
