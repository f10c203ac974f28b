"""`lrstudy-bench`: seconds per epoch of the published-style input pipeline against ours, in one process on
one device, written as JSON and a Markdown table.

    lrstudy-bench --data results/data/cifar10.npz --epochs 3 --out results/benchmark
    lrstudy-bench --data results/data/cifar10.npz --modes published,eager,compile,graph,compile+graph --out b
    lrstudy-bench --archive cifar-10-python.tar.gz --device cpu --width 4 --train-limit 512 --epochs 2 --out /tmp/b

Modes (--modes, in this order, one process): `published` is the published run's style of input pipeline,
a Dataset of PIL images with torchvision's RandomCrop/RandomHorizontalFlip/ToTensor/Normalize and a
DataLoader with 2 workers, fp32, NCHW. The others are lrstudy's engine (uint8 data on the device,
crop/flip there, bf16 autocast, channels_last, fused SGD): `eager`; `compile`, torch.compile with CUDA
graphs on the model (execution.compile); `graph`, the whole train step and each evaluation batch in CUDA
graphs (execution.cuda_graph); `compile+graph`, both. All train every image and evaluate the full test
set each epoch, from the same seed. The first epoch (warm-up, compilation, capture) is reported apart
from the steady-state mean, and each mode's last-epoch accuracies are recorded as a sanity check.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from lrstudy.atomic import atomic_write_json, atomic_write_text
from lrstudy.config import defaults, execution_of, recipe_of, run_hash
from lrstudy.data.cifar10 import add_source_arguments, load_cache, load_meta, source_cache
from lrstudy.train.augment import MEAN, STD
from lrstudy.train.device import device_name, resolve_device
from lrstudy.train.engine import Trainer
from lrstudy.train.loop import DeviceData
from lrstudy.train.model import ResNet18
from lrstudy.train.run import versions

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by a substring of the name.
BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
}


def bf16_peak(name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def train_flops_per_image(width: int) -> float:
    """Forward FLOPs of one 32x32 image, times 3 for forward + backward."""
    model = ResNet18(width=width)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 32, 32))
    return 3.0 * counter.get_total_flops()


class PublishedStyleCIFAR(Dataset):
    """What the published run ran: PIL images through torchvision transforms, one image at a time in workers."""

    def __init__(self, x: np.ndarray, y: np.ndarray, train: bool):
        self.images = x.transpose(0, 2, 3, 1)  # HWC for PIL
        self.labels = y.astype(np.int64)
        from torchvision import transforms  # only this mode uses it; importing it costs ~2.6 CPU-s

        steps = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if train else []
        self.transform = transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def published_style_epochs(arrays, train: dict, device: torch.device, epochs: int, workers: int) -> list[float]:
    torch.manual_seed(0)
    model = ResNet18(width=train["width"]).to(device)
    opt = torch.optim.SGD(
        model.parameters(), lr=train["lr"], momentum=train["momentum"], weight_decay=train["weight_decay"]
    )
    pin = device.type == "cuda"
    train_loader = DataLoader(
        PublishedStyleCIFAR(arrays["x_train"], arrays["y_train"], True),
        batch_size=train["batch_size"],
        shuffle=True,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
    )
    test_loader = DataLoader(
        PublishedStyleCIFAR(arrays["x_test"], arrays["y_test"], False),
        batch_size=100,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
    )
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            loss.item()  # the published run logged the running loss every step
        model.eval()
        with torch.no_grad():
            for x, y in test_loader:
                model(x.to(device)).argmax(1).eq(y.to(device)).sum().item()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


OUR_MODES = {  # mode -> (execution.compile, execution.cuda_graph)
    "eager": (False, False),
    "compile": (True, False),
    "graph": (False, True),
    "compile+graph": (True, True),
}
MODES = ["published", *OUR_MODES]


def our_epochs(arrays, meta, train: dict, device: torch.device, epochs: int, mode: str) -> list[dict]:
    compile_, cuda_graph = OUR_MODES[mode]
    train = dict(train, epochs=epochs, compile=compile_, cuda_graph=cuda_graph)
    recipe, execution = recipe_of(train, where="lrstudy-bench"), execution_of(train)
    data = DeviceData.from_arrays(arrays, device)
    return Trainer(recipe, execution, 0, data, device, run_hash(recipe, 0, meta)).run(None).metrics


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"--modes {text!r}: choose from {', '.join(MODES)} (comma-separated)")
    return modes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def summarise(
    mode: str, name: str, times: list[float], n_train: int, flops_per_epoch: float, peak: float | None
) -> dict:
    steady = times[1:] or times
    s = statistics.mean(steady)
    return {
        "mode": mode,
        "pipeline": name,
        "epochs": len(times),
        "first_epoch_s": times[0],
        "s_per_epoch": s,
        "train_images_per_s": n_train / s,
        "tflops": flops_per_epoch / s / 1e12,
        "share_of_bf16_peak": (flops_per_epoch / s / 1e12) / peak if peak else None,
    }


def table(result: dict) -> str:
    lines = [
        f"Device: {result['device_name']} ({result['device']}); torch {result['versions']['torch']}; "
        f"ResNet18 width {result['width']}, batch {result['batch_size']}, {result['train_size']} train / "
        f"{result['test_size']} test images; bf16 peak {result['bf16_peak_tflops'] or 'unknown'} TFLOP/s",
        "",
        "| pipeline | s/epoch (steady) | first epoch s | train images/s | TFLOP/s | share of bf16 peak |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["pipelines"]:
        if "s_per_epoch" not in r:
            why = f"failed: {r['error']}" if "error" in r else f"skipped: {r['skipped']}"
            lines.append(f"| {r['pipeline']} | {why} | | | | |")
            continue
        share = f"{100 * r['share_of_bf16_peak']:.1f}%" if r["share_of_bf16_peak"] is not None else "n/a"
        lines.append(
            f"| {r['pipeline']} | {r['s_per_epoch']:.3f} | {r['first_epoch_s']:.3f} | "
            f"{r['train_images_per_s']:.0f} | {r['tflops']:.2f} | {share} |"
        )
    if result["epochs"] == 1:
        lines += ["", "One epoch per mode: no steady state, so s/epoch includes the warm-up (use --epochs 3)."]
    base = next((r for r in result["pipelines"] if r["mode"] == "published" and "s_per_epoch" in r), None)
    if base is not None and len(result["pipelines"]) > 1:
        lines += ["", "Speed-up over the published-style pipeline (steady state):"]
        lines += [
            f"- {r['pipeline']}: {base['s_per_epoch'] / r['s_per_epoch']:.2f}x"
            for r in result["pipelines"]
            if r is not base and "s_per_epoch" in r
        ]
    accuracies = [r for r in result["pipelines"] if "final_test_acc" in r]
    if accuracies:
        epochs = f"{result['epochs']} epoch{'s' if result['epochs'] > 1 else ''}"
        lines += ["", f"Accuracy after {epochs}, seed 0 (a sanity check, not a result):"]
        lines += [
            f"- {r['pipeline']}: train {100 * r['final_train_acc']:.2f}%, test {100 * r['final_test_acc']:.2f}%"
            for r in accuracies
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="lrstudy-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_source_arguments(ap)
    ap.add_argument("--out", type=Path, required=True, help="directory for benchmark.json and benchmark.md")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per pipeline (the first is warm-up)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument(
        "--modes", type=parse_modes, default=["published", "eager"], help=f"comma-separated, of: {', '.join(MODES)}"
    )
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the published-style pipeline")
    args = ap.parse_args(argv)

    npz, meta_path = source_cache(args, args.out)
    arrays, meta = load_cache(npz), load_meta(meta_path)
    device = resolve_device(args.device)
    config = defaults()  # the study's recipe and execution settings, with this command's options over them
    train = {
        **config["train"],
        **config["execution"],
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "width": args.width,
        "precision": args.precision,
        "device": args.device,
    }
    n_train, n_test = len(arrays["y_train"]), len(arrays["y_test"])
    flops = train_flops_per_image(args.width) * n_train + train_flops_per_image(args.width) / 3 * n_test
    name = device_name(device)
    peak = bf16_peak(name) if device.type == "cuda" else None
    cuda = device.type == "cuda"

    result = {
        "device": device.type,
        "device_name": name,
        "versions": versions(),
        "width": args.width,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "train_size": n_train,
        "test_size": n_test,
        "flops_per_epoch": flops,
        "bf16_peak_tflops": peak,
        "pipelines": [],
    }
    for mode in args.modes:
        if mode != "published" and not cuda and mode != "eager":
            print(f"lrstudy-bench: mode {mode} needs CUDA; skipped on {device.type}")
            row = {"mode": mode, "pipeline": f"lrstudy {mode}", "skipped": f"needs CUDA, this is a {device.type}"}
        else:
            row = measure(mode, arrays, meta, train, device, args, n_train, flops, peak)
        result["pipelines"].append(row)
        # Written after every mode: a benchmark stopped by a deadline keeps the modes it finished.
        atomic_write_json(args.out / "benchmark.json", result)
        atomic_write_text(args.out / "benchmark.md", table(result))
    print(table(result))


def measure(mode: str, arrays, meta, train: dict, device, args, n_train: int, flops: float, peak) -> dict:
    cuda = device.type == "cuda"
    if mode == "published":
        label = f"published-style (DataLoader+PIL, {args.workers} workers, fp32)"
    else:
        label = f"lrstudy {mode} ({'bf16' if cuda and args.precision == 'bf16' else 'fp32'})"
    try:
        if mode == "published":
            return summarise(
                mode,
                label,
                published_style_epochs(arrays, train, device, args.epochs, args.workers),
                n_train,
                flops,
                peak,
            )
        rows = our_epochs(arrays, meta, train, device, args.epochs, mode)
    except Exception as exc:  # one failing mode (a CUDA-only bug) must not hide the others' figures
        message = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
        print(f"lrstudy-bench: mode {mode} failed: {message}", file=sys.stderr)
        return {"mode": mode, "pipeline": label, "error": message}
    row = summarise(mode, label, [m["epoch_seconds"] for m in rows], n_train, flops, peak)
    row.update(final_train_acc=rows[-1]["train_acc"], final_test_acc=rows[-1]["test_acc"])
    return row


if __name__ == "__main__":
    main()
