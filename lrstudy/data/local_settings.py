"""`python -m lrstudy.data.local_settings ARCHIVE`: the local.yaml that points every command at a local copy
of cifar-10-python.tar.gz, with the copy's md5 (computed here, so it is the file's own). A file that is not
a CIFAR-10 archive is refused (`make local` then keeps the local.yaml there was)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from lrstudy.config import defaults
from lrstudy.data.cifar10 import md5sum, not_cifar10

OFFICIAL_MD5 = defaults()["dataset"]["md5"]


def local_yaml(archive: Path) -> str:
    archive = archive.expanduser().resolve()
    if not archive.is_file():
        raise SystemExit(f"error: {archive} does not exist or is not a file")
    problem = not_cifar10(archive, every_member=True)
    if problem:
        raise SystemExit(f"error: {archive} is not a CIFAR-10 archive (cifar-10-python.tar.gz): {problem}")
    md5 = md5sum(archive)
    header = "# Machine-local settings, read by every snakemake command here (git-ignored).\n"
    if md5 != OFFICIAL_MD5:
        header += (
            f"# This copy's md5 is not the official archive's ({OFFICIAL_MD5}): it is the data's identity\n"
            "# for the runs made from it, and the file is checked against it before every use.\n"
        )
    return header + yaml.safe_dump({"dataset": {"archive": str(archive), "md5": md5}}, sort_keys=False)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m lrstudy.data.local_settings /path/to/cifar-10-python.tar.gz")
    sys.stdout.write(local_yaml(Path(sys.argv[1])))
