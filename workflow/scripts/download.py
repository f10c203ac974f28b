"""Rule download: link dataset.archive, or download dataset.url; md5-checked either way."""

from pathlib import Path

from lrstudy.data.cifar10 import DatasetError, download, link_archive
from lrstudy.logs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    # Not params: only the md5 (the data's identity) decides whether the archive is fetched again.
    out, ds = Path(sm.output[0]), sm.config["dataset"]
    if ds["archive"]:
        link_archive(ds["archive"], ds["md5"], out)
    else:
        download(ds["url"], ds["md5"], out, retries=ds["download_retries"])


run_logged(sm.log[0], main, expected=(DatasetError,))
