"""The dataset rule's engine: download (HTTP on 127.0.0.1 and file://), md5, resume, retries, safe reading."""

from __future__ import annotations

import gzip
import http.server
import io
import pickle
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import synthetic_archive

from lrstudy.data import cifar10 as dataset
from lrstudy.data.cifar10 import (
    DatasetError,
    balanced_subset,
    download,
    link_archive,
    md5sum,
    not_cifar10,
    prepare,
    read_archive,
)
from lrstudy.studies import archive_set_in


class ArchiveServer:
    """Serves one file on 127.0.0.1 with HTTP Range support, and can misbehave on purpose:
    answer 503 to the first `fail` requests, or cut the first response off after `cut` bytes."""

    def __init__(self, payload: bytes, fail: int = 0, cut: int | None = None, status: int | None = None):
        self.payload, self.fail, self.cut, self.status = payload, fail, cut, status
        self.requests: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                if server.status:
                    self.send_error(server.status)
                    return
                if server.fail > 0:
                    server.fail -= 1
                    self.send_error(503)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = server.payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut is not None:
                    body, server.cut = body[: server.cut], None
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cifar-10-python.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(archive):
    servers = []

    def start(**kw):
        servers.append(ArchiveServer(archive.read_bytes(), **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_http_download_checks_md5(serve, archive, tmp_path):
    server = serve()
    out = tmp_path / "a.tar.gz"
    download(server.url, md5sum(archive), out, progress_every=0)
    assert out.read_bytes() == archive.read_bytes()
    assert not (tmp_path / "a.tar.gz.part").exists()


def test_file_url(archive, tmp_path):
    out = tmp_path / "a.tar.gz"
    download(archive.as_uri(), md5sum(archive), out)
    assert md5sum(out) == md5sum(archive)


def test_md5_mismatch_is_an_error_and_leaves_nothing(serve, tmp_path):
    out = tmp_path / "a.tar.gz"
    with pytest.raises(DatasetError, match="md5 of .* is [0-9a-f]{32}, but dataset.md5 says 0{32}"):
        download(serve().url, "0" * 32, out)
    assert list(tmp_path.iterdir()) == []


def test_transient_errors_are_retried(serve, archive, tmp_path):
    server = serve(fail=2)
    download(server.url, md5sum(archive), tmp_path / "a.tar.gz", backoff=0.01)
    assert len(server.requests) == 3


def test_cut_connection_resumes_with_range(serve, archive, tmp_path):
    server = serve(cut=1000)
    download(server.url, md5sum(archive), tmp_path / "a.tar.gz", backoff=0.01)
    assert server.requests == [None, "bytes=1000-"]
    assert md5sum(tmp_path / "a.tar.gz") == md5sum(archive)


def test_permanent_http_error_is_not_retried(serve, tmp_path):
    server = serve(status=404)
    with pytest.raises(DatasetError, match="dataset.url: download of .* failed: HTTP Error 404"):
        download(server.url, None, tmp_path / "a.tar.gz", backoff=0.01)
    assert len(server.requests) == 1 and list(tmp_path.iterdir()) == []


def test_a_host_name_that_does_not_exist_is_not_retried(tmp_path, monkeypatch):
    """Issue 20.8: "Name or service not known" took 62 s of retries before the `make local` hint."""
    import socket
    import time
    import urllib.request

    calls = []

    def unknown_host(request, timeout):
        calls.append(request.full_url)
        raise urllib.error.URLError(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", unknown_host)
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail(f"slept {s} s before giving up"))
    with pytest.raises(DatasetError, match="Name or service not known.*make local ARCHIVE="):
        download("https://no-such-host.invalid/cifar.tar.gz", None, tmp_path / "a.tar.gz", backoff=10)
    assert len(calls) == 1


def test_retries_give_up_with_the_url_named(serve, tmp_path):
    server = serve(fail=10)
    with pytest.raises(DatasetError, match="127.0.0.1.*503") as failed:
        download(server.url, None, tmp_path / "a.tar.gz", retries=2, backoff=0.01)
    assert len(server.requests) == 3
    assert "use a local copy of the archive" in str(failed.value) and "local.yaml" in str(failed.value)


def test_local_archive_is_linked_after_its_md5(archive, tmp_path):
    out = tmp_path / "res" / "cifar-10-python.tar.gz"
    link_archive(str(archive), md5sum(archive), out)
    assert out.is_symlink() and out.resolve() == archive.resolve()
    with pytest.raises(DatasetError, match="dataset.archive: .*missing.tar.gz does not exist"):
        link_archive(str(tmp_path / "missing.tar.gz"), None, tmp_path / "x")
    with pytest.raises(DatasetError, match="dataset.archive: md5"):
        link_archive(str(archive), "f" * 32, tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_prepare_decodes_checks_and_subsets(archive, tmp_path):
    meta = prepare(archive, tmp_path / "c.npz", tmp_path / "c.json", train_limit=100, test_limit=None)
    arrays = dataset.load_cache(tmp_path / "c.npz")
    assert arrays["x_train"].shape == (100, 3, 32, 32) and arrays["x_train"].dtype == np.uint8
    assert meta["train_class_counts"] == [10] * 10 and meta["test_size"] == 300
    assert meta["md5"] == md5sum(archive)
    # Pixels are the archive's channel-planar rows, unchanged.
    full = read_archive(archive)
    first = int(np.flatnonzero(full["y_train"] == arrays["y_train"][0])[0])
    assert np.array_equal(arrays["x_train"][0], full["x_train"][first])


def test_balanced_subset():
    labels = np.array([c for c in range(10) for _ in range(5)])
    idx = balanced_subset(labels, 23, "dataset.train_limit")
    assert np.bincount(labels[idx], minlength=10).tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    skewed = np.array([0] * 2 + [c for c in range(1, 10) for _ in range(10)])
    with pytest.raises(DatasetError, match="dataset.train_limit=50 needs 5 images of class 0, the data has 2"):
        balanced_subset(skewed, 50, "dataset.train_limit")


def test_truncated_and_non_gzip_archives_are_named(archive, tmp_path):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="truncated.tar.gz: not a readable gzip tar archive"):
        prepare(truncated, tmp_path / "c.npz", tmp_path / "c.json", train_limit=None, test_limit=None)
    plain = tmp_path / "plain.tar.gz"
    plain.write_text("<html>not found</html>")
    with pytest.raises(DatasetError, match="plain.tar.gz: not a readable gzip tar archive"):
        prepare(plain, tmp_path / "c.npz", tmp_path / "c.json", train_limit=None, test_limit=None)
    assert not (tmp_path / "c.npz").exists() and not (tmp_path / "c.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_linked_archive_that_is_not_one_names_the_setting_not_a_download(archive, tmp_path):
    """rule download links dataset.archive to resources/: "a truncated or corrupt download? Delete it" sent the
    user to delete the link (issue 32.8); the message names the linked file and the setting instead."""
    mine = tmp_path / "mine.tar.gz"
    mine.write_bytes(archive.read_bytes()[:5000])
    link = tmp_path / "resources/cifar-10-python.tar.gz"
    link.parent.mkdir()
    link.symlink_to(mine)
    with pytest.raises(DatasetError) as err:
        prepare(link, tmp_path / "c.npz", tmp_path / "c.json", train_limit=None, test_limit=None)
    assert f"it is {mine}, dataset.archive (set in local.yaml or the study's config)" in str(err.value)
    assert "Delete it" not in str(err.value)


def test_a_linked_archive_names_the_local_yaml_that_set_it(archive, tmp_path):
    """rule prepare_data has only the assembled config: it names local.yaml's path when local.yaml sets
    the archive (issue 32.8: "name the local.yaml path"), the study's config when something else does."""
    mine = tmp_path / "mine.tar.gz"
    mine.write_bytes(archive.read_bytes()[:5000])
    (tmp_path / "local.yaml").write_text(f"dataset:\n  archive: {mine}\n")
    assert archive_set_in(tmp_path, str(mine)) == str(tmp_path / "local.yaml")
    assert archive_set_in(tmp_path, str(archive)) == "the study's config"
    assert archive_set_in(tmp_path / "elsewhere", str(mine)) == "the study's config"  # no local.yaml
    link = tmp_path / "resources/cifar-10-python.tar.gz"
    link.parent.mkdir()
    link.symlink_to(mine)
    with pytest.raises(DatasetError) as err:
        prepare(
            link,
            tmp_path / "c.npz",
            tmp_path / "c.json",
            train_limit=None,
            test_limit=None,
            archive_set_in=archive_set_in(tmp_path, str(mine)),
        )
    assert f"it is {mine}, dataset.archive (set in {tmp_path / 'local.yaml'}): point dataset.archive" in str(err.value)


def test_what_is_not_a_cifar10_archive_is_said_from_its_first_bytes(archive, tmp_path):
    assert not_cifar10(archive) is None and not_cifar10(archive, every_member=True) is None
    readme = tmp_path / "README.md"
    readme.write_text("# lrstudy\n")
    assert not_cifar10(readme) == "it is not gzip-compressed"
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(readme, arcname="project/README.md")
    assert not_cifar10(other) == "its first member is project/README.md, not cifar-10-batches-py/"
    partial = tmp_path / "partial.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(partial, "w:gz") as tar:
        for m in src:
            if not m.name.endswith("test_batch"):
                tar.addfile(m, src.extractfile(m) if m.isfile() else None)
    assert not_cifar10(partial) is None  # the cheap check reads the first member only
    assert not_cifar10(partial, every_member=True) == "it has no cifar-10-batches-py/test_batch"


def test_a_missing_archive_is_not_called_corrupt(tmp_path):
    with pytest.raises(DatasetError, match=r"missing.tar.gz: no such file \(give the path") as err:
        prepare(tmp_path / "missing.tar.gz", tmp_path / "c.npz", tmp_path / "c.json", train_limit=None, test_limit=None)
    assert "Delete it" not in str(err.value)


def _archive_with(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "device"])
def test_unsafe_members_are_refused(tmp_path, kind):
    def add(tar):
        info = tarfile.TarInfo(
            {"absolute": "/etc/evil", "dotdot": "cifar-10-batches-py/../../evil"}.get(
                kind, "cifar-10-batches-py/data_batch_1"
            )
        )
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "device":
            info.type = tarfile.CHRTYPE
        tar.addfile(info, io.BytesIO(b""))

    with pytest.raises(DatasetError, match="unsafe path|link or device"):
        read_archive(_archive_with(tmp_path, add))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    def add(tar):
        payload = pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2)
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))

    with pytest.raises(DatasetError, match="data_batch_1 is not a CIFAR-10 batch .*refusing to load .*print"):
        read_archive(_archive_with(tmp_path, add))


