"""`lrstudy-train`: one run outside the workflow, with the published run's command-line flags.

    lrstudy-train --archive cifar-10-python.tar.gz --epochs 200 --lr 0.1 --batch-size 256 --out runs/a
    lrstudy-train ... --schedule step --step-milestones 100,150 --step-gamma 0.1 --nesterov --lr-window 50:100:5
    lrstudy-train ... --resume        # continue from runs/a/checkpoint.pt after an interruption

Same engine, same files (metrics.csv, summary.json, model.pt) as the workflow's `train` rule. There is one
flag per recipe key (config.yaml's `train:`), made from the Recipe's fields, so any study's run can be
rerun here: `recipe_flags(recipe)` writes the flags of a recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import fields
from pathlib import Path

import yaml

from lrstudy.config import SCHEMA_FILE, ConfigError, Execution, Recipe, check_recipe, default_parts
from lrstudy.data.cifar10 import DatasetError, add_source_arguments, source_cache
from lrstudy.logs import run_logged
from lrstudy.train.device import DeviceError
from lrstudy.train.run import RunBusyError, RunFiles, RunSpec, execute, tensorboard_log

TYPES = {"int": int, "float": float, "str": str}
# Recipe fields whose flag is not the field's name: a window per flag, repeated.
FLAG_NAMES = {"lr_windows": "lr-window"}


def parse_window(text: str) -> tuple[int, int, float]:
    try:
        start, end, factor = text.split(":")
        return int(start), int(end), float(factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lr-window {text!r}: expected START:END:FACTOR, e.g. 50:100:5") from None


def parse_milestones(text: str) -> tuple[int, ...] | None:
    if text == "default":
        return None
    try:
        return tuple(int(m) for m in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--step-milestones {text!r}: expected epochs separated by commas, e.g. 100,150, or `default`"
        ) from None


def flag(name: str) -> str:
    return "--" + FLAG_NAMES.get(name, name.replace("_", "-"))


def add_recipe_arguments(ap: argparse.ArgumentParser, base: Recipe) -> None:
    """One flag per Recipe field, its default from config.yaml, its choices and help from the config schema."""
    schema = yaml.safe_load(SCHEMA_FILE.read_text())["$defs"]["recipe_keys"]["properties"]
    group = ap.add_argument_group("the recipe (config.yaml's train: keys; defaults from config.yaml)")
    for f in fields(Recipe):
        spec, default = schema[f.name], getattr(base, f.name)
        help_ = " ".join(spec.get("description", "").split()) or None
        if f.name == "lr_windows":
            kind = dict(type=parse_window, action="append", metavar="START:END:FACTOR")
            help_ = "multiply the lr by FACTOR for epochs START <= e < END (repeatable; replaces config.yaml's)"
            default = None  # appended to a fresh list; None: config.yaml's windows
        elif f.name == "step_milestones":
            kind = dict(type=parse_milestones, metavar="E1,E2,...|default")
        elif f.type == "bool":
            kind = dict(action=argparse.BooleanOptionalAction)
        elif "enum" in spec:
            kind = dict(choices=spec["enum"])
        else:
            kind = dict(type=TYPES[f.type])
        group.add_argument(flag(f.name), dest=f.name, default=default, help=help_, **kind)


def recipe_flags(recipe: Recipe) -> list[str]:
    """The flags that give `recipe` (the inverse of add_recipe_arguments): a study's run on the command line."""
    out = []
    for f in fields(Recipe):
        value = getattr(recipe, f.name)
        if f.name == "lr_windows":
            out += [a for s, e, x in value for a in (flag(f.name), f"{s}:{e}:{x!r}")]
        elif f.name == "step_milestones":
            out += [flag(f.name), "default" if value is None else ",".join(map(str, value))]
        elif f.type == "bool":
            out.append(flag(f.name) if value else "--no-" + f.name.replace("_", "-"))
        else:
            out += [flag(f.name), repr(value) if isinstance(value, float) else str(value)]
    return out


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Recipe, Execution]:
    """The options, the recipe (not yet checked: check_recipe) and the execution settings."""
    base, execution = default_parts()  # config.yaml: the workflow's defaults are this command's defaults
    ap = argparse.ArgumentParser(
        prog="lrstudy-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_source_arguments(ap)
    ap.add_argument("--out", type=Path, required=True, help="directory for metrics.csv, summary.json, model.pt")
    add_recipe_arguments(ap, base)
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
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be positive")
    recipe = dataclasses.replace(base, **{f.name: getattr(args, f.name) for f in fields(Recipe)})
    if args.lr_windows is None:
        recipe = dataclasses.replace(recipe, lr_windows=base.lr_windows)
    else:
        recipe = dataclasses.replace(recipe, lr_windows=tuple(args.lr_windows))
    execution = dataclasses.replace(
        execution,
        device=args.device,
        compile=args.compile,
        cuda_graph=args.cuda_graph,
        deterministic=args.deterministic,
        cpu_threads=args.threads,
        tensorboard=args.tensorboard is not None,
    )
    return args, recipe, execution


def main(argv: list[str] | None = None) -> None:
    args, recipe, execution = parse(argv)
    out = args.out
    spec = RunSpec(recipe, execution, args.seed, variant="cli")
    files = RunFiles.in_folder(out, tensorboard=args.tensorboard)

    def run() -> None:
        check_recipe(recipe, where="command line")
        cache = source_cache(args, out)
        execute(spec, cache, files, on_epoch=tensorboard_log(spec, files), resume=args.resume)

    out.mkdir(parents=True, exist_ok=True)
    # Appended to: a second command refused by the run's lock must not empty the running trainer's log.
    run_logged(out / "train.log", run, expected=(DatasetError, DeviceError, ConfigError, RunBusyError), mode="a")


if __name__ == "__main__":
    main()
