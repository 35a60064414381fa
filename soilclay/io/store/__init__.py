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

from typing import TYPE_CHECKING
from urllib.parse import unquote

from soilclay.errors import BadInputError
from soilclay.io.store._common import (
    _SCHEME_RE,
    ACCEPTED_URLS,
    COMPLETE_MARKER,
    STAGING_DIR,
    ObjectStore,
    _redact,
    check_key,
    split_gs_url,
)
from soilclay.io.store.gcs import GcsStore
from soilclay.io.store.local import LocalStore

if TYPE_CHECKING:
    from google.cloud import storage

__all__ = ["ACCEPTED_URLS", "COMPLETE_MARKER", "STAGING_DIR", "GcsStore", "LocalStore", "ObjectStore", "check_key",
           "open_store", "split_gs_url"]


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

