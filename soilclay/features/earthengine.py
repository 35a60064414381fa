"""The feature table through Earth Engine: ``Image.sampleRegions`` over the sample points, and its
``getInfo()`` rows as the same table the local path builds. Earth Engine drops masked pixels
itself: there, excluded = requested - rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from soilclay.errors import BadInputError
from soilclay.features.table import ID_COLUMNS, S1_FEATURES, S2_FEATURES, as_table

if TYPE_CHECKING:
    import ee


def ee_feature_image(s2: ee.Image, s1: ee.Image | None = None) -> ee.Image:
    """The bands sampled as features: :data:`S2_FEATURES` of the Sentinel-2 composite, then
    :data:`S1_FEATURES` of the Sentinel-1 composite when given."""
    image = s2.select(list(S2_FEATURES))
    return image if s1 is None else image.addBands(s1.select(list(S1_FEATURES)))


def ee_sample_points(image: ee.Image, points: pd.DataFrame, scale: float, *, crs: str) -> ee.FeatureCollection:
    """``image.sampleRegions`` at the points (columns ``sample_id``, ``point_id``, ``lon``, ``lat``
    (EPSG:4326), ``clay``), copying those columns as properties, with ``geometries=True``.

    The sampling grid is always ``crs`` (the composite's grid CRS) with pixel edges on multiples of
    ``scale`` -- the lattice :func:`soilclay.earthengine.exports.export_to_gcs` exports -- so the sampled
    pixels are the exported ones and the ones the local path samples (without a projection Earth Engine
    would sample on another lattice, up to a pixel away). Points on masked pixels are dropped by Earth
    Engine. The points travel inside the request, which suits the hundreds to few thousands of samples
    per AOI.
    """
    missing = [c for c in ID_COLUMNS if c not in points.columns]
    if missing:
        raise BadInputError(f"points need columns {', '.join(ID_COLUMNS)}; missing {', '.join(missing)}")
    if not scale or scale <= 0:
        raise BadInputError(f"scale must be a positive number of metres, found {scale!r}")
    from soilclay.earthengine.geometry import grid_projection, point_features

    records = [{"sample_id": int(p.sample_id), "point_id": str(p.point_id), "lon": float(p.lon), "lat": float(p.lat),
                "clay": float(p.clay)} for p in points.itertuples(index=False)]
    projection = grid_projection(crs, scale)  # refuses a missing or empty CRS
    return image.sampleRegions(collection=point_features(records), properties=list(ID_COLUMNS),
                               scale=scale, projection=projection, geometries=True)


def ee_rows_to_table(rows: list[dict] | dict) -> pd.DataFrame:
    """The ``getInfo()`` result of :func:`ee_sample_points` (its feature list, or the collection dict)
    as the feature table of the local path. ``lon``/``lat`` are the samples' own positions (the
    properties), not the pixel centres sampleRegions snaps geometries to."""
    features = rows.get("features", []) if isinstance(rows, dict) else rows
    records = []
    for i, feature in enumerate(features):
        props = dict(feature.get("properties") or {})
        if "sample_id" not in props:
            raise BadInputError(f"Earth Engine feature {i} has no sample_id property; found {sorted(props)}")
        if "lon" not in props or "lat" not in props:
            coordinates = (feature.get("geometry") or {}).get("coordinates") or [None, None]
            props.setdefault("lon", coordinates[0])
            props.setdefault("lat", coordinates[1])
        records.append(props)
    frame = pd.DataFrame.from_records(records)
    with_s1 = any(c in frame.columns for c in S1_FEATURES)
    return as_table(frame, with_s1)
