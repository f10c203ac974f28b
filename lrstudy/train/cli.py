"""`lrstudy-train`: one run outside the workflow, with the published run's command-line flags.

    lrstudy-train --archive cifar-10-python.tar.gz --epochs 200 --lr 0.1 --batch-size 256 --out runs/a
    lrstudy-train ... --schedule '{name: step, milestones: [101, 151]}' --nesterov --lr-window 50:100:5
    lrstudy-train ... --schedule '{name: onecycle, pct_start: 0.25}' --lr-update step
    lrstudy-train ... --schedule wsd --warmup '{epochs: 5}' --lr-update step
    lrstudy-train ... --resume        # continue from runs/a/checkpoint.pt after an interruption

Same engine, same files (metrics.csv, summary.json, model.pt) as the workflow's `train` rule. There is one
flag per recipe key (config.yaml's `train:`, also the old spelling's --step-milestones and --step-gamma),
made from the config schema, so any study's run can be rerun here: `recipe_flags(recipe)` writes the flags
of a recipe. A schedule or warmup is written as in the config, a family's name or a YAML mapping.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import yaml

from lrstudy.config import (
    SCHEMA_FILE,
    ConfigError,
    Execution,
    Recipe,
    default_parts,
    defaults,
    recipe_of,
    variant_train,
)
from lrstudy.data.cifar10 import DamagedCacheError, DatasetError, add_source_arguments, source_cache
from lrstudy.logs import run_logged
from lrstudy.train.device import DeviceError
from lrstudy.train.run import RunBusyError, RunFiles, RunSpec, execute, skip_the_last_collection, tensorboard_log

TYPES = {"integer": int, "number": float}
# Recipe keys whose flag is not the key's name: a window per flag, repeated.
FLAG_NAMES = {"lr_windows": "lr-window"}
MAPPINGS = ("schedule", "warmup")  # a name (schedule) or a YAML mapping, as in the config


def parse_window(text: str) -> dict:
    try:
        start, end, factor = text.split(":")
        return {"start": int(start), "end": int(end), "factor": float(factor)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lr-window {text!r}: expected START:END:FACTOR, e.g. 50:100:5") from None


def parse_milestones(text: str) -> list[int] | None:
    if text == "default":
        return None
    try:
        return [int(m) for m in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--step-milestones {text!r}: expected epochs separated by commas, e.g. 100,150, or `default`"
        ) from None


def parse_yaml(text: str):
    """A schedule's name, or a mapping in YAML's flow style: {name: onecycle, pct_start: 0.25}; null."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not YAML ({' '.join(str(exc).split())})") from None


def flag(name: str) -> str:
    return "--" + FLAG_NAMES.get(name, name.replace("_", "-"))


def add_recipe_arguments(ap: argparse.ArgumentParser) -> None:
    """One flag per recipe key of the config schema, with its choices and help; default: config.yaml's."""
    schema = yaml.safe_load(SCHEMA_FILE.read_text())["$defs"]["recipe_keys"]["properties"]
    group = ap.add_argument_group("the recipe (config.yaml's train: keys; defaults from config.yaml)")
    for key, spec in schema.items():
        help_ = " ".join(spec.get("description", "").split()) or None
        if key == "lr_windows":
            kind = dict(type=parse_window, action="append", metavar="START:END:FACTOR")
            help_ = "multiply the lr by FACTOR for epochs START <= e < END (repeatable; replaces config.yaml's)"
        elif key == "step_milestones":
            kind = dict(type=parse_milestones, metavar="E1,E2,...|default")
        elif key in MAPPINGS:
            kind = dict(type=parse_yaml, metavar="NAME|{...}" if key == "schedule" else "{...}|null")
        elif spec.get("type") == "boolean":
            kind = dict(action=argparse.BooleanOptionalAction)
        elif "enum" in spec:
            kind = dict(choices=spec["enum"])
        else:
            kind = dict(type=TYPES[spec["type"]])
        # Absent unless given (argparse.SUPPRESS): config.yaml's value then applies.
        group.add_argument(flag(key), dest=key, default=argparse.SUPPRESS, help=help_, **kind)


