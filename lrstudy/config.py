"""The study's configuration, parsed once into frozen, typed objects.

One source of defaults: the project's `config.yaml`. A study config (a `--configfile`, `--config`, or the
config a named study remembered) overrides it key by key, except `variants` and `seeds`, which replace
the defaults as a whole (a small study must not inherit the four default variants).

A run is defined by its **recipe** (model, data, optimiser, schedule, precision) and its seed: only these
are a training job's parameters and the run's hash. **Execution settings** (device, compile, evaluation
batch, checkpoint interval, CPU threads) say how it is computed; they are recorded in summary.json but
never retrain a finished run.

The JSON schema (workflow/schemas/config.schema.yaml) checks types and ranges; the checks here relate keys
to each other and name the offending key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from lrstudy import grid
from lrstudy import schedule as sched
from lrstudy.schedule import Schedule, ScheduleError, Warmup
from lrstudy.suggest import did_you_mean

DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "config.yaml"
SCHEMA_FILE = DEFAULTS_FILE.parent / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_STUDY = "default"
# Keys whose value given by a study replaces the default as a whole instead of being merged into it.
REPLACED_WHOLE = ("variants", "seeds", "grid")
ALPHA = 0.05  # two-sided significance level of every test and CI (95%)
MULTIPLICITY = ("holm", "none")  # config stats.multiplicity: Holm's step-down, or each comparison on its own


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def snakemake_for(study: str) -> str:
    """The command line that acts on a study: without `--config study=NAME` it would act on the default."""
    return "snakemake" if study == DEFAULT_STUDY else f"snakemake --config study={study}"


# The schedules a recipe could name before schedules were mappings.
LEGACY_FAMILIES = ("cosine", "step", "constant")


# ------------------------------------------------------------------------------------------ typed parts


@dataclass(frozen=True)
class Recipe:
    """What defines a run (with its seed): changing any of these gives other numbers."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: Schedule  # the family and every parameter (lrstudy.schedule)
    warmup: Warmup | None
    lr_update: str  # epoch | step: when the schedule advances
    lr_windows: tuple[tuple[int, int, float], ...]  # (start, end, factor), 1-based, end exclusive
    width: int
    precision: str
    # The old spelling's step_milestones and step_gamma beside a cosine or constant schedule: they never
    # changed a run's numbers, but were part of its identity, so a run made before keeps its identity.
    inert_step_keys: tuple[tuple[int, ...] | None, float] = (None, sched.LEGACY_STEP_GAMMA)

    def as_dict(self) -> dict:
        """The recipe as summary.json's `config` records it: the schedule as a mapping with its name and
        every parameter (recipe_of reads it back)."""
        d = {f: getattr(self, f) for f in RECIPE_KEYS}
        d["schedule"] = self.schedule.as_dict()
        d["warmup"] = None if self.warmup is None else self.warmup.as_dict()
        d["lr_windows"] = [{"start": s, "end": e, "factor": f} for s, e, f in self.lr_windows]
        return d

    def identity(self) -> dict:
        """What names the run (its params text and hash). A recipe that the schedules before warmup,
        per-step updates and the other families could write (cosine to 0, step or constant, no warmup,
        updated per epoch) keeps the form it had then: `schedule` a name beside `step_milestones` and
        `step_gamma`, so that no finished run is retrained for a change of spelling."""
        s = self.schedule
        old = s.name in LEGACY_FAMILIES and (s.name != "cosine" or s["eta_min"] == 0.0)
        if not (old and self.warmup is None and self.lr_update == "epoch"):
            return self.as_dict()
        d = {k: v for k, v in self.as_dict().items() if k not in ("warmup", "lr_update")}
        milestones, gamma = (s["milestones"], s["gamma"]) if s.name == "step" else self.inert_step_keys
        return {
            **d,
            "schedule": s.name,
            "step_milestones": None if milestones is None else list(milestones),
            "step_gamma": gamma,
        }


@dataclass(frozen=True)
class Execution:
    """How runs are computed. Never part of a run's identity: a run resumed on another device, or with
    another evaluation batch, is the same run."""

    device: str
    compile: bool
    cuda_graph: bool
    deterministic: bool
    eval_batch_size: int
    checkpoint_every: int
    cpu_threads: int
    runs_per_gpu: int
    tensorboard: bool

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Dataset:
    url: str
    md5: str | None
    archive: str | None
    train_limit: int | None
    test_limit: int | None
    download_retries: int

    def identity(self) -> dict:
        """What the decoded data depends on: the archive's checksum and the subsets, never a path."""
        return {
            "md5": self.md5.lower() if self.md5 else None,
            "train_limit": self.train_limit,
            "test_limit": self.test_limit,
        }


