"""What a cloud study's storage costs, measured on this machine (docs/speed-and-scaling.md#cloud): the size of
a checkpoint of the published recipe (ResNet18 width 64, its weights and SGD momentum) and of its model.pt,
and the time to store and fetch the checkpoint through lrstudy.storage (Snakemake's S3 storage plugin), the
bucket on a local S3 server (moto, as tests/test_cloud.py starts it), three times each.

    python tools/storage_cost.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    import torch
    from s3_server import BUCKET, KEYS, S3Server

    from lrstudy.storage import StudyStorage
    from lrstudy.train import checkpoint
    from lrstudy.train.model import ResNet18

    model = ResNet18(width=64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()  # the momentum buffers a checkpoint carries
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
    folder = Path(tempfile.mkdtemp(prefix="lrstudy-storage-cost-"))
    checkpoint.save(folder / "seed0.pt", state)
    checkpoint.save(folder / "model.pt", model.state_dict())
    sizes = {name: (folder / name).stat().st_size / 1e6 for name in ("seed0.pt", "model.pt")}
    print(f"checkpoint {sizes['seed0.pt']:.1f} MB, model.pt {sizes['model.pt']:.1f} MB")
    server = S3Server()
    try:
        settings = {"endpoint_url": server.endpoint, "access_key": KEYS["access-key"], "secret_key": KEYS["secret-key"]}
        storage = StudyStorage.of_study("s3", f"s3://{BUCKET}/cost", settings, str(folder / "storage"), "studies/x")
        for attempt in range(3):
            start = time.perf_counter()
            storage.store("results/checkpoints/v/seed0.pt", folder / "seed0.pt")
            stored = time.perf_counter()
            storage.fetch("results/checkpoints/v/seed0.pt", folder / f"fetched{attempt}.pt")
            print(f"store {stored - start:.2f} s, fetch {time.perf_counter() - stored:.2f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