def recipe_flags(recipe: Recipe) -> list[str]:
    """The flags that give `recipe` (the inverse of add_recipe_arguments): a study's run on the command line."""
    out = []
    for key, value in recipe.identity().items():
        if key == "lr_windows":
            out += [a for w in value for a in (flag(key), f"{w['start']}:{w['end']}:{w['factor']!r}")]
        elif key == "step_milestones":
            out += [flag(key), "default" if value is None else ",".join(map(str, value))]
        elif isinstance(value, bool):
            out.append(flag(key) if value else "--no-" + key.replace("_", "-"))
        elif key in MAPPINGS:
            out += [flag(key), json.dumps(value)]  # JSON is YAML
        else:
            out += [flag(key), repr(value) if isinstance(value, float) else str(value)]
    return out


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, dict, Execution]:
    """The options, the recipe's train mapping (config.yaml's, with the flags given over it: recipe_of
    checks it) and the execution settings."""
    _, execution = default_parts()  # config.yaml: the workflow's defaults are this command's defaults
    ap = argparse.ArgumentParser(
        prog="lrstudy-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_source_arguments(ap)
    ap.add_argument("--out", type=Path, required=True, help="directory for metrics.csv, summary.json, model.pt")
    add_recipe_arguments(ap)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default=execution.device)
    ap.add_argument("--compile", action="store_true", help="torch.compile (CUDA only)")
    ap.add_argument("--cuda-graph", action="store_true", help="the whole train step in CUDA graphs (CUDA only)")
    ap.add_argument(
        "--deterministic", action="store_true", default=execution.deterministic, help="deterministic CUDA kernels"
    )
    ap.add_argument("--threads", type=int, default=execution.cpu_threads, help="torch threads of a CPU run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tensorboard", type=Path, metavar="DIR", help="write TensorBoard event files to DIR as it trains")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it matches")
    args = ap.parse_args(argv)
    for key in ("epochs", "batch_size", "threads"):
        if getattr(args, key, 1) < 1:
            ap.error(f"--{key.replace('_', '-')} must be positive")
    given = {k: v for k, v in vars(args).items() if k in _recipe_keys()}
    train = variant_train(defaults()["train"], given)
    execution = dataclasses.replace(
        execution,
        device=args.device,
        compile=args.compile,
        cuda_graph=args.cuda_graph,
        deterministic=args.deterministic,
        cpu_threads=args.threads,
        tensorboard=args.tensorboard is not None,
    )
    return args, train, execution


def _recipe_keys() -> list[str]:
    return list(yaml.safe_load(SCHEMA_FILE.read_text())["$defs"]["recipe_keys"]["properties"])


def main(argv: list[str] | None = None) -> None:
    args, train, execution = parse(argv)
    out = args.out
    files = RunFiles.in_folder(out, tensorboard=args.tensorboard)

    def run() -> None:
        spec = RunSpec(recipe_of(train, where="command line"), execution, args.seed, variant="cli")
        cache = source_cache(args, out)
        try:
            execute(spec, cache, files, on_epoch=tensorboard_log(spec, files), resume=args.resume)
        except DamagedCacheError as exc:
            raise DamagedCacheError(
                f"{exc} Rebuild it in the study that made it (snakemake --forcerun prepare_data, with "
                "--config study=NAME for a named study), or give --archive instead of --data"
            ) from None

    out.mkdir(parents=True, exist_ok=True)
    # Appended to: a second command refused by the run's lock must not empty the running trainer's log.
    run_logged(out / "train.log", run, expected=(DatasetError, DeviceError, ConfigError, RunBusyError), mode="a")


if __name__ == "__main__":
    main()
    skip_the_last_collection()  # a process of its own ends here (main() is also called by tests and tools)