@dataclass(frozen=True)
class Adaptive:
    """The adaptive design's numbers (config key `adaptive`): stages of `stage_seeds` seeds (as many as
    `seeds` lists) up to `max_seeds` per variant, powered for a difference of `effect_pct` points."""

    stage_seeds: int
    max_seeds: int
    effect_pct: float
    power: float

    def __post_init__(self):
        if self.stage_seeds < 2:
            raise ConfigError(
                f"adaptive: seeds lists {self.stage_seeds} seed(s); the first stage needs at least 2 for a test"
            )
        if self.max_seeds < 2 * self.stage_seeds:
            raise ConfigError(
                f"adaptive.max_seeds: {self.max_seeds} leaves no second stage; give at least "
                f"{2 * self.stage_seeds} (stages are as large as `seeds`, {self.stage_seeds})"
            )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Seeds per stage: `stage_seeds` each, the remainder in a last stage of its own (two seeds or more)
        or in the one before (one seed has no spread to test with)."""
        full, rest = divmod(self.max_seeds, self.stage_seeds)
        sizes = [self.stage_seeds] * full
        if rest >= 2:
            sizes.append(rest)
        else:
            sizes[-1] += rest
        return tuple(sizes)

    def seeds_by_stage(self, seeds: Sequence[int]) -> list[list[int]]:
        """The seeds of each stage: the configured ones, then numbers after the largest configured seed."""
        out, first = [sorted(int(s) for s in seeds)], max(seeds) + 1
        for size in self.sizes[1:]:
            out.append(list(range(first, first + size)))
            first += size
        return out


@dataclass(frozen=True)
class Stats:
    """How the verdicts are tested (config keys `stats` and `adaptive`): the two-sided level alpha, the
    correction for comparing several variants with one reference, and, for an adaptive design, its
    numbers (None: a fixed design, every variant runs the configured seeds). Plain numbers: the analysis
    (lrstudy.analysis) computes from them; a new statistical setting is a field here."""

    multiplicity: str = "holm"
    alpha: float = ALPHA
    adaptive: Adaptive | None = None

    def __post_init__(self):
        if self.multiplicity not in MULTIPLICITY:
            raise ConfigError(f"stats.multiplicity: {self.multiplicity!r} is none of {', '.join(MULTIPLICITY)}")

    def run_seeds(self, seeds: Sequence[int]) -> list[int]:
        """Every seed a run of a study with these `seeds` may have: those, and the later stages' if adaptive."""
        seeds = [int(s) for s in seeds]
        return seeds if self.adaptive is None else [s for stage in self.adaptive.seeds_by_stage(seeds) for s in stage]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Study:
    name: str
    dataset: Dataset
    recipes: Mapping[str, Recipe]  # variant -> recipe, in config order
    seeds: tuple[int, ...]
    execution: Execution
    stats: Stats
    sweeps: tuple[grid.Sweep, ...] = ()  # the grid's cross entries: which variant is which combination

    @property
    def variants(self) -> list[str]:
        return list(self.recipes)

    @property
    def reference(self) -> str:
        return "baseline" if "baseline" in self.recipes else self.variants[0]

    @property
    def outdir(self) -> str:
        """Where the study's files live, relative to the project: the default study at the top."""
        return "." if self.name == DEFAULT_STUDY else f"studies/{self.name}"

    @property
    def run_seeds(self) -> list[int]:
        """Every seed a run may have: the configured ones, and with `adaptive` the later stages'."""
        return self.stats.run_seeds(self.seeds)


RECIPE_KEYS = [f.name for f in fields(Recipe) if f.name != "inert_step_keys"]
EXECUTION_KEYS = [f.name for f in fields(Execution)]


# ------------------------------------------------------------------------------------------- defaults


