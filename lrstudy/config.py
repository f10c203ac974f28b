"""The study's configuration beyond what the JSON schema can say: per-variant run configs, cross-key
checks that name the offending key, and the config hash that ties a checkpoint to its run."""

from __future__ import annotations

import copy
import hashlib
import json

import yaml

from .schedule import default_milestones

# Keys that change what a run computes. `device`, `compile` and `checkpoint_every` are left out of the
# hash on purpose: a run resumed on another device or with another checkpoint cadence is the same run.
_NOT_HASHED = {"device", "compile", "checkpoint_every", "eval_batch_size"}


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def replace_study_lists(config: dict, command_line_config: dict) -> None:
    """`variants` and `seeds` given on the command line (--configfile or --config) replace the defaults
    as a whole: a small study must not inherit the default variants. Snakemake deep-merges dicts."""
    for key in ("variants", "seeds"):
        if key in command_line_config:
            config[key] = copy.deepcopy(command_line_config[key])


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's loaders keep the last of two equal keys silently; a study with two variants of one name
    would quietly lose one."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{node.start_mark.name}, line {key_node.start_mark.line + 1}: "
                                  f"key {key!r} appears twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def check_unique_keys(paths) -> None:
    for path in paths:
        with open(path) as fh:
            yaml.load(fh, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def normalise_variants(config: dict) -> None:
    """A variant written as `name:` (null) is the base recipe unchanged."""
    if isinstance(config.get("variants"), dict):
        config["variants"] = {name: ({} if v is None else v) for name, v in config["variants"].items()}


def describe_schema_error(error: Exception) -> str:
    """'train.epochs: 0 is less than the minimum of 1' from the jsonschema error inside Snakemake's."""
    import jsonschema

    found = error.__context__  # Snakemake raises its WorkflowError while handling jsonschema's error
    if not isinstance(found, jsonschema.ValidationError):
        return str(error)
    key = ".".join(str(p) for p in found.absolute_path) or "(top level)"
    return f"invalid config: {key}: {found.message}"


def run_config(config: dict, variant: str) -> dict:
    """The complete train config of one variant: the base recipe with the variant's overrides."""
    if variant not in config["variants"]:
        raise ConfigError(f"variant {variant!r} is not configured (configured: {', '.join(config['variants'])})")
    merged = copy.deepcopy(config["train"])
    merged.update(copy.deepcopy(config["variants"][variant] or {}))
    return merged


def check_study(config: dict) -> None:
    """Checks that relate keys to each other; raises ConfigError naming the key."""
    for variant in config["variants"]:
        check_run(run_config(config, variant), where=f"variants.{variant}")
    check_run(config["train"], where="train")


def check_run(train: dict, where: str) -> None:
    epochs = train["epochs"]
    windows = train.get("lr_windows") or []
    for i, w in enumerate(windows):
        key = f"{where}.lr_windows[{i}]"
        if w["end"] <= w["start"]:
            raise ConfigError(f"{key}: end ({w['end']}) must be greater than start ({w['start']})")
        if w["start"] > epochs or w["end"] > epochs + 1:
            raise ConfigError(
                f"{key}: window [{w['start']}, {w['end']}) lies outside the run's epochs 1..{epochs} "
                f"(end is the first epoch after the window, at most {epochs + 1})"
            )
    spans = sorted((w["start"], w["end"], i) for i, w in enumerate(windows))
    for (s1, e1, i1), (s2, _, i2) in zip(spans, spans[1:]):
        if s2 < e1:
            raise ConfigError(f"{where}.lr_windows[{i1}] and [{i2}] overlap; give one window per epoch range")
    if train["schedule"] == "step":
        milestones = train.get("step_milestones") or default_milestones(epochs)
        bad = [m for m in milestones if m >= epochs]
        if bad:
            raise ConfigError(f"{where}.step_milestones: {bad} not inside the run of {epochs} epochs")


def config_hash(train: dict, seed: int, dataset: dict) -> str:
    """A short hash of everything that decides a run's numbers."""
    payload = {
        "train": {k: v for k, v in sorted(train.items()) if k not in _NOT_HASHED},
        "seed": seed,
        "dataset": {k: dataset.get(k) for k in ("md5", "sha256", "train_size", "test_size")},
    }
    return json_hash(payload)


def json_hash(obj) -> str:
    """16 hex digits of the sha256 of `obj` as canonical JSON: the same data gives the same hash."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
