"""Rule download: link dataset.archive, or download dataset.url; md5-checked either way."""

from pathlib import Path

from lrstudy.dataset import DatasetError, download, link_archive
from lrstudy.logs import run_logged

p = snakemake.params  # noqa: F821 (injected by Snakemake)
out = Path(snakemake.output[0])  # noqa: F821


def main():
    if p.archive:
        link_archive(p.archive, p.md5, out)
    else:
        download(p.url, p.md5, out, retries=p.retries)


run_logged(snakemake.log[0], main, expected=(DatasetError,))  # noqa: F821
