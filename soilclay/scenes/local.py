"""Scene source over a local STAC archive: a directory tree of Item JSON files (as the demo world
writes, or as `stac-asset`/`pystac` downloads leave them). Unreadable Items are skipped, logged
and counted, naming the file."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import shapely
from shapely.geometry import shape

from soilclay.contract import S1_COLLECTION, SceneRef
from soilclay.errors import BadInputError

log = logging.getLogger(__name__)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def item_to_scene(item: dict, href: str, source: str = "local") -> SceneRef:
    """A STAC Item (dict) as a SceneRef; raises KeyError/ValueError on a malformed Item."""
    props = item["properties"]
    acquired = _parse_time(props.get("datetime") or props.get("start_datetime"))
    if acquired is None:
        raise ValueError("Item has no datetime")
    return SceneRef(
        scene_id=item["id"], collection=item["collection"], platform=props.get("platform", "unknown"),
        acquired_at=acquired, source=source, href=href, published_at=_parse_time(props.get("created")),
        cloud_cover=props.get("eo:cloud_cover"),
        orbit_state=props.get("sat:orbit_state") if item["collection"] == S1_COLLECTION else None,
        footprint=item.get("geometry"),
        properties={k: props[k] for k in ("s1:scale", "sar:instrument_mode", "sar:polarizations", "proj:code")
                    if k in props},
    )


class LocalStacSource:
    """Lists Items below ``root`` whose footprint intersects the AOI."""

    source = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.skipped: list[tuple[str, str]] = []

    def list_scenes(self, aoi_geometry: dict, collections: tuple[str, ...],
                    since: datetime | None = None) -> list[SceneRef]:
        if not self.root.is_dir():
            raise BadInputError(f"scene archive not found: {self.root}")
        aoi = shape(aoi_geometry)
        out: list[SceneRef] = []
        self.skipped = []
        for path in sorted(self.root.rglob("*.json")):
            if any(part.startswith(".") for part in path.relative_to(self.root).parts):
                continue  # staging folders of an archive being written
            try:
                item = json.loads(path.read_text())
                if item.get("type") != "Feature" or item.get("collection") not in collections:
                    continue
                scene = item_to_scene(item, str(path.resolve()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.skipped.append((str(path), f"unreadable STAC Item: {exc}"))
                log.warning("skipped %s: unreadable STAC Item: %s", path, exc)
                continue
            if scene.footprint is not None and not shapely.intersects(aoi, shape(scene.footprint)):
                continue
            seen = scene.published_at or scene.acquired_at
            if since is not None and seen <= since and scene.acquired_at <= since:
                continue
            out.append(scene)
        return sorted(out, key=lambda s: (s.acquired_at, s.scene_id))
