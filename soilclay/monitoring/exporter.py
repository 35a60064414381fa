"""soilclay's Prometheus exporter: a custom collector reading one snapshot of PostGIS per scrape.

A scrape always answers: when the database cannot be read, ``soilclay_database_up`` is 0 (with the scrape's
duration) and nothing else; the exporter logs one warning line when reading starts failing (or fails for
another reason) and one info line when it recovers, never a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from soilclay.contract import COLLECTION_OF, SCENE_SOURCES
from soilclay.db.engine import make_engine
from soilclay.db.monitoring import Snapshot, read_snapshot
from soilclay.db.tx import reading
from soilclay.errors import SoilclayError
from soilclay.monitoring.families import exporter_families, snapshot_families
from soilclay.redact import redact

log = logging.getLogger(__name__)

#: Seconds to wait for a connection and for the snapshot's queries, so a scrape never hangs.
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 10_000


def exporter_engine(database_url: str) -> Engine:
    """An engine for the exporter: connections time out after :data:`CONNECT_TIMEOUT_S`."""
    url = make_url(database_url)
    if "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
    return make_engine(url.render_as_string(hide_password=False))


def take_snapshot(engine: Engine) -> Snapshot:
    """One snapshot of the service's state (soilclay's errors when the database cannot be read)."""
    with reading(engine, "reading the monitoring snapshot") as conn:
        return read_snapshot(conn, collections=COLLECTION_OF, scene_sources=SCENE_SOURCES,
                             statement_timeout_ms=STATEMENT_TIMEOUT_MS)


class SoilclayCollector(Collector):
    """Reads a snapshot at every ``collect`` (every scrape) and turns it into the catalogue's families."""

    def __init__(self, engine: Engine, *, snapshot: Callable[[Engine], Snapshot] = take_snapshot,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.engine = engine
        self._snapshot = snapshot
        self._clock = clock
        self._failing: str | None = None  # the reason of the failure last logged

    def describe(self) -> list[Metric]:
        return []  # registering must not reach the database

    def collect(self) -> Iterator[Metric]:
        start = self._clock()
        try:
            snapshot = self._snapshot(self.engine)
        except SoilclayError as exc:
            self._failed(str(exc))
            yield from exporter_families(False, self._clock() - start)
            return
        if self._failing is not None:
            log.info("soilclay exporter: the database is readable again")
            self._failing = None
        families = snapshot_families(snapshot)
        yield from exporter_families(True, self._clock() - start)
        yield from families

    def _failed(self, reason: str) -> None:
        reason = redact(reason.splitlines()[0] if reason else "unknown error")
        if reason != self._failing:
            log.warning("soilclay exporter: database unreadable, publishing soilclay_database_up 0: %s", reason)
            self._failing = reason


def make_registry(engine: Engine) -> CollectorRegistry:
    """A registry with only soilclay's collector (no process or Python metrics: exactly the catalogue)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SoilclayCollector(engine))
    return registry


def scrape(registry: CollectorRegistry) -> str:
    """One scrape in Prometheus' text format."""
    return generate_latest(registry).decode()
