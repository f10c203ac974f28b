"""`lrstudy-train`: one run outside the workflow, with the published run's command-line flags.

    lrstudy-train --archive cifar-10-python.tar.gz --epochs 200 --lr 0.1 --batch-size 256 --out runs/a
    lrstudy-train ... --resume        # continue from runs/a/checkpoint.pt after an interruption

Same engine, same files (metrics.csv, summary.json, model.pt) as the workflow's `train` rule.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lrstudy.config import ConfigError, defaults, execution_of, recipe_of
from lrstudy.data.cifar10 import DatasetError, add_source_arguments, source_cache
from lrstudy.logs import run_logged
from lrstudy.train.engine import DeviceError
from lrstudy.train.run import execute


def parse_window(text: str) -> dict:
    try:
        start, end, factor = text.split(":")
        return {"start": int(start), "end": int(end), "factor": float(factor)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lr-window {text!r}: expected START:END:FACTOR, e.g. 50:100:5") from None


def main(argv: list[str] | None = None) -> None:
    config = defaults()  # config.yaml: the workflow's defaults are this command's defaults
    base, execution = config["train"], config["execution"]
    ap = argparse.ArgumentParser(
        prog="lrstudy-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_source_arguments(ap)
    ap.add_argument("--out", type=Path, required=True, help="directory for metrics.csv, summary.json, model.pt")
    ap.add_argument("--epochs", type=int, default=base["epochs"])
    ap.add_argument("--lr", type=float, default=base["lr"])
    ap.add_argument("--batch-size", type=int, default=base["batch_size"])
    ap.add_argument("--momentum", type=float, default=base["momentum"])
    ap.add_argument("--weight-decay", type=float, default=base["weight_decay"])
    ap.add_argument("--nesterov", action="store_true", default=base["nesterov"])
    ap.add_argument("--schedule", choices=["cosine", "step", "constant"], default=base["schedule"])
    ap.add_argument(
        "--lr-window",
        type=parse_window,
        action="append",
        default=[],
        metavar="START:END:FACTOR",
        help="multiply the lr by FACTOR for epochs START <= e < END (repeatable)",
    )
    ap.add_argument("--width", type=int, default=base["width"])
    ap.add_argument("--precision", choices=["bf16", "fp32"], default=base["precision"])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default=execution["device"])
    ap.add_argument("--compile", action="store_true", help="torch.compile (CUDA only)")
    ap.add_argument("--cuda-graph", action="store_true", help="the whole train step in CUDA graphs (CUDA only)")
    ap.add_argument(
        "--deterministic", action="store_true", default=execution["deterministic"], help="deterministic CUDA kernels"
    )
    ap.add_argument("--threads", type=int, default=execution["cpu_threads"], help="torch threads of a CPU run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tensorboard", type=Path, metavar="DIR", help="write TensorBoard event files to DIR as it trains")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it matches")
    args = ap.parse_args(argv)

    train = dict(
        base,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        nesterov=args.nesterov,
        schedule=args.schedule,
        lr_windows=args.lr_window,
        width=args.width,
        precision=args.precision,
    )
    execution = dict(
        execution,
        device=args.device,
        compile=args.compile,
        cuda_graph=args.cuda_graph,
        deterministic=args.deterministic,
        cpu_threads=args.threads,
        tensorboard=args.tensorboard is not None,
    )
    for key in ("epochs", "batch_size", "threads"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be positive")
    out = args.out
    ckpt = out / "checkpoint.pt"

    def run() -> None:
        recipe = recipe_of(train, where="command line").as_dict()
        npz, meta = source_cache(args, out)
        if not args.resume:
            ckpt.unlink(missing_ok=True)
        execute(
            recipe=recipe,
            execution=execution_of(execution).as_dict(),
            seed=args.seed,
            variant="cli",
            data_npz=npz,
            data_meta=meta,
            metrics_out=out / "metrics.csv",
            summary_out=out / "summary.json",
            model_out=out / "model.pt",
            checkpoint_path=ckpt,
            tensorboard_dir=args.tensorboard,
        )

    out.mkdir(parents=True, exist_ok=True)
    run_logged(out / "train.log", run, expected=(DatasetError, DeviceError, ConfigError))


if __name__ == "__main__":
    main()
