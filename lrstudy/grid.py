"""`grid:` entries -> named variants. Two kinds of entry:

    grid:
      - {windows: [{start: 50, end: 100}], factors: [0.5, 2, 5]}        # lr windows x factors: lr_x0.5_e50-100, ...
      - cross: {lr: [0.05, 0.1, 0.2], weight_decay: [5.0e-4, 1.0e-3]}   # any recipe keys: lr0.05_wd0.0005, ...
      - cross: {schedule.pct_start: [0.1, 0.3]}                         # a schedule's or warmup's parameter
        recipe: {schedule: {name: onecycle}, lr_update: step}           # what every variant of the entry shares

A cross makes one variant per combination of its keys' values (the first key varies slowest). A variant's
name depends on its own entry's keys and values only, so adding an entry renames nothing: by default each
key's short name and value joined with '_' (`lr0.05_wd0.0005`), or the entry's `name:` pattern with a
field per key (`"adamw_{lr}_{weight_decay}"`). The Sweep records of the cross entries say which variant is
which combination: the figures, tables and report read them (a rule's params, sweeps_param).

Torch- and pandas-free; config.py calls it (GridError: a sentence naming the key, which config turns into
its ConfigError).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lrstudy import schedule as sched
from lrstudy.suggest import did_you_mean

WINDOWS_PATTERN = "lr_x{factor}_e{start}-{end}"  # the default name of a windows x factors variant
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the schema's variant names (directory names)
# The parameters a cross may sweep by dotted key, beside the recipe's own keys.
SCHEDULE_PARAMS = list(dict.fromkeys(p for family in sched.FAMILIES.values() for p in family))
DOTTED = ["schedule.name", *(f"schedule.{p}" for p in SCHEDULE_PARAMS), *(f"warmup.{p}" for p in sched.WARMUP)]
# Recipe keys a cross does not take, and what to write instead.
NOT_CROSSED = {
    "lr_windows": "lr windows are swept by an entry of their own: {windows: [...], factors: [...]}",
    "step_milestones": "the old spelling: cross schedule.milestones (with recipe: {schedule: {name: step}})",
    "step_gamma": "the old spelling: cross schedule.gamma (with recipe: {schedule: {name: step}})",
}
# How a key reads in a default name: its short name and the value (lr0.1, wd0.0005, pct_start0.3); a text
# value after a hyphen (decay-sqrt), alone where the short name is empty (cosine, bf16).
SHORT = {
    "weight_decay": "wd",
    "batch_size": "bs",
    "momentum": "mom",
    "epochs": "ep",
    "schedule": "",
    "schedule.name": "",
    "precision": "",
    "lr_update": "per",
    "warmup.epochs": "warmup",
    "warmup.start_factor": "warmup_start",
}


class GridError(ValueError):
    """A grid entry that cannot be expanded; the message names the key and says what to write."""


@dataclass(frozen=True)
class Sweep:
    """One cross entry of the grid: its swept keys and their values, in the order written, and each
    variant it made with its combination (one value per key)."""

    entry: int  # the entry's place in `grid:`
    keys: tuple[str, ...]
    values: tuple[tuple, ...]  # per key
    variants: tuple[tuple[str, tuple], ...]  # (name, combination)
    recipe: Mapping  # the entry's shared `recipe:` as written

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.variants]

    def as_dict(self) -> dict:
        return {
            "entry": self.entry,
            "keys": list(self.keys),
            "values": [list(v) for v in self.values],
            "variants": [[name, list(combo)] for name, combo in self.variants],
            "recipe": dict(self.recipe),
        }

    @classmethod
    def of(cls, d: Mapping) -> Sweep:
        return cls(
            entry=int(d["entry"]),
            keys=tuple(d["keys"]),
            values=tuple(tuple(_frozen(x) for x in v) for v in d["values"]),
            variants=tuple((name, tuple(_frozen(x) for x in combo)) for name, combo in d["variants"]),
            recipe=d["recipe"],
        )


def _frozen(x):
    """A value as a tuple where JSON gave a list (milestones), so that combinations compare and hash."""
    return tuple(_frozen(v) for v in x) if isinstance(x, list) else x


def sweeps_param(sweeps: Sequence[Sweep]) -> str:
    """The sweeps as a rule's params value (canonical JSON): the analysis reruns when a sweep changes."""
    return json.dumps([s.as_dict() for s in sweeps], sort_keys=True)


