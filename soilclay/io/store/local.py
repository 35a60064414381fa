"""LocalStore: a directory tree as object store (publish by atomic rename)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from soilclay.errors import BadInputError
from soilclay.io.store._common import (
    _CHUNK,
    _NO_LINK_ERRNOS,
    _TEMP_RE,
    COMPLETE_MARKER,
    _check_prefix,
    _conflict,
    _dir_files,
    _fsync_dir,
    _manifest,
    _manifest_bytes,
    _parse_manifest,
    _same_file,
    _source_file,
    _temp_name,
    check_key,
    log,
)

if TYPE_CHECKING:
    pass



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
