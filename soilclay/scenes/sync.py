"""Record newly seen scenes per AOI, idempotently: listing again adds nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, text

from soilclay.db.aois import get_aoi
from soilclay.scenes.types import COLLECTIONS, SceneRef, SceneSource

#: Look back this far before the watermark: late-published scenes are caught; duplicates are ignored.
OVERLAP = timedelta(days=3)


@dataclass
class SyncResult:
    aoi: str
    listed: int
    new: dict[str, int]
    watermark_before: datetime | None
    watermark_after: datetime | None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def new_total(self) -> int:
        return sum(self.new.values())

    def render(self) -> str:
        parts = ", ".join(f"{n} {c}" for c, n in self.new.items()) or "none"
        lines = [f"AOI {self.aoi}: listed {self.listed} scenes since "
                 f"{self.watermark_before.isoformat() if self.watermark_before else 'the beginning'}; "
                 f"new: {parts}"]
        lines += [f"  skipped {where}: {why}" for where, why in self.skipped]
        return "\n".join(lines)


def watermark(conn: Connection, aoi_id: int, source: str) -> datetime | None:
    return conn.execute(text(
        "SELECT max(coalesce(published_at, acquired_at)) FROM soilclay.scenes WHERE aoi_id = :a AND source = :s"),
        {"a": aoi_id, "s": source}).scalar()


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


def sync_scenes(engine: Engine, aoi_name: str, source: SceneSource,
                collections: tuple[str, ...] = COLLECTIONS) -> SyncResult:
    """List the AOI's scenes since the watermark (minus an overlap) and record the new ones."""
    with engine.begin() as conn:
        aoi = get_aoi(conn, aoi_name)
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('scenes:' || :a))"), {"a": aoi_name})
        before = watermark(conn, aoi.aoi_id, source.source)
        since = before - OVERLAP if before else None
        scenes = source.list_scenes(aoi.geometry, collections, since)
        new = record_scenes(conn, aoi.aoi_id, source.source, scenes)
        after = watermark(conn, aoi.aoi_id, source.source)
    return SyncResult(aoi_name, len(scenes), new, before, after, list(getattr(source, "skipped", [])))