def sweeps_from_param(text: str) -> list[Sweep]:
    return [Sweep.of(d) for d in json.loads(text or "[]")]


def figure_names(grid: Sequence[Mapping] | None, sweeps: Sequence[Sweep]) -> list[str]:
    """The grid's figures (results/figures/<name>.png): `sweep` for windows x factors entries, then
    `sweep_<key>` per key a cross sweeps and `heatmap_<key1>_<key2>` per two-key cross (one figure for
    entries that cross the same keys)."""
    names = ["sweep"] if any("windows" in e for e in grid or []) else []
    names += [f"sweep_{k}" for s in sweeps for k in s.keys]
    names += [f"heatmap_{s.keys[0]}_{s.keys[1]}" for s in sweeps if len(s.keys) == 2]
    return list(dict.fromkeys(names))


def caption_of(figure: str) -> str:
    """The caption file (report/captions/<name>.rst) of a figure: one for every sweep_<key>, one for every
    heatmap."""
    for prefix in ("sweep_", "heatmap_"):
        if figure.startswith(prefix):
            return f"{prefix}key" if prefix == "sweep_" else "heatmap"
    return figure


# ------------------------------------------------------------------------------------------ expansion


def expand(grid: Sequence[Mapping] | None, variants: dict, recipe_keys: Sequence[str]) -> list[Sweep]:
    """Add every entry's variants to `variants` (name -> recipe overrides), in place; the cross entries'
    Sweeps. A name made twice, or already written under `variants:`, is refused."""
    made: dict[str, str] = {name: "under `variants:`" for name in variants}
    sweeps = []
    for i, entry in enumerate(grid or []):
        check_entry(entry, i, recipe_keys)
        if "cross" in entry:
            sweep = _cross(entry, i)
            sweeps.append(sweep)
            overrides = {
                name: overrides_of(entry.get("recipe") or {}, dict(zip(sweep.keys, combo, strict=True)))
                for name, combo in sweep.variants
            }
        else:
            overrides = _windows(entry, i)
        for name, over in overrides.items():
            if name in made:
                raise GridError(_collision(entry, i, name, made[name]))
            made[name] = f"by grid[{i}]"
            variants[name] = over
    return sweeps


def check_entry(entry: Mapping, i: int, recipe_keys: Sequence[str]) -> None:
    """An entry is windows x factors or a cross, never both; a cross names keys it can sweep, none of
    them also fixed by the entry's recipe."""
    kinds = ["cross" in entry, "windows" in entry or "factors" in entry]
    if all(kinds):
        raise GridError(
            f"invalid config: grid[{i}]: an entry crosses recipe keys (`cross`) or lr windows with factors "
            "(`windows`, `factors`), not both: write them as two entries"
        )
    if not any(kinds):
        raise GridError(
            f"invalid config: grid[{i}]: give `cross: {{key: [values], ...}}` (any recipe keys) or "
            "`windows` and `factors` (lr windows)"
        )
    if not kinds[0]:
        missing = [k for k in ("windows", "factors") if k not in entry]
        if missing:
            raise GridError(
                f"invalid config: grid[{i}]: no `{missing[0]}`: an entry of lr windows needs windows and factors"
            )
        return
    valid = [k for k in recipe_keys if k not in NOT_CROSSED] + DOTTED
    for key in entry["cross"]:
        if key in NOT_CROSSED:
            raise GridError(f"invalid config: grid[{i}].cross.{key}: {NOT_CROSSED[key]}")
        if key not in valid:
            raise GridError(
                f"invalid config: grid[{i}].cross: unknown key {key!r}{did_you_mean(key, valid)}; a cross takes "
                "recipe keys (lr, weight_decay, batch_size, ...) and a schedule's or warmup's parameters by "
                "dotted key (schedule.pct_start, warmup.epochs)"
            )
        if any(isinstance(v, Mapping) for v in entry["cross"][key]):
            parts = [k for k in DOTTED if k.startswith(f"{key}.")][:3]
            raise GridError(
                f"invalid config: grid[{i}].cross.{key}: a mapping cannot name a variant; cross its parts by "
                f"dotted key ({', '.join(parts)}, ...), or write the variants under `variants:`"
            )
        fixed = _written(entry.get("recipe") or {}, key)
        if fixed is not None:
            raise GridError(
                f"invalid config: grid[{i}]: {key} is both swept (cross) and fixed (recipe: {fixed}); keep one"
            )