def test_a_member_larger_than_any_cifar_batch_is_refused_before_it_is_read(tmp_path):
    """A header declaring 2 GiB, followed by only a little data: refused from the header alone (reading
    the member would take 2 GiB of memory)."""
    path = tmp_path / "huge.tar.gz"
    small = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2)
    with gzip.open(path, "wb") as gz:
        first = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        first.size = len(small)
        gz.write(first.tobuf() + small.ljust(-(-len(small) // 512) * 512, b"\0"))
        huge = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        huge.size = 2 * 2**30
        gz.write(huge.tobuf() + bytes(4096))
    assert path.stat().st_size < 10_000
    with pytest.raises(
        DatasetError,
        match=r"huge.tar.gz: member 'cifar-10-batches-py/data_batch_1' declares "
        r"2,147,483,648 bytes, more than any CIFAR-10 batch",
    ):
        read_archive(path)


def test_a_limit_larger_than_the_data_says_so(caplog):
    labels = np.arange(100) % 10
    assert len(balanced_subset(labels, 500, "dataset.train_limit")) == 100
    assert "dataset.train_limit=500 is larger than the 100 images there are: all 100 are used" in caplog.text
    caplog.clear()
    balanced_subset(labels, 100, "dataset.train_limit")
    assert "larger than" not in caplog.text


def write_header_bomb(path, header_type: bytes, size: int) -> None:
    """A gzip tar whose first header is `header_type` (GNU long name, pax, ...) with `size` bytes of data
    (zeros: a few hundred KB compressed), then an ordinary member."""
    bomb = tarfile.TarInfo("././@LongLink")
    bomb.type, bomb.size = header_type, size
    member = tarfile.TarInfo("cifar-10-batches-py/test_batch")
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(bomb.tobuf(format=tarfile.GNU_FORMAT))
        chunk = bytes(1 << 20)
        for start in range(0, size, len(chunk)):
            fh.write(chunk[: size - start])
        fh.write(bytes(-size % tarfile.BLOCKSIZE))
        fh.write(member.tobuf(format=tarfile.GNU_FORMAT) + bytes(2 * tarfile.BLOCKSIZE))


@pytest.mark.parametrize("header_type", [b"L", b"K", b"x", b"g", b"X"])
def test_an_oversized_tar_header_is_refused_before_it_is_read(tmp_path, header_type):
    """Issue 20.6: tarfile reads a long-name or pax header's data into memory before yielding the member; a
    header declaring 2 GiB reached 2.1 GB of RSS. Bounded first: peak RSS stays under 100 MB."""
    archive = tmp_path / "bomb.tar.gz"
    write_header_bomb(archive, header_type, 192 * 2**20)
    probe = (
        "import sys\n"
        "from lrstudy.data.cifar10 import DatasetError, read_archive\n"
        "try:\n"
        "    read_archive(sys.argv[1])\n"
        "except DatasetError as exc:\n"
        "    print(exc)\n"
        # This process's own peak (kB): getrusage's ru_maxrss would carry over pytest's from before the exec.
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(archive)], capture_output=True, text=True, timeout=120)
    message, peak_kib = proc.stdout.strip().rsplit("\n", 1)
    assert "header declares 201,326,592 bytes" in message and "refusing to read the archive" in message, proc.stderr
    assert int(peak_kib) < 100 * 1024, f"peak RSS {int(peak_kib) / 1024:.0f} MB"


def test_the_synthetic_archive_makes_its_folder(tmp_path):
    """tests/synthetic_archive.write_archive into a folder not made yet (it raised FileNotFoundError)."""
    path = synthetic_archive.write_archive(tmp_path / "new" / "folder" / "a.tar.gz", train_per_batch=2, test=3)
    assert read_archive(path)["x_test"].shape[0] == 3
