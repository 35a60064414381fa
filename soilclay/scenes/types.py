"""The contract between scene sources (local STAC, STAC API, Earth Engine) and the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

S2_COLLECTION = "sentinel-2-l2a"
S1_COLLECTION = "sentinel-1-grd"
COLLECTIONS = (S2_COLLECTION, S1_COLLECTION)
SENSOR_OF = {S2_COLLECTION: "sentinel-2", S1_COLLECTION: "sentinel-1"}
COLLECTION_OF = {v: k for k, v in SENSOR_OF.items()}


@dataclass(frozen=True)
class SceneRef:
    """One scene as a source lists it. ``href`` locates it for the backend that reads it: the
    STAC Item JSON (local/STAC API) or the Earth Engine asset id."""

    scene_id: str
    collection: str  # one of COLLECTIONS
    platform: str
    acquired_at: datetime  # timezone-aware, UTC
    source: str  # 'local', 'stac-api' or 'earthengine'
    href: str
    published_at: datetime | None = None
    cloud_cover: float | None = None
    orbit_state: str | None = None  # Sentinel-1: 'ascending' / 'descending'
    footprint: dict | None = None  # GeoJSON geometry in EPSG:4326
    properties: dict = field(default_factory=dict)


class SceneSource(Protocol):
    """Lists the scenes of an AOI acquired or published since a watermark (all when None)."""

    source: str

    def list_scenes(self, aoi_geometry: dict, collections: tuple[str, ...],
                    since: datetime | None = None) -> list[SceneRef]: ...
