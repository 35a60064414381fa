"""What a scene source is (local STAC, STAC API, Earth Engine); the scene record it lists is
:class:`soilclay.contract.SceneRef`."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from soilclay.contract import SceneRef


class SceneSource(Protocol):
    """Lists the scenes of an AOI acquired or published since a watermark (all when None)."""

    source: str

    def list_scenes(self, aoi_geometry: dict, collections: tuple[str, ...],
                    since: datetime | None = None) -> list[SceneRef]: ...
