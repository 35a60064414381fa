"""Record newly seen scenes per AOI, idempotently: listing again adds nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from soilclay.contract import COLLECTIONS
from soilclay.db import scenes as scene_rows
from soilclay.db.aois import get_aoi
from soilclay.db.tx import transaction
from soilclay.scenes.types import SceneSource

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


def sync_scenes(engine: Engine, aoi_name: str, source: SceneSource,
                collections: tuple[str, ...] = COLLECTIONS) -> SyncResult:
    """List the AOI's scenes since the watermark (minus an overlap) and record the new ones."""
    with transaction(engine, f"recording the scenes of AOI {aoi_name}") as conn:
        aoi = get_aoi(conn, aoi_name)
        scene_rows.lock_aoi(conn, aoi_name)
        before = scene_rows.watermark(conn, aoi.aoi_id, source.source)
        since = before - OVERLAP if before else None
        scenes = source.list_scenes(aoi.geometry, collections, since)
        new = scene_rows.record_scenes(conn, aoi.aoi_id, source.source, scenes)
        after = scene_rows.watermark(conn, aoi.aoi_id, source.source)
    return SyncResult(aoi_name, len(scenes), new, before, after, list(getattr(source, "skipped", [])))
