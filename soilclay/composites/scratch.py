"""Per-run scratch directories of the local backend, and the removal of those a killed run left behind.

A run computes in ``{parent}/soilclay-composite-{host}-{pid}-XXXXXXXX`` (``parent``: the configured work
directory, else the system's temporary directory) and removes it when done. A SIGKILLed run cannot, so
each new run first removes the scratch directories of this host whose process is gone. Only this host's
are judged (a work directory may be shared by several machines, whose pids mean nothing here); a pid
that is alive, or reused by another process, keeps its directory: in doubt nothing is removed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "soilclay-composite-"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname()) or "host"


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_scratch(parent: Path) -> list[Path]:
    """Remove this host's scratch directories in ``parent`` whose process is gone; returns them."""
    pattern = re.compile(rf"^{re.escape(PREFIX)}{re.escape(_host())}-(\d+)-")
    removed = []
    for path in sorted(Path(parent).glob(f"{PREFIX}*")):
        match = pattern.match(path.name)
        if not path.is_dir() or match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        log.warning("removed %s: the scratch directory of a composite run that no longer runs", path)
    return removed


@contextmanager
def run_scratch(parent: Path | None = None) -> Iterator[Path]:
    """A scratch directory for one run, removed afterwards; stale ones of killed runs go first."""
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(base)
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{_host()}-{os.getpid()}-", dir=base) as tmp:
        yield Path(tmp)
