"""Object store for composites, reports and models: a local directory or a GCS bucket prefix.

Readers must never see half-written objects, because downstream consumers (TF Serving polling a model base
path, report links, composite readers) act as soon as a name appears. Hence every write is a *publish*:

- **Local**: data is written to a hidden temporary name (``.{name}.tmp-{uuid}``) in the destination directory
  and moved into place with ``os.replace``/``os.link``/``os.rename``, which are atomic within one filesystem.
- **GCS**: a single upload is already atomic (an object appears only when complete), but files are still
  uploaded to a staging object ``{prefix}/_staging/{uuid}-{basename}`` and then copied server-side
  (``rewrite``) to the final name. The slow, failure-prone part (the upload from the worker) then never touches
  final names; the same pattern publishes directory trees (a SavedModel) with a short server-side copy window
  closed by a ``_COMPLETE`` marker; and a crash leaves debris only under ``_staging/``, where
  :meth:`ObjectStore.cleanup_staging` (a janitor) can remove it without guessing.

Published objects are immutable by default (no-clobber): publishing identical content again is a no-op (so a
retried Airflow task is harmless), different content under an existing key raises :class:`FinalExternalError`
unless ``overwrite=True``. On GCS the no-clobber rule is checked before the upload and enforced at the final
copy with ``if_generation_match=0``, so a concurrent publisher cannot be overwritten silently.

Directory trees are complete only once ``{key_prefix}/_COMPLETE`` exists (a JSON manifest of sizes and CRC32C
checksums written last); readers treat a prefix without it as absent (:meth:`ObjectStore.is_complete`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import http.client
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote

import google_crc32c
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError

if TYPE_CHECKING:
    from google.cloud import storage

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


def _conflict(uri: str) -> FinalExternalError:
    return FinalExternalError(
        f"{uri} already exists with different content; published objects are immutable, "
        "pass overwrite=True to replace it or publish under a new key"
    )


def _redact(url: str) -> str:
    """Hide any ``user:password@`` in a URL before it goes into a message."""
    return re.sub(r"//[^/@]*@", "//***@", url)


# --- local directory -----------------------------------------------------------------------------------------


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


class LocalStore:
    """An :class:`ObjectStore` on a local (or mounted) filesystem below ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _install(self, dest: Path, fill: Callable[[BinaryIO], object], *, overwrite: bool) -> str:
        """Write via ``fill`` into a hidden temporary next to ``dest``, fsync, then move it into place."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(dest)
        try:
            with open(tmp, "xb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            if dest.is_file() and _same_file(tmp, dest):
                pass  # idempotent re-publish
            elif overwrite:
                os.replace(tmp, dest)
            else:
                try:
                    os.link(tmp, dest)  # atomic and refuses to clobber, like if_generation_match=0
                except FileExistsError:
                    if not _same_file(tmp, dest):
                        raise _conflict(str(dest)) from None
                except OSError as e:  # a filesystem without hard links (some FUSE mounts): check, then replace
                    if e.errno not in _NO_LINK_ERRNOS:
                        raise
                    if dest.exists():
                        raise _conflict(str(dest)) from None
                    os.replace(tmp, dest)
        except Exception:
            tmp.unlink(missing_ok=True)
            raise
        tmp.unlink(missing_ok=True)
        _fsync_dir(dest.parent)
        return str(dest)

    def publish_file(self, local_path: Path, key: str, *, overwrite: bool = False) -> str:
        """Copy ``local_path`` to ``key`` atomically; identical content already there is a no-op."""
        src = _source_file(local_path)
        dest = self._path(key)

        def fill(f: BinaryIO) -> None:
            with open(src, "rb") as s:
                shutil.copyfileobj(s, f, _CHUNK)

        uri = self._install(dest, fill, overwrite=overwrite)
        log.debug("published %s", uri)
        return uri

    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> str:
        return self._install(self._path(key), lambda f: f.write(data), overwrite=overwrite)

    def is_complete(self, key_prefix: str) -> bool:
        return self.exists(f"{check_key(key_prefix)}/{COMPLETE_MARKER}")

    def _read_manifest(self, target: Path) -> dict[str, Any] | None:
        marker = target / COMPLETE_MARKER
        return _parse_manifest(marker.read_bytes()) if marker.is_file() else None

    def publish_dir(self, local_dir: Path, key_prefix: str, *, overwrite: bool = False) -> str:
        """Copy a tree to a hidden sibling, add ``_COMPLETE``, and rename the whole directory into place."""
        files = _dir_files(local_dir)
        manifest = _manifest(files)
        target = self._path(key_prefix)
        if self._read_manifest(target) == manifest:
            return str(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(target)
        try:
            for rel, src in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, tmp / rel)
            (tmp / COMPLETE_MARKER).write_bytes(_manifest_bytes(manifest))
            self._swap_in(tmp, target, manifest, overwrite=overwrite)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(target.parent)
        log.debug("published tree %s (%d files)", target, len(files))
        return str(target)

    def _swap_in(self, tmp: Path, target: Path, manifest: dict[str, Any], *, overwrite: bool) -> None:
        try:
            os.rename(tmp, target)  # fails if target is a non-empty directory
            return
        except OSError:
            if not target.exists():
                raise
        existing = self._read_manifest(target)
        if existing == manifest:
            shutil.rmtree(tmp)  # a concurrent publisher won with the same tree
            return
        if existing is not None and not overwrite:
            raise _conflict(str(target))
        # Replace (or a tree without _COMPLETE, which was never published): between the two renames the
        # prefix is briefly absent, never partial.
        old = _temp_name(target, "old")
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)

    def download(self, key: str, local_path: Path) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise FileNotFoundError(f"object not found: {src}")
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(dest)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except Exception:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"object not found: {path}")
        return path.read_bytes()

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix`` (a plain string prefix, as in GCS), sorted, temporaries hidden."""
        _check_prefix(prefix)
        start = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not name.startswith(".") and key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> bool:
        """Remove one object; returns False if it was already absent (so retries are harmless)."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def cleanup_staging(self, older_than_seconds: float) -> int:
        """Remove hidden temporaries (files or trees) at least ``older_than_seconds`` old; returns how many."""
        if older_than_seconds < 0:
            raise BadInputError(f"older_than_seconds must be >= 0, found {older_than_seconds}")
        cutoff = time.time() - older_than_seconds
        removed = 0
        if not self.root.is_dir():
            return 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in [*dirnames, *filenames]:
                path = Path(dirpath, name)
                if not _TEMP_RE.match(name) or path.lstat().st_mtime > cutoff:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                    dirnames.remove(name)
                else:
                    path.unlink(missing_ok=True)
                removed += 1
        return removed


# --- Google Cloud Storage ------------------------------------------------------------------------------------

_TRANSIENT: tuple[type[BaseException], ...] = (
    gexc.ServerError,  # 500, 502, 503, 504 (501 is excluded below)
    gexc.TooManyRequests,
    gexc.RetryError,  # the client's own retries ran out of time
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
    http.client.HTTPException,
    auth_exc.TransportError,
)


@contextlib.contextmanager
def _gcs_errors(uri: str) -> Iterator[None]:
    """Map google-cloud exceptions to soilclay's error tree (the one place that does), chaining the cause.

    Messages name the URI and the server's message, never credentials (tokens travel in headers only).
    """
    try:
        yield
    except gexc.NotFound as e:
        raise FileNotFoundError(f"object not found: {uri} ({e.message})") from e
    except gexc.MethodNotImplemented as e:
        raise FinalExternalError(f"GCS does not support this operation on {uri}: {e.message}") from e
    except _TRANSIENT as e:
        raise TransientExternalError(f"GCS failed transiently on {uri}, retry later: {e}") from e
    except gexc.GoogleAPICallError as e:  # Forbidden, Unauthorized, BadRequest, PreconditionFailed, ...
        if e.code == 408:  # request timeout has no class of its own
            raise TransientExternalError(f"GCS timed out on {uri}, retry later: {e}") from e
        raise FinalExternalError(f"GCS refused the request on {uri}: {e.code} {e.message}") from e
    except auth_exc.GoogleAuthError as e:  # no or bad credentials; the message names no secret
        raise FinalExternalError(f"cannot authenticate to GCS for {uri}: {type(e).__name__}: {e}") from e
    except Exception as e:
        from google.cloud.storage.exceptions import DataCorruption

        if isinstance(e, DataCorruption):  # checksum mismatch on download: fetching again may succeed
            raise TransientExternalError(f"corrupted transfer of {uri}, retry: {e}") from e
        raise


def _retry() -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY


class GcsStore:
    """An :class:`ObjectStore` on ``gs://bucket/prefix``.

    Retries: uploads to unique staging names, downloads, deletes and overwriting copies are idempotent, so they
    use ``DEFAULT_RETRY`` (exponential backoff on 429/5xx/connection errors, 120 s deadline). No-clobber copies
    carry ``if_generation_match=0``, which makes them retryable too; a retry that finds its own earlier,
    acknowledged-but-lost write gets 412 and is then accepted because the content is identical.
    """

    def __init__(self, bucket: str, prefix: str = "", client: storage.Client | None = None) -> None:
        if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket):
            raise BadInputError(f"invalid GCS bucket name {bucket!r}: expected 3-222 of [a-z0-9._-]")
        prefix = (prefix or "").strip("/")
        if prefix:
            check_key(prefix)
        self.bucket_name = bucket
        self.prefix = prefix
        self.url = f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"
        self._client = client
        self._bucket: storage.Bucket | None = None

    def __repr__(self) -> str:
        return f"GcsStore({self.url!r})"

    @property
    def bucket(self) -> storage.Bucket:
        """Created lazily, so building a store (e.g. at DAG parse time) needs no credentials."""
        if self._bucket is None:
            if self._client is None:
                from google.cloud import storage

                with _gcs_errors(self.url):
                    self._client = storage.Client()
            self._bucket = self._client.bucket(self.bucket_name)
        return self._bucket

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def _staging_root(self) -> str:
        return self._name(STAGING_DIR)

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(check_key(key))}"

    def exists(self, key: str) -> bool:
        uri = self.uri(key)
        with _gcs_errors(uri):
            return bool(self.bucket.blob(self._name(key)).exists(retry=_retry()))

    def _get(self, name: str) -> storage.Blob | None:
        return self.bucket.get_blob(name, retry=_retry())

    @staticmethod
    def _same(blob: storage.Blob | None, crc32c: str, size: int) -> bool:
        return blob is not None and blob.crc32c == crc32c and blob.size == size

    def _upload_staging(self, src: Path, suffix: str) -> storage.Blob:
        blob = self.bucket.blob(f"{self._staging_root}/{suffix}")
        blob.upload_from_filename(str(src), retry=_retry())  # unique name: a repeated upload is harmless
        return blob

    def _copy(self, source: storage.Blob, name: str, *, no_clobber: bool) -> None:
        """Server-side copy; ``rewrite`` (not ``copy_blob``) because large cross-class copies need tokens."""
        dest = self.bucket.blob(name)
        token = None
        while True:
            if no_clobber:
                token, _, _ = dest.rewrite(source, token=token, if_generation_match=0)
            else:
                token, _, _ = dest.rewrite(source, token=token, retry=_retry())
            if token is None:
                return

    def _discard(self, blobs: list[storage.Blob], *, strict: bool = False) -> None:
        """Delete objects. Not ``strict`` (staging debris): failures are logged and left for
        :meth:`cleanup_staging`, so they never mask the outcome of a publish."""
        for blob in blobs:
            try:
                blob.delete(retry=_retry())
            except gexc.NotFound:
                pass
            except Exception as e:
                if strict:
                    raise
                log.warning("could not delete staging object gs://%s/%s: %s", self.bucket_name, blob.name, e)

    def publish_file(self, local_path: Path, key: str, *, overwrite: bool = False) -> str:
        """Upload to ``_staging/``, copy to ``key`` server-side, delete the staging object."""
        src = _source_file(local_path)
        uri, name = self.uri(key), self._name(key)
        crc32c, size = _crc32c_file(src), src.stat().st_size
        with _gcs_errors(uri):
            existing = self._get(name)
            if self._same(existing, crc32c, size):
                return uri
            if existing is not None and not overwrite:
                raise _conflict(uri)
            staged = self._upload_staging(src, f"{uuid.uuid4().hex}-{src.name}")
            try:
                try:
                    self._copy(staged, name, no_clobber=not overwrite)
                except gexc.PreconditionFailed:  # someone (maybe our own lost retry) created it meanwhile
                    if not self._same(self._get(name), crc32c, size):
                        raise _conflict(uri) from None
            except Exception:
                self._discard([staged])
                raise
            self._discard([staged])
        log.debug("published %s", uri)
        return uri

    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> str:
        """Upload directly: a single GCS upload is atomic, and small payloads need no staging or janitor."""
        uri, name = self.uri(key), self._name(key)
        crc32c = _crc32c_bytes(data)
        with _gcs_errors(uri):
            existing = self._get(name)
            if self._same(existing, crc32c, len(data)):
                return uri
            if existing is not None and not overwrite:
                raise _conflict(uri)
            blob = self.bucket.blob(name)
            try:
                if overwrite:
                    blob.upload_from_string(data, retry=_retry())
                else:
                    blob.upload_from_string(data, if_generation_match=0, retry=_retry())
            except gexc.PreconditionFailed:
                if not self._same(self._get(name), crc32c, len(data)):
                    raise _conflict(uri) from None
        return uri

    def is_complete(self, key_prefix: str) -> bool:
        return self.exists(f"{check_key(key_prefix)}/{COMPLETE_MARKER}")

    def _read_manifest(self, marker_name: str) -> dict[str, Any] | None:
        try:
            return _parse_manifest(self.bucket.blob(marker_name).download_as_bytes(retry=_retry()))
        except gexc.NotFound:
            return None

    def publish_dir(self, local_dir: Path, key_prefix: str, *, overwrite: bool = False) -> str:
        """Upload a tree to ``_staging/{uuid}/``, copy each file to its final name, write ``_COMPLETE`` last.

        Files are copied (fast, server-side) only after every upload succeeded. Two concurrent publishes of
        *different* trees to one prefix are not isolated (the marker only has one winner), so use a fresh
        prefix (a new model version) per publish.
        """
        files = _dir_files(local_dir)
        manifest = _manifest(files)
        uri = self.uri(check_key(key_prefix))
        marker = self._name(f"{key_prefix}/{COMPLETE_MARKER}")
        with _gcs_errors(uri):
            existing = self._read_manifest(marker)
            if existing == manifest:
                return uri
            if existing is not None and not overwrite:
                raise _conflict(uri)
            token = uuid.uuid4().hex
            staged: list[storage.Blob] = []
            try:
                for rel, src in files.items():
                    staged.append(self._upload_staging(src, f"{token}/{rel}"))
                if existing is not None:  # from here on readers see the prefix as absent
                    self.bucket.blob(marker).delete(retry=_retry())
                for rel, blob in zip(files, staged, strict=True):
                    self._copy(blob, self._name(f"{key_prefix}/{rel}"), no_clobber=False)
                wanted = {self._name(f"{key_prefix}/{rel}") for rel in files} | {marker}
                stale = [b for b in self._list_blobs(self._name(f"{key_prefix}/")) if b.name not in wanted]
                self._discard(stale, strict=True)
                try:
                    self.bucket.blob(marker).upload_from_string(
                        _manifest_bytes(manifest), content_type="application/json", if_generation_match=0
                    )
                except gexc.PreconditionFailed:
                    if self._read_manifest(marker) != manifest:
                        raise _conflict(uri) from None
            except Exception:
                self._discard(staged)
                raise
            self._discard(staged)
        log.debug("published tree %s (%d files)", uri, len(files))
        return uri

    def download(self, key: str, local_path: Path) -> Path:
        uri = self.uri(key)
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(dest)
        try:
            with _gcs_errors(uri):
                self.bucket.blob(self._name(key)).download_to_filename(str(tmp), retry=_retry())
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def read_bytes(self, key: str) -> bytes:
        uri = self.uri(key)
        with _gcs_errors(uri):
            return self.bucket.blob(self._name(key)).download_as_bytes(retry=_retry())

    def _list_blobs(self, name_prefix: str) -> list[storage.Blob]:
        return list(self.bucket.list_blobs(prefix=name_prefix or None, retry=_retry()))

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, relative to the store prefix, sorted, ``_staging/`` hidden."""
        _check_prefix(prefix)
        root = f"{self.prefix}/" if self.prefix else ""
        with _gcs_errors(f"gs://{self.bucket_name}/{root}{prefix}"):
            names = [b.name[len(root):] for b in self._list_blobs(root + prefix)]
        return sorted(n for n in names if not n.startswith(f"{STAGING_DIR}/"))

    def delete(self, key: str) -> bool:
        """Remove one object; returns False if it was already absent (so retries are harmless)."""
        uri = self.uri(key)
        try:
            with _gcs_errors(uri):
                self.bucket.blob(self._name(key)).delete(retry=_retry())
        except FileNotFoundError:
            return False
        return True

    def cleanup_staging(self, older_than_seconds: float) -> int:
        """Delete staging objects created at least ``older_than_seconds`` ago; returns how many."""
        if older_than_seconds < 0:
            raise BadInputError(f"older_than_seconds must be >= 0, found {older_than_seconds}")
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_seconds)
        with _gcs_errors(f"gs://{self.bucket_name}/{self._staging_root}/"):
            old = [b for b in self._list_blobs(f"{self._staging_root}/") if b.time_created <= cutoff]
        self._discard(old)
        return len(old)


# --- choosing a store ----------------------------------------------------------------------------------------


def open_store(url: str, *, gcs_client: storage.Client | None = None) -> ObjectStore:
    """``gs://bucket/prefix`` → :class:`GcsStore`; ``file:///abs`` or a plain path → :class:`LocalStore`."""
    if not isinstance(url, str) or not url.strip():
        raise BadInputError(f"empty store URL {url!r}: expected {ACCEPTED_URLS}")
    match = _SCHEME_RE.match(url)
    if match is None:
        return LocalStore(url)
    scheme, rest = match.group(1).lower(), url[match.end():]
    if scheme == "gs" and rest.startswith("//"):
        bucket, _, prefix = rest[2:].partition("/")
        try:
            return GcsStore(bucket, prefix, client=gcs_client)
        except BadInputError as e:
            raise BadInputError(f"invalid store URL {_redact(url)!r}: {e}; expected {ACCEPTED_URLS}") from e
    if scheme == "file" and rest.startswith("///"):
        return LocalStore(unquote(rest[2:]))
    raise BadInputError(f"unsupported store URL {_redact(url)!r}: expected {ACCEPTED_URLS}")
