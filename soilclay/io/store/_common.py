"""Shared parts of the object stores: the protocol, key checks, checksums, manifests."""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import google_crc32c

from soilclay.errors import BadInputError

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
COMPLETE_MARKER = "_COMPLETE"
ACCEPTED_URLS = "a local path, file:///absolute/path or gs://bucket[/prefix]"

_TEMP_RE = re.compile(r"^\..+\.(?:tmp|old)-[0-9a-f]{32}$")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_CHUNK = 1 << 20
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}


@runtime_checkable
class ObjectStore(Protocol):
    """What the pipeline needs from a store. Keys are relative ``a/b/c.tif`` paths below :attr:`url`."""

    url: str

    def uri(self, key: str) -> str: ...
    def exists(self, key: str) -> bool: ...
    def publish_file(self, local_path: Path, key: str, *, overwrite: bool = False) -> str: ...
    def publish_dir(self, local_dir: Path, key_prefix: str, *, overwrite: bool = False) -> str: ...
    def is_complete(self, key_prefix: str) -> bool: ...
    def download(self, key: str, local_path: Path) -> Path: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> str: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def delete(self, key: str) -> bool: ...
    def cleanup_staging(self, older_than_seconds: float) -> int: ...


# --- keys, checksums, manifests ---------------------------------------------------------------------------


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise :class:`BadInputError` naming it.

    Dot-prefixed parts and a leading ``_staging`` are reserved for temporaries, which :meth:`list` hides.
    """
    expected = "expected a relative key like 'composites/2024/tile.tif'"
    if not isinstance(key, str) or not key:
        raise BadInputError(f"invalid object key {key!r}: empty; {expected}")
    if key.startswith("/") or "\\" in key:
        raise BadInputError(f"invalid object key {key!r}: leading '/' or backslash; {expected}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BadInputError(f"invalid object key {key!r}: empty, '.' or '..' part; {expected}")
    if any(part.startswith(".") for part in parts) or parts[0] == STAGING_DIR:
        raise BadInputError(f"invalid object key {key!r}: '.'-prefixed parts and {STAGING_DIR}/ are reserved")
    if any(ord(ch) < 32 for ch in key):
        raise BadInputError(f"invalid object key {key!r}: control characters; {expected}")
    return key


def _check_prefix(prefix: str) -> str:
    """A listing prefix: empty, a key, or a key followed by '/'."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _crc32c_file(path: Path) -> str:
    """Base64 CRC32C as GCS reports it (``Blob.crc32c``)."""
    checksum = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")


def _crc32c_bytes(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii")


def _source_file(local_path: Path) -> Path:
    path = Path(local_path)
    if not path.is_file():
        raise BadInputError(f"publish_file needs an existing regular file, found nothing at {path}")
    return path


def _dir_files(local_dir: Path) -> dict[str, Path]:
    """Files of a tree by key-relative path; SavedModel graphs last, so a poller sees variables first."""
    root = Path(local_dir)
    if not root.is_dir():
        raise BadInputError(f"publish_dir needs an existing directory, found nothing at {root}")
    files = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    if not files:
        raise BadInputError(f"publish_dir needs a directory with files, found an empty tree at {root}")
    for rel in files:
        check_key(rel)
        if rel == COMPLETE_MARKER:
            raise BadInputError(f"{root} already contains {COMPLETE_MARKER}, which publish_dir writes itself")
    return dict(sorted(files.items(), key=lambda kv: (Path(kv[0]).name.startswith("saved_model."), kv[0])))


def _manifest(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {rel: {"size": p.stat().st_size, "crc32c": _crc32c_file(p)} for rel, p in files.items()}


def _manifest_bytes(manifest: dict[str, dict[str, Any]]) -> bytes:
    return json.dumps({"files": manifest}, sort_keys=True, indent=1).encode()


def _parse_manifest(data: bytes) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return json.loads(data).get("files")
    return None


def _conflict(uri: str) -> BadInputError:
    """A write that contradicts what is stored is bad input (see :mod:`soilclay.errors`), never final."""
    return BadInputError(
        f"{uri} already exists with different content; published objects are immutable, "
        "pass overwrite=True to replace it or publish under a new key"
    )


def split_gs_url(url: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix/`` -> ``("bucket", "some/prefix")``: the bucket and the object prefix without
    leading or trailing '/' (``""`` at the bucket root). Anything else raises :class:`BadInputError`."""
    if not isinstance(url, str) or not url.startswith("gs://"):
        raise BadInputError(f"expected a gs://bucket[/prefix] URL, found {_redact(str(url))!r}")
    bucket, _, prefix = url.removeprefix("gs://").partition("/")
    if not _BUCKET_RE.match(bucket):
        raise BadInputError(f"invalid GCS bucket name {bucket!r} in {_redact(url)!r}: expected 3-222 of [a-z0-9._-]")
    return bucket, prefix.strip("/")


def _redact(url: str) -> str:
    """Hide any ``user:password@`` in a URL before it goes into a message."""
    return re.sub(r"//[^/@]*@", "//***@", url)


# --- local files ---------------------------------------------------------------------------------------------


def _temp_name(dest: Path, kind: str = "tmp") -> Path:
    return dest.with_name(f".{dest.name}.{kind}-{uuid.uuid4().hex}")


def _fsync_dir(path: Path) -> None:
    """Make a rename durable; best effort (not every platform can open directories)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _same_file(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and _crc32c_file(a) == _crc32c_file(b)


