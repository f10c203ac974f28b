"""CIFAR-10: fetch the archive (download or local file), check it, and decode it once into a compact
uint8 cache that training loads straight onto the device.

The archive is read in place, never extracted to disk, but its member list is still vetted as if it
were extracted (no absolute paths, no '..', no links or devices), and the pickled batches are loaded
with an unpickler that can only build numpy arrays: a hostile archive cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import socket
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from lrstudy.atomic import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

MEMBER_DIR = "cifar-10-batches-py"
TRAIN_MEMBERS = [f"{MEMBER_DIR}/data_batch_{i}" for i in range(1, 6)]
TEST_MEMBER = f"{MEMBER_DIR}/test_batch"
NUM_CLASSES = 10
TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000  # the official archive's; dataset.train_limit/test_limit take fewer
IMAGE_SHAPE = (3, 32, 32)
# A batch is read into memory whole; CIFAR-10's are 31 MB (10,000 images of 3072 bytes, labels, names).
MAX_MEMBER_BYTES = 64 * 2**20
# GNU long-name and pax headers carry a name or a few key=value records: tarfile reads their data into memory
# before it yields the member, so their declared size is bounded before that read.
MAX_HEADER_BYTES = 2**20
_EXTENSION_HEADERS = {
    tarfile.GNUTYPE_LONGNAME: "GNU long-name",
    tarfile.GNUTYPE_LONGLINK: "GNU long-link",
    tarfile.XHDTYPE: "pax",
    tarfile.XGLTYPE: "pax global",
    tarfile.SOLARIS_XHDTYPE: "Solaris pax",
}


class DatasetError(RuntimeError):
    """A dataset file that cannot be used; the message names the file."""


class DamagedCacheError(DatasetError):
    """The dataset cache is not what prepare() wrote. The message says so; who made the cache (the workflow,
    for which study; a command's --archive) says how to rebuild it."""


# ---------------------------------------------------------------------------------------------- fetch


def md5sum(path: str | os.PathLike) -> str:
    return _digests(path, "md5")[0]


def _digests(path, *names: str) -> list[str]:
    """Hex digests of one file for several algorithms, in one read of the file."""
    hashes = [hashlib.new(n) for n in names]
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            for h in hashes:
                h.update(chunk)
    return [h.hexdigest() for h in hashes]


def check_md5(path: Path, expected: str | None, what: str) -> None:
    if expected is None:
        log.warning("dataset.md5 is null: the integrity of %s is NOT checked", path)
        return
    actual = md5sum(path)
    if actual.lower() != expected.lower():
        raise DatasetError(
            f"{what}: md5 of {path} is {actual}, but dataset.md5 says {expected}. "
            "The file is corrupt or not the expected archive; fix dataset.md5 if you trust the file."
        )
    log.info("md5 of %s verified (%s)", path, actual)


def link_archive(archive: str, md5: str | None, out: Path) -> None:
    """Use an existing local archive: check it, then point `out` at it with a symlink (atomically)."""
    src = Path(archive).expanduser().resolve()
    if not src.is_file():
        raise DatasetError(f"dataset.archive: {archive} does not exist or is not a file")
    check_md5(src, md5, "dataset.archive")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(src, tmp)
    os.replace(tmp, out)


# Errors worth another attempt: the network or the server, not the request itself.
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


def download(
    url: str,
    md5: str | None,
    out: Path,
    *,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress_every: float = 2.0,
) -> None:
    """Download `url` to `out`: resumable into `out.part`, retried with exponential backoff on transient
    errors, md5-checked before it is renamed into place. A failure leaves no `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout=timeout, progress_every=progress_every)
            break
        except (urllib.error.URLError, OSError, _Truncated) as exc:
            if not _transient(exc) or attempt == retries:
                part.unlink(missing_ok=True)
                raise DatasetError(
                    f"dataset.url: download of {url} failed: {exc}. Without internet, use a local copy of the "
                    "archive: put `dataset: {archive: /path/to/cifar-10-python.tar.gz, md5: ...}` in local.yaml "
                    "(or run: make local ARCHIVE=/path/to/cifar-10-python.tar.gz); see docs/configuration.md, "
                    "'No internet: a local archive'"
                ) from exc
            wait = backoff * 2**attempt
            log.warning(
                "download of %s failed (%s); retry %d/%d in %.0f s, resuming from %d bytes",
                url,
                exc,
                attempt + 1,
                retries,
                wait,
                part.stat().st_size if part.exists() else 0,
            )
            time.sleep(wait)
    try:
        check_md5(part, md5, f"dataset.url ({url})")
    except DatasetError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, out)


class _Truncated(OSError):
    pass


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in _TRANSIENT_HTTP
    if isinstance(exc, urllib.error.URLError):
        # A missing local file (file://) will not appear by retrying, nor will a host name that does not exist
        # (EAI_NONAME, "Name or service not known"; a resolver that cannot be reached, EAI_AGAIN, may recover).
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            return reason.errno != socket.EAI_NONAME
        return not isinstance(reason, FileNotFoundError)
    return not isinstance(exc, FileNotFoundError)


def _fetch(url: str, part: Path, *, timeout: float, progress_every: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch past what we have, or a stale part: restart
            part.unlink()
            return _fetch(url, part, timeout=timeout, progress_every=progress_every)
        raise
    with response:
        resumed = have and getattr(response, "status", None) == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        done, last_report, started = have, 0.0, time.monotonic()
        with open(part, "ab" if resumed else "wb") as fh:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                fh.write(chunk)
                done += len(chunk)
                now = time.monotonic()
                if now - last_report >= progress_every:
                    _report_progress(url, done, total, now - started)
                    last_report = now
        _report_progress(url, done, total, time.monotonic() - started)
        if total is not None and done < total:
            raise _Truncated(f"connection closed after {done} of {total} bytes")


def _report_progress(url: str, done: int, total: int | None, seconds: float) -> None:
    rate = done / max(seconds, 1e-9) / 1e6
    if total:
        log.info(
            "downloading %s: %5.1f%% (%.1f / %.1f MB, %.1f MB/s)",
            url,
            100 * done / total,
            done / 1e6,
            total / 1e6,
            rate,
        )
    else:
        log.info("downloading %s: %.1f MB (%.1f MB/s)", url, done / 1e6, rate)


# --------------------------------------------------------------------------------------------- decode


class _ArrayUnpickler(pickle.Unpickler):
    """Builds dicts, lists, bytes and numpy arrays; refuses every other global (no code execution)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray":  # numpy 2 renamed the module
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo whose extension headers are checked against MAX_HEADER_BYTES before tarfile reads their data,
    and which refuses sparse members (their maps are read into memory too; CIFAR-10 has none)."""

    def _proc_member(self, tar):
        archive = tar.name or "the archive"
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise DatasetError(f"{archive}: member {self.name!r} is a sparse file, refusing to read the archive")
        kind = _EXTENSION_HEADERS.get(self.type)
        if kind is not None and self.size > MAX_HEADER_BYTES:
            raise DatasetError(
                f"{archive}: a {kind} header declares {self.size:,} bytes (limit {MAX_HEADER_BYTES:,}); "
                "refusing to read the archive"
            )
        return super()._proc_member(tar)


def _check_member(archive: Path, m: tarfile.TarInfo) -> None:
    name = PurePosixPath(m.name)
    if name.is_absolute() or ".." in name.parts:
        raise DatasetError(f"{archive}: unsafe path {m.name!r} in archive, refusing to read it")
    if not (m.isfile() or m.isdir()):
        raise DatasetError(f"{archive}: member {m.name!r} is a link or device, refusing to read the archive")
    if m.size > MAX_MEMBER_BYTES:
        raise DatasetError(
            f"{archive}: member {m.name!r} declares {m.size:,} bytes, more than any CIFAR-10 batch "
            f"(about 31 MB, limit {MAX_MEMBER_BYTES:,}); refusing to read the archive"
        )


def _read_batch(archive: Path, tar: tarfile.TarFile, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        member = tar.getmember(name)
    except KeyError:
        raise DatasetError(f"{archive}: {name} is missing; is this cifar-10-python.tar.gz?") from None
    raw = tar.extractfile(member).read()
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"])
    except (pickle.UnpicklingError, KeyError, TypeError, EOFError, ValueError) as exc:
        raise DatasetError(f"{archive}: {name} is not a CIFAR-10 batch ({exc})") from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{archive}: {name} has data {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.shape != (data.shape[0],):
        raise DatasetError(f"{archive}: {name} has {labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DatasetError(f"{archive}: {name} has labels outside 0..{NUM_CLASSES - 1}")
    return data.reshape(-1, *IMAGE_SHAPE), labels.astype(np.uint8)


_UNREADABLE = (tarfile.TarError, EOFError, OSError, zlib.error)


def not_cifar10(archive: str | os.PathLike, every_member: bool = False) -> str | None:
    """Why `archive` is not a cifar-10-python.tar.gz, or None. By default from its first bytes and first
    member only (cheap enough for every start of the workflow); with `every_member`, from every member's
    header too (every batch present, nothing unsafe), which reads the whole file once."""
    try:
        with open(archive, "rb") as fh:
            magic = fh.read(2)
        if magic != b"\x1f\x8b":
            return "it is not gzip-compressed"
        with tarfile.open(archive, "r:gz", tarinfo=_BoundedTarInfo) as tar:
            first = tar.next()
            if first is None or PurePosixPath(first.name).parts[:1] != (MEMBER_DIR,):
                return f"its first member is {first.name if first else 'missing'}, not {MEMBER_DIR}/"
            if every_member:
                names = {first.name}
                for m in tar:
                    _check_member(Path(archive), m)
                    names.add(m.name)
                missing = [n for n in [*TRAIN_MEMBERS, TEST_MEMBER] if n not in names]
                if missing:
                    return f"it has no {', '.join(missing)}"
    except DatasetError as exc:
        return str(exc)
    except _UNREADABLE as exc:
        return f"it is not a readable gzip tar archive ({type(exc).__name__}: {exc})"
    return None


def read_archive(archive: Path, set_in: str = "local.yaml or the study's config") -> dict[str, np.ndarray]:
    """Decode the five train batches and the test batch of a cifar-10-python.tar.gz. `set_in`: where
    dataset.archive was set, named when `archive` is rule download's link to it and cannot be read."""
    if not Path(archive).is_file():
        raise DatasetError(f"{archive}: no such file (give the path of a cifar-10-python.tar.gz)")
    try:
        with tarfile.open(archive, "r:gz", tarinfo=_BoundedTarInfo) as tar:
            for m in tar:  # each header is checked as it is read, before the member's data is reached
                _check_member(archive, m)
            train = [_read_batch(archive, tar, n) for n in TRAIN_MEMBERS]
            x_test, y_test = _read_batch(archive, tar, TEST_MEMBER)
    except _UNREADABLE as exc:
        if Path(archive).is_symlink():  # rule download links dataset.archive: deleting the link fixes nothing
            hint = (
                f"it is {Path(archive).resolve()}, dataset.archive (set in {set_in}): point "
                "dataset.archive at an intact cifar-10-python.tar.gz, e.g. make local ARCHIVE=/path/to/it"
            )
        else:
            hint = "a truncated or corrupt download? Delete it and run again."
        raise DatasetError(f"{archive}: not a readable gzip tar archive ({type(exc).__name__}: {exc}); {hint}") from exc
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }


