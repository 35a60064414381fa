"""The service's state for monitoring: one :class:`Snapshot`, read with four set-based queries in one
read-only, repeatable-read transaction (so every figure comes from the same moment).

Reads only the ``monitoring_*`` views of migration 0005, so it works as ``soilclay_reader``. Call
:func:`read_snapshot` inside :func:`soilclay.db.tx.reading` (errors translated there).

What "newest" means: a composite series' newest version (highest ``version`` per AOI and sensor); a
composite's newest input scene is the newest scene of its collection, from its backend's sources, acquired in
its window and recorded before it was registered (composites store their window and a hash of the scene ids,
not the ids). Current estimates: the champion's, of the parcel's current geometry, on the AOI's newest
Sentinel-2 composite and (when the estimate used one) its newest Sentinel-1 composite. An AOI's parcels are
those whose current geometry intersects it, as the database keeps them in ``parcel_aois`` (migration 0005's
triggers), so a scrape does no spatial test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class SceneSeries:
    """Scenes recorded for one AOI and collection, and the AOI's newest composite of that sensor (None: none)."""

    aoi: str
    sensor: str
    collection: str
    recorded: int
    newest_acquired: datetime | None
    newest_recorded: datetime | None
    composite: CompositeState | None = None


@dataclass(frozen=True)
class CompositeState:
    version: int
    created_at: datetime
    scene_count: int
    skipped_count: int
    newest_scene: datetime | None
    #: Recorded scenes acquired after ``newest_scene``.
    scenes_newer: int


@dataclass(frozen=True)
class ModelVersionState:
    version: int
    status: str
    promoted_at: datetime | None
    gate_rmse: float | None
    gate_r2: float | None


@dataclass(frozen=True)
class ParcelState:
    aoi: str
    parcels: int
    estimated_current: int
    #: Current estimates per flag (only flags that occur).
    flagged: Mapping[str, int]
    #: Newest current estimate minus the newest composite's registration; now minus it while there is
    #: none; None without a composite.
    lag_seconds: float | None

    @property
    def waiting(self) -> int:
        return max(self.parcels - self.estimated_current, 0)


@dataclass(frozen=True)
class RunGroup:
    """Pipeline runs of one stage with one status."""

    stage: str
    status: str
    runs: int
    duration_sum: float
    duration_count: int
    last_end: datetime | None


@dataclass(frozen=True)
class Snapshot:
    aois: tuple[str, ...]
    scenes: tuple[SceneSeries, ...]
    models: tuple[ModelVersionState, ...]
    parcels: tuple[ParcelState, ...]
    runs: tuple[RunGroup, ...]

    @property
    def champion(self) -> ModelVersionState | None:
        return next((m for m in self.models if m.status == "champion"), None)


_SCENES = text("""
WITH kinds AS (
    SELECT k.sensor, k.collection
    FROM unnest(CAST(:sensors AS text[]), CAST(:collections AS text[])) AS k(sensor, collection)
), scene_stats AS (
    SELECT aoi_id, collection, count(*) AS recorded, max(acquired_at) AS newest_acquired,
           max(first_seen_at) AS newest_recorded
    FROM soilclay.monitoring_scenes GROUP BY aoi_id, collection
), newest AS (
    SELECT DISTINCT ON (aoi_id, sensor) aoi_id, sensor, version, period_start, period_end, scene_count,
           skipped_count, backend, created_at
    FROM soilclay.monitoring_composites ORDER BY aoi_id, sensor, version DESC
), lineage AS (
    SELECT n.*, k.collection,
           (SELECT max(s.acquired_at) FROM soilclay.monitoring_scenes AS s
            WHERE s.aoi_id = n.aoi_id AND s.collection = k.collection
              AND s.source IN (SELECT jsonb_array_elements_text(CAST(:sources AS jsonb) -> n.backend))
              AND s.acquired_at >= (n.period_start::timestamp AT TIME ZONE 'UTC')
              AND s.acquired_at < ((n.period_end + 1)::timestamp AT TIME ZONE 'UTC')
              AND s.first_seen_at <= n.created_at) AS newest_scene
    FROM newest AS n JOIN kinds AS k USING (sensor)
)
SELECT a.name AS aoi, k.sensor, k.collection, coalesce(st.recorded, 0) AS recorded, st.newest_acquired,
       st.newest_recorded, l.version, l.created_at, l.scene_count, l.skipped_count, l.newest_scene,
       CASE WHEN l.version IS NOT NULL THEN
           (SELECT count(*) FROM soilclay.monitoring_scenes AS s
            WHERE s.aoi_id = a.aoi_id AND s.collection = k.collection
              AND s.acquired_at > coalesce(l.newest_scene, '-infinity'))
       END AS scenes_newer
FROM soilclay.monitoring_aois AS a CROSS JOIN kinds AS k
LEFT JOIN scene_stats AS st ON st.aoi_id = a.aoi_id AND st.collection = k.collection
LEFT JOIN lineage AS l ON l.aoi_id = a.aoi_id AND l.sensor = k.sensor
ORDER BY a.name, k.sensor
""")

_MODELS = text("""
SELECT version, status, promoted_at,
       CASE WHEN jsonb_typeof(gate->'candidate_rmse') IN ('number', 'string') THEN (gate->>'candidate_rmse')::float8
       END AS gate_rmse,
       CASE WHEN jsonb_typeof(gate->'candidate_r2') IN ('number', 'string') THEN (gate->>'candidate_r2')::float8
       END AS gate_r2
FROM soilclay.monitoring_model_versions ORDER BY version
""")