def _written(recipe: Mapping, key: str):
    """The value the entry's recipe gives a (dotted) key, or None; a schedule's key is its name."""
    head, _, param = key.partition(".")
    value = recipe.get(head)
    if isinstance(value, Mapping):
        return value.get(param or "name")
    return value if param in ("", "name") else None


def _cross(entry: Mapping, i: int) -> Sweep:
    keys = tuple(entry["cross"])
    values = tuple(tuple(_frozen(v) for v in entry["cross"][k]) for k in keys)
    pattern = entry.get("name") or default_pattern(keys, values)
    combos = list(itertools.product(*values))
    named = [(name_of(pattern, keys, combo, i), combo) for combo in combos]
    seen: dict[str, tuple] = {}
    for name, combo in named:
        if name in seen:
            raise GridError(
                f"invalid config: grid[{i}].name: {pattern!r} names two variants {name!r} "
                f"({_combo_text(keys, seen[name])} and {_combo_text(keys, combo)}): put every swept key in it, "
                f"e.g. name: {default_pattern(keys, values)!r}"
            )
        seen[name] = combo
    return Sweep(
        entry=i, keys=keys, values=values, variants=tuple(named), recipe=copy.deepcopy(entry.get("recipe") or {})
    )


def overrides_of(recipe: Mapping, combo: Mapping) -> dict:
    """A cross variant's overrides of the base recipe: the entry's recipe with the combination's values;
    a dotted key sets one parameter of the schedule or warmup (config.variant_train merges a schedule
    without `name` into the base one, as a written variant's)."""
    out = copy.deepcopy(dict(recipe))
    for key, value in combo.items():
        head, _, param = key.partition(".")
        value = list(value) if isinstance(value, tuple) else value
        if param in ("", "name") and head == "schedule":
            section = sched.as_mapping(out.get("schedule"))
            out["schedule"] = value if section is None else {**section, "name": value}
        elif not param:
            out[head] = value
        else:
            out[head] = {**(sched.as_mapping(out.get(head)) or {}), param: value}
    return out


def _windows(entry: Mapping, i: int) -> dict[str, dict]:
    """A windows x factors entry's variants: every window crossed with every factor (names as before
    crosses existed, so no run of such a grid is renamed or retrained)."""
    pattern = entry.get("name", WINDOWS_PATTERN)
    out = {}
    for w in entry["windows"]:
        for factor in entry["factors"]:
            name = _windows_name(pattern, i, start=w["start"], end=w["end"], factor=f"{factor:g}")
            if name in out:
                raise GridError(_collision(entry, i, name, f"by grid[{i}]"))
            out[name] = {
                **entry.get("recipe", {}),
                "lr_windows": [{"start": w["start"], "end": w["end"], "factor": factor}],
            }
    return out


