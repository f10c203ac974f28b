"""Rule download: link dataset.archive, or download dataset.url; md5-checked either way."""

from pathlib import Path

from lrstudy.data.cifar10 import DatasetError, download, link_archive
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    out, p = Path(sm.output[0]), sm.params
    if p.archive:
        link_archive(p.archive, p.md5, out)
    else:
        download(p.url, p.md5, out, retries=sm.config["dataset"]["download_retries"])


run_logged(sm.log[0], main, expected=(DatasetError,))