_PARCELS = text("""
WITH newest AS (
    SELECT DISTINCT ON (aoi_id, sensor) aoi_id, sensor, composite_id, created_at
    FROM soilclay.monitoring_composites ORDER BY aoi_id, sensor, version DESC
), targets AS (
    -- the AOI's parcels: its rows in parcel_aois (kept by the database's triggers), counted index-only
    SELECT a.aoi_id, a.name, s2.composite_id AS s2_id, s1.composite_id AS s1_id,
           greatest(s2.created_at, s1.created_at) AS composite_created,
           (SELECT count(*) FROM soilclay.monitoring_parcel_aois AS m WHERE m.aoi_id = a.aoi_id) AS parcels
    FROM soilclay.monitoring_aois AS a
    LEFT JOIN newest AS s2 ON s2.aoi_id = a.aoi_id AND s2.sensor = 'sentinel-2'
    LEFT JOIN newest AS s1 ON s1.aoi_id = a.aoi_id AND s1.sensor = 'sentinel-1'
), per_flags AS (
    -- Per AOI, its parcels' current estimates: the champion's on the AOI's newest S2 composite (and its newest
    -- S1 one when the estimate used S1, preferred), of the geometry the parcel has now (parcel_aois carries
    -- the current geom_hash). Both sides are index-only scans in parcel_key order: a merge join, no spatial
    -- test. Grouped by flags right away (a handful of groups per AOI).
    SELECT t.aoi_id, c.flags, count(*) AS n, max(c.predicted_at) AS newest
    FROM targets AS t CROSS JOIN LATERAL (
        SELECT DISTINCT ON (e.parcel_key) e.flags, e.predicted_at
        FROM soilclay.monitoring_parcel_estimates AS e
        JOIN soilclay.monitoring_parcel_aois AS m ON m.parcel_key = e.parcel_key AND m.geom_hash = e.geom_hash
        WHERE m.aoi_id = t.aoi_id
          AND e.model_version = (SELECT version FROM soilclay.monitoring_model_versions WHERE status = 'champion')
          AND e.s2_composite_id = t.s2_id AND (e.s1_composite_id IS NULL OR e.s1_composite_id = t.s1_id)
        ORDER BY e.parcel_key, e.s1_composite_id DESC NULLS LAST
    ) AS c
    GROUP BY t.aoi_id, c.flags
), current AS (
    SELECT aoi_id, sum(n) AS n, max(newest) AS newest FROM per_flags GROUP BY aoi_id
), flag_counts AS (
    SELECT aoi_id, jsonb_object_agg(flag, n) AS flags
    FROM (SELECT p.aoi_id, f.flag, sum(p.n) AS n FROM per_flags AS p, unnest(p.flags) AS f(flag) GROUP BY 1, 2) AS x
    GROUP BY aoi_id
)
SELECT t.name AS aoi, t.parcels, coalesce(c.n, 0) AS estimated, coalesce(f.flags, '{}') AS flags,
       CASE WHEN t.composite_created IS NULL THEN NULL
            WHEN c.newest IS NOT NULL THEN greatest(extract(epoch FROM c.newest - t.composite_created), 0)
            ELSE greatest(extract(epoch FROM now() - t.composite_created), 0)
       END::float8 AS lag_seconds
FROM targets AS t
LEFT JOIN current AS c USING (aoi_id)
LEFT JOIN flag_counts AS f USING (aoi_id)
ORDER BY t.name
""")

_RUNS = text("""
SELECT stage, status, count(*) AS runs,
       coalesce(sum(extract(epoch FROM finished_at - started_at)), 0)::float8 AS duration_sum,
       count(finished_at) AS duration_count, max(finished_at) AS last_end
FROM soilclay.monitoring_pipeline_runs GROUP BY stage, status ORDER BY stage, status
""")


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def read_snapshot(conn: Connection, *, collections: Mapping[str, str], scene_sources: Mapping[str, tuple[str, ...]],
                  statement_timeout_ms: int = 10_000) -> Snapshot:
    """The state of every AOI, the models and the pipeline runs. ``collections``: sensor -> scene collection
    (:data:`soilclay.contract.COLLECTION_OF`); ``scene_sources``: composite backend -> the scene sources it
    reads (:data:`soilclay.contract.SCENE_SOURCES`)."""
    conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    conn.execute(text("SELECT set_config('statement_timeout', :t, true), set_config('work_mem', '32MB', true)"),
                 {"t": str(int(statement_timeout_ms))})
    sensors = sorted(collections)
    scenes = []
    for r in conn.execute(_SCENES, {"sensors": sensors, "collections": [collections[s] for s in sensors],
                                    "sources": json.dumps({k: list(v) for k, v in scene_sources.items()})}):
        composite = None if r.version is None else CompositeState(
            r.version, r.created_at, r.scene_count, r.skipped_count, r.newest_scene, int(r.scenes_newer or 0))
        scenes.append(SceneSeries(r.aoi, r.sensor, r.collection, int(r.recorded), r.newest_acquired,
                                  r.newest_recorded, composite))
    models = tuple(ModelVersionState(r.version, r.status, r.promoted_at, _finite(r.gate_rmse), _finite(r.gate_r2))
                   for r in conn.execute(_MODELS))
    parcels = tuple(ParcelState(r.aoi, int(r.parcels), int(r.estimated), {k: int(v) for k, v in r.flags.items()},
                                _finite(r.lag_seconds)) for r in conn.execute(_PARCELS))
    runs = tuple(RunGroup(r.stage, r.status, int(r.runs), float(r.duration_sum), int(r.duration_count), r.last_end)
                 for r in conn.execute(_RUNS))
    return Snapshot(tuple(p.aoi for p in parcels), tuple(scenes), models, parcels, runs)
