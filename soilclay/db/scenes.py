"""Repository of ``soilclay.scenes``: the Sentinel scenes seen per AOI."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, text

from soilclay.contract import SceneRef
from soilclay.db.tx import advisory_lock

_INSERT = text("""
INSERT INTO soilclay.scenes (aoi_id, scene_id, collection, platform, acquired_at, published_at, source,
                             cloud_cover, footprint, href, properties)
SELECT :aoi_id, r.scene_id, r.collection, r.platform, r.acquired_at, r.published_at, :source, r.cloud_cover,
       CASE WHEN r.footprint IS NULL THEN NULL
            ELSE ST_Multi(ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON(r.footprint), 4326))) END,
       r.href, coalesce(r.properties, '{}'::jsonb)
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    scene_id text, collection text, platform text, acquired_at timestamptz, published_at timestamptz,
    cloud_cover real, footprint jsonb, href text, properties jsonb)
ON CONFLICT (aoi_id, scene_id) DO NOTHING
RETURNING collection
""")


def lock_aoi(conn: Connection, aoi_name: str) -> None:
    """Serialise scene syncs of one AOI until the transaction ends."""
    advisory_lock(conn, f"scenes:{aoi_name}")


def watermark(conn: Connection, aoi_id: int, source: str) -> datetime | None:
    """The newest publication (else acquisition) time recorded for the AOI from ``source``."""
    return conn.execute(text(
        "SELECT max(coalesce(published_at, acquired_at)) FROM soilclay.scenes WHERE aoi_id = :a AND source = :s"),
        {"a": aoi_id, "s": source}).scalar()


def record_scenes(conn: Connection, aoi_id: int, source: str, scenes: list[SceneRef]) -> dict[str, int]:
    """Insert scenes not yet known for the AOI; returns the count of new ones per collection."""
    if not scenes:
        return {}
    rows = [{
        "scene_id": s.scene_id, "collection": s.collection, "platform": s.platform,
        "acquired_at": s.acquired_at.isoformat(),
        "published_at": s.published_at.isoformat() if s.published_at else None,
        "cloud_cover": s.cloud_cover, "footprint": s.footprint, "href": s.href,
        "properties": {**s.properties, **({"orbit_state": s.orbit_state} if s.orbit_state else {})},
    } for s in scenes]
    inserted = conn.execute(_INSERT, {"aoi_id": aoi_id, "source": source, "rows": json.dumps(rows)}).scalars()
    counts: dict[str, int] = {}
    for collection in inserted:
        counts[collection] = counts.get(collection, 0) + 1
    return counts


def newest_acquisition(conn: Connection, aoi_id: int) -> date | None:
    """The UTC date of the AOI's newest scene, or None before the first."""
    value = conn.execute(text("SELECT max(acquired_at) FROM soilclay.scenes WHERE aoi_id = :a"), {"a": aoi_id}).scalar()
    return value.astimezone(UTC).date() if value else None


def scenes_in_window(conn: Connection, aoi_id: int, collection: str, start: date, end: date,
                     sources: tuple[str, ...]) -> list[SceneRef]:
    """The AOI's scenes of ``collection`` from ``sources`` acquired on ``start``..``end`` (inclusive),
    oldest first."""
    rows = conn.execute(text(
        "SELECT scene_id, collection, platform, acquired_at, published_at, source, cloud_cover, href, properties "
        "FROM soilclay.scenes WHERE aoi_id = :a AND collection = :c AND source = ANY(:src) "
        "AND acquired_at >= :s AND acquired_at < :e ORDER BY acquired_at, scene_id"),
        {"a": aoi_id, "c": collection, "src": list(sources),
         "s": datetime.combine(start, datetime.min.time(), UTC),
         "e": datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)}).mappings()
    return [SceneRef(scene_id=r["scene_id"], collection=r["collection"], platform=r["platform"],
                     acquired_at=r["acquired_at"], source=r["source"], href=r["href"] or "",
                     published_at=r["published_at"], cloud_cover=r["cloud_cover"],
                     orbit_state=r["properties"].get("orbit_state"), properties=r["properties"]) for r in rows]