def _windows_name(pattern: str, i: int, **fields) -> str:
    try:
        return pattern.format(**fields)
    except KeyError as exc:
        unknown = exc.args[0]
        problem = f"unknown field {{{unknown}}}{did_you_mean(unknown, fields)}"
    except (ValueError, IndexError) as exc:
        problem = f"not a name pattern ({exc})"
    raise GridError(
        f"invalid config: grid[{i}].name: {pattern!r}: {problem}; the fields are {{start}}, {{end}} and {{factor}}"
    )


def _collision(entry: Mapping, i: int, name: str, where: str) -> str:
    if "cross" not in entry:
        return (
            f"grid[{i}]: variant {name!r} is already defined; give the grid another `name` pattern "
            "(fields {start}, {end}, {factor})"
        )
    return (
        f"invalid config: grid[{i}]: variant {name!r} is already made {where}; give this entry a `name:` pattern "
        f"that sets it apart, e.g. name: {suggested_pattern(entry)!r}"
    )


# ------------------------------------------------------------------------------------------------ names


def default_pattern(keys: Sequence[str], values: Sequence[Sequence] = ()) -> str:
    """lr{lr}_wd{weight_decay}: each key's short name before its field; before a text or true/false value,
    with a hyphen (decay-{schedule.decay}), or the value alone where the short name is empty ({schedule})."""
    parts = []
    for key, vals in itertools.zip_longest(keys, values, fillvalue=()):
        short = _short(key)
        texts = short and any(isinstance(v, (str, bool)) for v in vals)
        parts.append(short + ("-" if texts else "") + "{" + key + "}")
    return "_".join(parts)


def suggested_pattern(entry: Mapping) -> str:
    """A pattern naming the entry's shared recipe before its keys: onecycle_pct_start{schedule.pct_start}."""
    recipe = entry.get("recipe") or {}
    schedule = sched.as_mapping(recipe.get("schedule")) or {}
    scalars = [f"{k}{_text(v)}" for k, v in recipe.items() if not isinstance(v, (Mapping, list))]
    prefix = schedule.get("name") or (scalars[0] if scalars else "mine")
    return f"{prefix}_{default_pattern(tuple(entry['cross']), tuple(entry['cross'].values()))}"


def _short(key: str) -> str:
    return SHORT.get(key, key.split(".", 1)[-1])


_FIELD = re.compile(r"\{([^{}]*)\}")


def name_of(pattern: str, keys: Sequence[str], combo: Sequence, i: int) -> str:
    """The pattern with each {key} replaced by its value; the result must be a variant name."""
    values = dict(zip(keys, combo, strict=True))
    problem = None
    for field in _FIELD.findall(pattern):
        if field not in values:
            problem = f"unknown field {{{field}}}{did_you_mean(field, keys)}"
            break
    if problem is None and ("{" in _FIELD.sub("", pattern) or "}" in _FIELD.sub("", pattern)):
        problem = "not a name pattern (a brace without its pair)"
    if problem:
        fields = ", ".join("{" + k + "}" for k in keys)
        raise GridError(f"invalid config: grid[{i}].name: {pattern!r}: {problem}; the fields are {fields}")
    name = _FIELD.sub(lambda m: _text(values[m.group(1)]), pattern)
    if not NAME.match(name):
        raise GridError(
            f"invalid config: grid[{i}]: the variant name {name!r} is not a valid name (letters, digits, '.', '_', "
            f"'-', at most 64, starting with a letter or digit); give the entry a shorter `name:` pattern"
        )
    return name


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}".replace("e+", "e")  # 1e+06 -> 1e06: '+' is not a name's character
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "-".join("x".join(map(_text, v)) if isinstance(v, (tuple, list)) else _text(v) for v in value)
    return str(value)


def _combo_text(keys: Sequence[str], combo: Sequence) -> str:
    return ", ".join(f"{k} {_text(v)}" for k, v in zip(keys, combo, strict=True))
