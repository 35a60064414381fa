"""Read-only queries of the parcel map page: vector tiles, one parcel's detail and history, per-AOI status.

Every query runs inside :func:`read_only_as`: a ``READ ONLY`` transaction that has switched to
``soilclay_reader`` (:data:`READER`) with ``SET LOCAL ROLE`` before its first query, so the page's
connection can see exactly what the reader is granted and can write nothing, whatever login the connection
uses. The reader reads views only: the parcel queries ``parcel_clay_latest`` and ``parcel_clay_history``;
the status queries the ``status_*`` views of migration 0006 (AOIs, composites, model versions, runs with
their masked errors) and ``monitoring_scenes`` of 0005.

Geometries are stored in EPSG:4326; tiles are in EPSG:3857 (``ST_TileEnvelope``), extents are returned
in both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from soilclay.db.tx import translated

#: The role of every query of the page: SELECT on views only.
READER = "soilclay_reader"
ROLES = (READER,)
#: Name of the layer inside every tile.
LAYER = "parcels"
EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 24


@contextmanager
def read_only_as(engine: Engine, role: str, what: str = "reading the parcel map") -> Iterator[Connection]:
    """A READ ONLY transaction as ``role`` (:data:`READER`, the only one of :data:`ROLES`), rolled back at
    the end; driver errors translated (:mod:`soilclay.db.tx`)."""
    if role not in ROLES:
        raise ValueError(f"not a parcel map role: {role!r}")
    with translated(what), engine.connect() as conn:
        conn.begin()
        try:
            conn.execute(text("SET TRANSACTION READ ONLY"))
            conn.execute(text(f'SET LOCAL ROLE "{role}"'))
            conn.execute(text("SET LOCAL statement_timeout = '15s'"))
            yield conn
        finally:
            conn.rollback()


def tile_in_range(z: int, x: int, y: int) -> bool:
    return 0 <= z <= MAX_ZOOM and 0 <= x < 2 ** z and 0 <= y < 2 ** z


def tile(conn: Connection, z: int, x: int, y: int) -> bytes:
    """The Mapbox vector tile ``z/x/y`` (XYZ, EPSG:3857) of the parcels with their latest estimate:
    layer :data:`LAYER`, feature id ``parcel_key``; empty bytes when no parcel touches the tile."""
    data = conn.execute(text(f"""
        WITH env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS e3857,
                            ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {BUFFER / EXTENT}), 4326) AS e4326),
        features AS (
            SELECT ST_AsMVTGeom(ST_Transform(l.geom, 3857), env.e3857, {EXTENT}, {BUFFER}, true) AS geom,
                   l.parcel_key AS fid, l.parcel_key, l.source, l.parcel_id,
                   l.clay, l.clay_lower, l.clay_upper, l.clay_upper - l.clay_lower AS width,
                   array_to_string(l.flags, ',') AS flags, l.pixel_count, l.model_version, l.model_status,
                   l.s2_composite_version, l.s1_composite_id, l.predicted_at::text AS predicted_at
            FROM soilclay.parcel_clay_latest AS l, env
            WHERE l.geom && env.e4326
        )
        SELECT ST_AsMVT(features, '{LAYER}', {EXTENT}, 'geom', 'fid') FROM features WHERE geom IS NOT NULL
    """), {"z": z, "x": x, "y": y}).scalar()
    return bytes(data or b"")


_LATEST_COLUMNS = ("parcel_key, source, parcel_id, clay, clay_median, clay_lower, clay_upper, "
                   "clay_upper - clay_lower AS width, pixel_count, bare_fraction, out_of_domain_share, flags, "
                   "model_version, model_status, s2_composite_id, s2_composite_version, s1_composite_id, run_id, "
                   "predicted_at")


@dataclass(frozen=True)
class ParcelDetail:
    latest: dict[str, Any]
    history: list[dict[str, Any]]


def parcel_detail(conn: Connection, parcel_key: int) -> ParcelDetail | None:
    """One parcel's current estimate (``parcel_clay_latest``, with its area and extent) and every estimate
    it has had (``parcel_clay_history``, oldest first); None for an unknown key."""
    row = conn.execute(text(
        f"SELECT {_LATEST_COLUMNS}, ST_Area(geom::geography) / 1e4 AS hectares, "
        "ST_XMin(b) AS xmin, ST_YMin(b) AS ymin, ST_XMax(b) AS xmax, ST_YMax(b) AS ymax "
        "FROM soilclay.parcel_clay_latest, LATERAL (SELECT ST_Transform(geom, 3857)::box2d AS b) AS e "
        "WHERE parcel_key = :k"), {"k": parcel_key}).mappings().first()
    if row is None:
        return None
    history = conn.execute(text(
        "SELECT model_version, model_status, s2_composite_version, s2_period_start, s2_period_end, s1_composite_id, "
        "clay, clay_median, clay_lower, clay_upper, clay_upper - clay_lower AS width, pixel_count, flags, "
        "geometry_current, run_id, predicted_at "
        "FROM soilclay.parcel_clay_history WHERE parcel_key = :k ORDER BY predicted_at, model_version"),
        {"k": parcel_key}).mappings().all()
    latest = dict(row)
    latest["extent_3857"] = [latest.pop(k) for k in ("xmin", "ymin", "xmax", "ymax")]
    return ParcelDetail(latest, [dict(h) for h in history])


def parcels_extent(conn: Connection) -> list[float] | None:
    """[xmin, ymin, xmax, ymax] in EPSG:3857 of all parcels (as the reader sees them), None without any."""
    row = conn.execute(text(
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
        "(SELECT ST_Transform(ST_SetSRID(ST_Extent(geom)::geometry, 4326), 3857)::box2d AS b "
        "FROM soilclay.parcel_clay_latest) AS e")).first()
    return None if row is None or row[0] is None else [float(v) for v in row]


def parcels_in_extent(conn: Connection, extent_3857: tuple[float, float, float, float]) -> int:
    """How many parcels intersect the EPSG:3857 box (what a map of that view draws)."""
    return int(conn.execute(text(
        "SELECT count(*) FROM soilclay.parcel_clay_latest "
        "WHERE ST_Intersects(geom, ST_Transform(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 3857), 4326))"),
        dict(zip(("x0", "y0", "x1", "y1"), extent_3857, strict=True))).scalar_one())


# --- status (views of 0006 and 0005, as the reader) --------------------------------------------------------

def aois(conn: Connection) -> list[dict[str, Any]]:
    """Every AOI with its extent (EPSG:3857 and 4326) and grid CRS, by name."""
    rows = conn.execute(text(
        "SELECT aoi_id, name, grid_crs, description, created_at, "
        "ST_XMin(b) AS xmin, ST_YMin(b) AS ymin, ST_XMax(b) AS xmax, ST_YMax(b) AS ymax, "
        "ST_XMin(geom) AS lon_min, ST_YMin(geom) AS lat_min, ST_XMax(geom) AS lon_max, ST_YMax(geom) AS lat_max "
        "FROM soilclay.status_aois, LATERAL (SELECT ST_Transform(geom, 3857)::box2d AS b) AS e "
        "ORDER BY name")).mappings()
    out = []
    for r in rows:
        d = dict(r)
        d["extent_3857"] = [d.pop(k) for k in ("xmin", "ymin", "xmax", "ymax")]
        d["extent_4326"] = [d.pop(k) for k in ("lon_min", "lat_min", "lon_max", "lat_max")]
        out.append(d)
    return out


def scene_freshness(conn: Connection) -> list[dict[str, Any]]:
    """Per AOI and collection: scene count, newest acquisition and when the newest scene was first seen."""
    return [dict(r) for r in conn.execute(text(
        "SELECT aoi_id, collection, count(*) AS scenes, max(acquired_at) AS newest_acquired, "
        "max(first_seen_at) AS last_seen FROM soilclay.monitoring_scenes GROUP BY aoi_id, collection "
        "ORDER BY aoi_id, collection")).mappings()]


def composite_versions(conn: Connection) -> list[dict[str, Any]]:
    """Every composite version per AOI and sensor, newest first."""
    return [dict(r) for r in conn.execute(text(
        "SELECT aoi_id, composite_id, sensor, version, period_start, period_end, scene_count, skipped_count, "
        "backend, statistic, created_at "
        "FROM soilclay.status_composites ORDER BY aoi_id, sensor, version DESC")).mappings()]


def model_skill(conn: Connection) -> list[dict[str, Any]]:
    """Every model version (shared by all AOIs) with its status, decision and skill: the RMSE it scored on
    the held-out gate set when it was gated (``metrics.data.gate.candidate_rmse``, else the lineage's
``training_data.gate``), the champion's there,
    and the CNN's out-of-fold R2/RMSE; oldest first."""
    return [dict(r) for r in conn.execute(text(
        "SELECT version, status, created_at, promoted_at, decision_reason, gate_rmse, gate_champion_rmse, "
        "gate_samples, cnn_r2, cnn_rmse, training_aoi AS aoi "
        "FROM soilclay.status_model_versions ORDER BY version")).mappings()]


_RUNS = (
    "SELECT aoi_id, run_id, stage, status, error, dag_id, dag_run_id, started_at, finished_at FROM ("
    " SELECT aoi_id, run_id, stage, status, error, dag_id, dag_run_id, started_at, finished_at,"
    "  row_number() OVER (PARTITION BY aoi_id ORDER BY started_at DESC, run_id) AS n"
    " FROM soilclay.status_pipeline_runs WHERE status = ANY(:statuses)"
    ") AS ranked WHERE n <= :n ORDER BY aoi_id, started_at DESC, run_id")
_ALL_STATUSES = ["running", "success", "failed", "skipped"]


def recent_runs(conn: Connection, limit: int = 15) -> list[dict[str, Any]]:
    """The newest runs per AOI (by ``aoi_id`` or the ``aoi`` parameter; runs of no AOI under None)."""
    return [dict(r) for r in conn.execute(text(_RUNS), {"n": limit, "statuses": _ALL_STATUSES}).mappings()]


def recent_failures(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    """The newest failed runs per AOI with their reason (credentials masked, see migration 0006)."""
    return [dict(r) for r in conn.execute(text(_RUNS), {"n": limit, "statuses": ["failed"]}).mappings()]
