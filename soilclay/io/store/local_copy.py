"""A local file for a stored object's URI (what rasterio and TensorFlow read)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from soilclay.errors import BadInputError

if TYPE_CHECKING:
    from soilclay.io.store import ObjectStore


def local_path(uri: str, store: ObjectStore | None, tmpdir: Path) -> str:
    """A local file path for a composite URI: a path or ``file://`` URI as it is; a ``gs://`` object
    downloaded (through ``store`` when the URI lies under it, else a store on the URI's bucket)."""
    parsed = urlparse(uri)
    if parsed.scheme == "gs":
        from soilclay.io.store import open_store

        prefix = f"{store.url.rstrip('/')}/" if store is not None else ""
        if store is None or not uri.startswith(prefix):
            store, prefix = open_store(f"gs://{parsed.netloc}"), f"gs://{parsed.netloc}/"
        key = uri[len(prefix):]
        return str(store.download(key, tmpdir / Path(key).name))
    if parsed.scheme == "file":
        uri = unquote(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise BadInputError(f"unsupported composite URI {uri!r}: expected a local path, file:// or gs://")
    if not Path(uri).is_file():
        raise BadInputError(f"composite file {uri} not found")
    return uri
