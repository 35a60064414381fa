"""Read-only summaries across tables, for people (``soilclay demo-summary``)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, text

#: A first query for a reader of the results (printed by the demo summary).
EXAMPLE_QUERY = ("SELECT parcel_id, round(clay::numeric, 1) AS clay, round(clay_lower::numeric, 1) AS lower,\n"
                 "       round(clay_upper::numeric, 1) AS upper, model_version, s2_composite_version, flags\n"
                 "FROM soilclay.parcel_clay_latest WHERE clay > 30 ORDER BY clay DESC LIMIT 10;")


def scene_counts(conn: Connection, aoi_id: int) -> dict[str, int]:
    """Scenes recorded for the AOI per collection."""
    return dict(conn.execute(text(
        "SELECT collection, count(*) FROM soilclay.scenes WHERE aoi_id = :a GROUP BY collection ORDER BY 1"),
        {"a": aoi_id}).all())


def composite_versions(conn: Connection, aoi_id: int) -> list[dict]:
    """Every composite version of the AOI (sensor, version, scenes, period, backend, created_at)."""
    return [dict(r._mapping) for r in conn.execute(text(
        "SELECT sensor, version, scene_count, period_start, period_end, backend, created_at "
        "FROM soilclay.composites WHERE aoi_id = :a ORDER BY sensor DESC, version"), {"a": aoi_id})]


def model_versions(conn: Connection) -> list[dict]:
    """Every model version with its status, per-model metrics, validation protocol and gate reason."""
    return [dict(r._mapping) for r in conn.execute(text(
        "SELECT version, status, metrics->'models' AS models, metrics->>'protocol' AS protocol, decision_reason "
        "FROM soilclay.model_versions ORDER BY version"))]


def latest_estimates(conn: Connection, aoi_id: int) -> pd.DataFrame:
    """``parcel_clay_latest`` for the parcels inside the AOI (NULL estimates where a parcel has none)."""
    return pd.read_sql(text(
        "SELECT l.parcel_id, l.clay, l.clay_lower, l.clay_upper, l.flags, l.model_version "
        "FROM soilclay.parcel_clay_latest l JOIN soilclay.aois a ON ST_Intersects(l.geom, a.geom) "
        "WHERE a.aoi_id = :a"), conn, params={"a": aoi_id})


def run_counts(conn: Connection) -> dict[str, int]:
    """Pipeline runs per status."""
    return dict(conn.execute(text(
        "SELECT status, count(*) FROM soilclay.pipeline_runs GROUP BY status ORDER BY 1")).all())