def load_yaml(path: str | Path) -> dict:
    """A config file as a mapping; a clear error naming the file otherwise (also for a key written twice)."""
    path = Path(path)
    try:
        with open(path) as fh:
            data = yaml.load(fh, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; give it the keys to change (see config.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config file must be a mapping of keys (see config.yaml), this one holds a {type(data).__name__}"
        )
    return data


def defaults() -> dict:
    return load_yaml(DEFAULTS_FILE)


def merge(base: dict, override: Mapping) -> dict:
    """`override` over `base`, dicts merged key by key, REPLACED_WHOLE keys replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in REPLACED_WHOLE and isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's loaders keep the last of two equal keys silently; a study with two variants of one name
    would quietly lose one."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"{node.start_mark.name}, line {key_node.start_mark.line + 1}: key {key!r} appears twice"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# -------------------------------------------------------------------------------- checks before schema


def check_names_and_numbers(config: Mapping) -> None:
    """What the schema lets through: YAML names read as numbers or booleans, NaN and infinity, and
    execution settings written in the recipe."""
    variants = config.get("variants")
    if isinstance(variants, Mapping):
        for name in variants:
            if not isinstance(name, str):
                raise ConfigError(
                    f"variants: the name {name!r} is read by YAML as a {type(name).__name__}, not a name; "
                    f"quote it (e.g. '{name}': ...) or choose a name that starts with a letter"
                )
    for key, value in _leaves(config):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"invalid config: {key}: {value} is not a finite number")
    for where, section in [("train", config.get("train"))] + [
        (f"variants.{v}", s) for v, s in (variants or {}).items() if isinstance(variants, Mapping)
    ]:
        for key in EXECUTION_KEYS:
            if isinstance(section, Mapping) and key in section:
                raise ConfigError(
                    f"{where}.{key} is an execution setting, not part of the recipe: "
                    f"move it under `execution:` (it applies to every run)"
                )


def _leaves(obj, prefix=""):
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def describe_schema_error(error: Exception) -> str:
    """'train.epochs: 0 is less than the minimum of 1' from the jsonschema error inside Snakemake's; an
    unknown key with the closest valid one, a number YAML read as text with how to write it."""
    import jsonschema

    found = error if isinstance(error, jsonschema.ValidationError) else error.__context__
    if not isinstance(found, jsonschema.ValidationError):
        return str(error)
    key = _key_path(found.absolute_path) or "(top level)"
    message = found.message
    if found.validator == "additionalProperties" and isinstance(found.instance, dict):
        valid = found.schema.get("properties", {})
        unknown = [k for k in found.instance if k not in valid]
        message = "; ".join(f"unknown key {k!r}{did_you_mean(k, valid)}" for k in unknown) or message
    elif found.validator == "type" and isinstance(found.instance, str) and _is_number(found.instance):
        if isinstance(yaml.safe_load(found.instance), (int, float)):
            # A config file reads it as a number: only Snakemake's --config reads "train={epochs: 3}" as text.
            message += (
                f" (snakemake --config reads every value inside {{...}} as text: set {key} in a file given "
                "with --configfile)"
            )
        else:
            message += (
                f" (YAML reads {found.instance} as text: write it with a decimal point and a signed exponent, "
                f"e.g. {float(found.instance):.1e})"
            )
    return f"invalid config: {key}: {message}"


def _key_path(parts) -> str:
    """grid[0].factors[1]: list indices in brackets, keys joined by dots."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_grid(config: Mapping) -> None:
    """The grid against its part of the schema, before it is expanded (expanding reads its keys); each value
    a cross gives a recipe key against that key's schema, so that a bad one is named where it is written
    (grid[0].cross.lr[2]), not in the variant made from it."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    grid_schema = copy.deepcopy(schema["properties"]["grid"])
    cross = grid_schema["items"]["properties"]["cross"]
    cross["properties"] = {
        key: {**cross["additionalProperties"], "items": {"$ref": f"#/$defs/recipe_keys/properties/{key}"}}
        for key in schema["$defs"]["recipe_keys"]["properties"]
    }
    only_grid = {**schema, "required": [], "properties": {"grid": grid_schema}}
    try:
        jsonschema.validate({"grid": config.get("grid")}, only_grid)
    except jsonschema.ValidationError as error:
        raise ConfigError(describe_schema_error(error)) from None


# ----------------------------------------------------------------------------------------------- grid


def expand_grid(config: dict) -> None:
    """`grid:` entries -> named variants, in place (lrstudy/grid.py: windows x factors, and crosses of any
    recipe keys); checked like written ones, and never under a name already taken."""
    try:
        grid.expand(config.get("grid"), config.setdefault("variants", {}), RECIPE_KEYS)
    except grid.GridError as e:
        raise ConfigError(str(e)) from None


def sweeps_of(config: Mapping) -> tuple[grid.Sweep, ...]:
    """The cross entries of an expanded config's grid: which variant is which combination."""
    return tuple(grid.expand(config.get("grid"), {}, RECIPE_KEYS))


# ------------------------------------------------------------------------------------------- parsing


def recipe_of(train: Mapping, where: str) -> Recipe:
    """A checked Recipe from a complete train mapping; errors name `where`."""
    recipe = parsed_recipe(train, where)
    # `schedule: step` with step_milestones beside it: an error names the key as written.
    check_recipe(recipe, where, old_spelling=train["schedule"] == "step")
    return recipe


def parsed_recipe(train: Mapping, where: str) -> Recipe:
    """A Recipe from a train mapping, unchecked against its run: a config's, a params text, or a run's
    summary.json `config` (also one written before warmup and lr_update existed: none, per epoch)."""
    try:
        schedule, inert = sched.written_schedule(train)
        warmup = sched.warmup_of(train.get("warmup"))
    except ScheduleError as e:
        raise ConfigError(f"{where}.{e}") from None
    return Recipe(
        epochs=int(train["epochs"]),
        batch_size=int(train["batch_size"]),
        lr=float(train["lr"]),
        momentum=float(train["momentum"]),
        nesterov=bool(train["nesterov"]),
        weight_decay=float(train["weight_decay"]),
        schedule=schedule,
        warmup=warmup,
        lr_update=str(train.get("lr_update", "epoch")),
        lr_windows=tuple((int(w["start"]), int(w["end"]), float(w["factor"])) for w in train["lr_windows"] or []),
        width=int(train["width"]),
        precision=str(train["precision"]),
        inert_step_keys=inert,
    )


def variant_train(base: Mapping, over: Mapping) -> dict:
    """A variant's complete train mapping: its keys over the base recipe's. A `schedule` mapping without
    `name` changes parameters of the base schedule (`{pct_start: 0.4}`), and a `warmup` mapping those of
    the base warmup; with `name`, or a name alone, it replaces the schedule."""
    out = {**base, **over}
    schedule, warmup = over.get("schedule"), over.get("warmup")
    if isinstance(schedule, Mapping) and "name" not in schedule and isinstance(base.get("schedule"), (str, Mapping)):
        out["schedule"] = {**sched.as_mapping(base["schedule"]), **schedule}
    if isinstance(warmup, Mapping) and isinstance(base.get("warmup"), Mapping):
        out["warmup"] = {**base["warmup"], **warmup}
    return out


def check_recipe(r: Recipe, where: str, steps_per_epoch: int | None = None, old_spelling: bool = False) -> None:
    """The recipe against its run: windows inside it and not overlapping, the schedule's epochs inside it
    (lrstudy.schedule.problems; with `steps_per_epoch`, also what depends on it)."""
    for i, (start, end, _) in enumerate(r.lr_windows):
        key = f"{where}.lr_windows[{i}]"
        if end <= start:
            raise ConfigError(f"{key}: end ({end}) must be greater than start ({start})")
        if start > r.epochs or end > r.epochs + 1:
            raise ConfigError(
                f"{key}: window [{start}, {end}) lies outside the run's epochs 1..{r.epochs} "
                f"(end is the first epoch after the window, at most {r.epochs + 1})"
            )
    spans = sorted((s, e, i) for i, (s, e, _) in enumerate(r.lr_windows))
    for (_s1, e1, i1), (s2, _, i2) in zip(spans, spans[1:], strict=False):
        if s2 < e1:
            raise ConfigError(f"{where}.lr_windows[{i1}] and [{i2}] overlap; give one window per epoch range")
    for key, why in sched.problems(r, steps_per_epoch):
        raise ConfigError(
            f"{where}.{'step_milestones' if old_spelling and key == 'schedule.milestones' else key}: {why}"
        )


def recipe_param(recipe: Recipe) -> str:
    """A recipe as a training job's params value (canonical JSON of its identity: the same recipe, the same
    text, so that changing one variant reruns that variant only). recipe_from_param reads it back, losslessly."""
    return json.dumps(recipe.identity(), sort_keys=True)


def recipe_from_param(text: str, where: str) -> Recipe:
    return recipe_of(json.loads(text), where)


def execution_of(execution: Mapping) -> Execution:
    return Execution(**{k: execution[k] for k in EXECUTION_KEYS})


def default_parts() -> tuple[Recipe, Execution]:
    """config.yaml's recipe and execution settings: the defaults of the commands that run outside the workflow."""
    config = defaults()
    return recipe_of(config["train"], where=f"{DEFAULTS_FILE.name}: train"), execution_of(config["execution"])


def stats_of(config: Mapping) -> Stats:
    """The study's Stats from a complete config (`stats`, `adaptive`, and `seeds`: an adaptive stage's size)."""
    adaptive = config.get("adaptive")
    return Stats(
        multiplicity=str(config["stats"]["multiplicity"]),
        adaptive=None
        if not adaptive
        else Adaptive(
            stage_seeds=len(config["seeds"]),
            max_seeds=int(adaptive["max_seeds"]),
            effect_pct=float(adaptive["effect_pct"]),
            power=float(adaptive["power"]),
        ),
    )


def stats_param(stats: Stats) -> str:
    """Stats as a rule's params value (canonical JSON, like recipe_param); stats_from_param reads it back."""
    return json.dumps(stats.as_dict(), sort_keys=True)


def stats_from_param(text: str) -> Stats:
    d = json.loads(text)
    return Stats(**{**d, "adaptive": None if d["adaptive"] is None else Adaptive(**d["adaptive"])})


def parse_study(config: Mapping) -> Study:
    """The typed study from a complete config (defaults merged, schema-validated)."""
    base = config["train"]
    recipes = {}
    recipe_of(base, "train")
    sweeps = sweeps_of(config)
    made_by = {name: s.entry for s in sweeps for name in s.names}
    for name, over in config["variants"].items():
        try:
            recipes[name] = recipe_of(variant_train(base, over or {}), f"variants.{name}")
        except ConfigError as e:
            if name not in made_by:
                raise
            raise ConfigError(f"{e} (the variant {name} is made by grid[{made_by[name]}])") from None
    ds = config["dataset"]
    return Study(
        name=config["study"],
        dataset=Dataset(**{f.name: ds[f.name] for f in fields(Dataset)}),
        recipes=recipes,
        seeds=tuple(int(s) for s in config["seeds"]),
        execution=execution_of(config["execution"]),
        stats=stats_of(config),
        sweeps=sweeps,
    )


def prepare_config(config: dict) -> None:
    """In place, before the schema: null variants as {}, the grid expanded, and what the schema misses."""
    if isinstance(config.get("variants"), dict):
        config["variants"] = {n: ({} if v is None else v) for n, v in config["variants"].items()}
    check_names_and_numbers(config)
    check_grid(config)
    expand_grid(config)


def checked_study(config: dict, schema: Path = SCHEMA_FILE) -> Study:
    """What the workflow does with an assembled config (lrstudy.studies.assemble), in place: prepared,
    checked against the JSON schema, parsed. A ConfigError names the offending key."""
    # Snakemake's validate, so that the workflow and this function judge a config alike; imported here
    # because only the workflow needs Snakemake.
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    prepare_config(config)
    try:
        validate(config, str(schema), set_default=False)
    except WorkflowError as error:
        raise ConfigError(describe_schema_error(error)) from None
    return parse_study(config)


def shareable(config: Mapping) -> dict:
    """The config as another machine reruns the study from it: without `dataset.archive`, a path to this
    machine's copy of the archive (the md5 beside it still names the data)."""
    out = copy.deepcopy(dict(config))
    if isinstance(out.get("dataset"), dict):
        out["dataset"] = {k: v for k, v in out["dataset"].items() if k != "archive"}
    return out


# -------------------------------------------------------------------------------------------- hashing


def run_hash(recipe: Recipe, seed: int, dataset: Mapping) -> str:
    """A short hash of everything that decides a run's numbers: recipe, seed and the data's checksums."""
    payload = {
        "recipe": recipe.identity(),
        "seed": seed,
        "dataset": {k: dataset.get(k) for k in ("md5", "sha256", "train_size", "test_size")},
    }
    return json_hash(payload)


def json_hash(obj) -> str:
    """16 hex digits of the sha256 of `obj` as canonical JSON: the same data gives the same hash."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