def balanced_subset(labels: np.ndarray, limit: int | None, key: str) -> np.ndarray:
    """Indices of the first `limit` images taking classes in turn (class-balanced), in dataset order."""
    if limit is None:
        return np.arange(labels.size)
    if limit >= labels.size:
        if limit > labels.size:
            log.warning(
                "%s=%d is larger than the %d images there are: all %d are used", key, limit, labels.size, labels.size
            )
        return np.arange(labels.size)
    per_class = [limit // NUM_CLASSES + (1 if c < limit % NUM_CLASSES else 0) for c in range(NUM_CLASSES)]
    picks = []
    for c, want in enumerate(per_class):
        idx = np.flatnonzero(labels == c)
        if idx.size < want:
            raise DatasetError(f"{key}={limit} needs {want} images of class {c}, the data has {idx.size}")
        picks.append(idx[:want])
    return np.sort(np.concatenate(picks))


def prepare(
    archive: Path,
    out_npz: Path,
    out_meta: Path,
    *,
    train_limit: int | None,
    test_limit: int | None,
    archive_set_in: str = "local.yaml or the study's config",
) -> dict:
    """Decode `archive` into `out_npz` (uint8 images N x 3 x 32 x 32, uint8 labels) and describe it in
    `out_meta` (checksums, sizes, class counts). `archive_set_in`: see read_archive."""
    arrays = read_archive(archive, archive_set_in)
    keep_train = balanced_subset(arrays["y_train"], train_limit, "dataset.train_limit")
    keep_test = balanced_subset(arrays["y_test"], test_limit, "dataset.test_limit")
    arrays = {
        "x_train": arrays["x_train"][keep_train],
        "y_train": arrays["y_train"][keep_train],
        "x_test": arrays["x_test"][keep_test],
        "y_test": arrays["y_test"][keep_test],
    }
    md5, sha256 = _digests(archive, "md5", "sha256")
    meta = {
        "archive": str(archive),
        "md5": md5,
        # The subsets asked for: with the md5, what the workflow compares with the config (study_state).
        "train_limit": train_limit,
        "test_limit": test_limit,
        "sha256": sha256,
        "train_size": int(arrays["y_train"].size),
        "test_size": int(arrays["y_test"].size),
        "train_class_counts": np.bincount(arrays["y_train"], minlength=NUM_CLASSES).tolist(),
        "test_class_counts": np.bincount(arrays["y_test"], minlength=NUM_CLASSES).tolist(),
    }
    with atomic_path(out_npz) as tmp:
        np.savez(tmp, **arrays)
        meta["npz_size"] = tmp.stat().st_size
        (meta["npz_sha256"],) = _digests(tmp, "sha256")
    atomic_write_json(out_meta, meta)
    return meta


def verify_cache(npz: Path, meta: dict) -> None:
    """The cache is what prepare() wrote: same size and sha256 as recorded then."""
    if "npz_sha256" not in meta:
        return  # a cache made before checksums were recorded
    try:
        size = Path(npz).stat().st_size
    except OSError as exc:
        raise DamagedCacheError(f"{npz}: cannot read the dataset cache ({exc.strerror}).") from None
    if size != meta["npz_size"] or _digests(npz, "sha256")[0] != meta["npz_sha256"]:
        raise DamagedCacheError(
            f"{npz} is damaged: its size or sha256 differs from the one recorded when it was made "
            f"({size} bytes, {meta['npz_size']} recorded)."
        )


def load_cache(npz: Path) -> dict[str, np.ndarray]:
    with np.load(npz) as f:
        return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def load_meta(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def add_source_arguments(parser) -> None:
    """--archive / --data / --train-limit / --test-limit, for the commands that run outside the workflow."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--archive", type=Path, help="cifar-10-python.tar.gz, decoded into OUT/data/")
    src.add_argument("--data", type=Path, help="a dataset cache made by the workflow (results/data/cifar10.npz)")
    parser.add_argument("--train-limit", type=int, help="with --archive: a class-balanced training subset")
    parser.add_argument("--test-limit", type=int, help="with --archive: a class-balanced test subset")


def source_cache(args, out: Path) -> tuple[Path, Path]:
    """The cache and its description named by add_source_arguments' options, decoding --archive first."""
    if args.archive is None:
        return args.data, args.data.with_suffix(".json")
    npz, meta = out / "data" / "cifar10.npz", out / "data" / "cifar10.json"
    prepare(args.archive, npz, meta, train_limit=args.train_limit, test_limit=args.test_limit)
    return npz, meta
