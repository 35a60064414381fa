"""Scene source backed by the Earth Engine catalogue (``COPERNICUS/S2_SR_HARMONIZED``,
``COPERNICUS/S1_GRD``): the scenes the Earth Engine backend would composite.

One ``getInfo()`` per call fetches a compact row per scene for all requested collections; the
conversion of those rows to :class:`SceneRef` is a pure function (:func:`scene_refs_from_rows`).

Earth Engine exposes no publication time, so the watermark compares acquisition time
(``system:time_start``): a scene ingested late, after a newer one was already seen, is missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import ee

from soilclay.contract import S1_COLLECTION, S2_COLLECTION, SceneRef
from soilclay.earthengine.assets import S1_ASSET, S2_ASSET, image_id
from soilclay.earthengine.errors import translated
from soilclay.earthengine.filters import acquired_after, s1_iw_dual_pol_filter
from soilclay.earthengine.geometry import geometry_from_geojson
from soilclay.errors import BadInputError, FinalExternalError

SOURCE = "earthengine"
ASSET_OF = {S2_COLLECTION: S2_ASSET, S1_COLLECTION: S1_ASSET}
#: Image properties of one row, per collection: id, acquisition (ms), platform, cloud cover, orbit pass.
ROW_PROPERTIES = {
    S2_COLLECTION: ("system:index", "system:time_start", "SPACECRAFT_NAME", "CLOUDY_PIXEL_PERCENTAGE",
                    "orbitProperties_pass"),
    S1_COLLECTION: ("system:index", "system:time_start", "platform_number", "CLOUDY_PIXEL_PERCENTAGE",
                    "orbitProperties_pass"),
}
_ROW = "soilclay_row"


def _platform(collection: str, value: object) -> str:
    """STAC-style platform: ``Sentinel-2A`` as Earth Engine names it; ``sentinel-1a`` from 'A'."""
    if value is None or value == "":
        return "unknown"
    if collection == S1_COLLECTION:
        return f"sentinel-1{str(value).lower()}"
    return str(value)


def scene_ref_from_row(collection: str, row: Sequence) -> SceneRef:
    """One :class:`SceneRef` from a row ``[system:index, system:time_start ms, platform,
    cloud cover %, orbit pass]`` (missing values as None)."""
    if collection not in ASSET_OF:
        raise BadInputError(f"collection must be one of {sorted(ASSET_OF)}, found {collection!r}")
    if len(row) != 5:
        raise BadInputError(f"expected a row of 5 values [index, time_start, platform, cloud, pass], found {row!r}")
    index, time_start, platform, cloud, orbit_pass = row
    if not index or not isinstance(time_start, int | float):
        raise BadInputError(f"{collection} row needs system:index and a numeric system:time_start, found {row!r}")
    return SceneRef(
        scene_id=str(index),
        collection=collection,
        platform=_platform(collection, platform),
        acquired_at=datetime.fromtimestamp(time_start / 1000, tz=UTC),
        source=SOURCE,
        href=image_id(ASSET_OF[collection], str(index)),
        cloud_cover=float(cloud) if cloud is not None and collection == S2_COLLECTION else None,
        orbit_state=str(orbit_pass).lower() if orbit_pass and collection == S1_COLLECTION else None,
    )


def scene_refs_from_rows(rows_by_collection: Mapping[str, Sequence[Sequence]]) -> list[SceneRef]:
    """All :class:`SceneRef` of a ``{collection: [row, ...]}`` answer, sorted by acquisition."""
    refs = [scene_ref_from_row(collection, row) for collection, rows in rows_by_collection.items() for row in rows]
    return sorted(refs, key=lambda ref: (ref.acquired_at, ref.collection, ref.scene_id))


def _collection(collection: str, region: ee.Geometry, since: datetime | None) -> ee.ImageCollection:
    scenes = ee.ImageCollection(ASSET_OF[collection]).filterBounds(region)
    if collection == S1_COLLECTION:
        scenes = scenes.filter(s1_iw_dual_pol_filter())
    if since is not None:
        scenes = scenes.filter(acquired_after(since))
    return scenes


def _rows(collection: str, scenes: ee.ImageCollection) -> ee.List:
    """One list per scene. A row is built per image (rather than zipping ``aggregate_array``
    columns) because ``aggregate_array`` skips missing values, which would misalign columns."""
    properties = ROW_PROPERTIES[collection]

    def with_row(image) -> ee.Image:
        image = ee.Image(image)
        return image.set(_ROW, ee.List([image.get(name) for name in properties]))

    return scenes.map(with_row).aggregate_array(_ROW)


def rows_query(aoi_geometry: dict, collections: tuple[str, ...], since: datetime | None) -> ee.Dictionary:
    """The server-side ``{collection: [row, ...]}`` for the AOI, unevaluated."""
    unknown = [c for c in collections if c not in ASSET_OF]
    if unknown:
        raise BadInputError(f"collections must be among {sorted(ASSET_OF)}, found {unknown}")
    region = geometry_from_geojson(aoi_geometry)
    return ee.Dictionary({c: _rows(c, _collection(c, region, since)) for c in collections})


class EarthEngineSceneSource:
    """:class:`~soilclay.scenes.types.SceneSource` over the Earth Engine catalogue. Assumes
    :func:`soilclay.earthengine.session.initialize` was called."""

    source = SOURCE

    def list_scenes(self, aoi_geometry: dict, collections: tuple[str, ...],
                    since: datetime | None = None) -> list[SceneRef]:
        """Scenes intersecting the AOI acquired after ``since`` (all when None)."""
        query = rows_query(aoi_geometry, collections, since)
        with translated("Earth Engine scene listing failed"):
            answer = query.getInfo()
        if not isinstance(answer, Mapping):
            raise FinalExternalError(f"Earth Engine scene listing returned {type(answer).__name__}, expected a dict")
        return scene_refs_from_rows({c: answer.get(c) or [] for c in collections})
