"""GcsStore: a Cloud Storage bucket prefix as object store (staging upload, then server-side copy)."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError
from soilclay.io.store._common import (
    _BUCKET_RE,
    COMPLETE_MARKER,
    STAGING_DIR,
    _check_prefix,
    _conflict,
    _crc32c_bytes,
    _crc32c_file,
    _dir_files,
    _manifest,
    _manifest_bytes,
    _parse_manifest,
    _source_file,
    _temp_name,
    check_key,
    log,
)

if TYPE_CHECKING:
    from google.cloud import storage


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
