"""Geometry for Earth Engine: GeoJSON (EPSG:4326) -> ``ee.Geometry``, sample points as a feature
collection, and the pixel lattice exports and samples share.

Edges are planar in lon/lat, as GeoJSON (RFC 7946) and shapely mean them, not geodesic. A grid is
fixed by its CRS and ``crsTransform`` = ``[res, 0, 0, 0, -res, 0]`` (pixel edges on multiples of the
resolution) rather than ``scale`` alone, so every export and every sample of a grid lands on the same
pixel lattice whatever the region's bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import ee

from soilclay.errors import BadInputError

_POINT_TYPES = ("Point", "MultiPoint")  # Earth Engine takes no geodesic flag for them


class PixelGrid(Protocol):
    """A target grid: a projected CRS (``EPSG:nnnn``) and a square pixel size in its units."""

    @property
    def crs(self) -> str: ...

    @property
    def resolution(self) -> float: ...


def geometry_from_geojson(geojson: Mapping[str, Any]) -> ee.Geometry:
    """An ``ee.Geometry`` from a GeoJSON geometry in EPSG:4326, with planar edges."""
    if not isinstance(geojson, Mapping) or "type" not in geojson or "coordinates" not in geojson:
        raise BadInputError(f"expected a GeoJSON geometry with 'type' and 'coordinates', found {geojson!r:.200}")
    has_edges = geojson["type"] not in _POINT_TYPES
    try:
        return ee.Geometry(dict(geojson), "EPSG:4326", False if has_edges else None)
    except ee.EEException as exc:
        raise BadInputError(f"not a usable GeoJSON geometry ({exc}): {geojson!r:.200}") from exc


def point(lon: float, lat: float) -> ee.Geometry:
    """The point ``lon``, ``lat`` (degrees, EPSG:4326)."""
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError):
        raise BadInputError(f"a point needs numeric lon and lat, found {lon!r}, {lat!r}") from None
    if not (math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
        raise BadInputError(f"a point needs lon in [-180, 180] and lat in [-90, 90], found {lon!r}, {lat!r}")
    return ee.Geometry.Point([x, y])


def point_features(records: Iterable[Mapping[str, Any]], *, lon: str = "lon",
                   lat: str = "lat") -> ee.FeatureCollection:
    """One point feature per record, at its ``lon``/``lat`` fields, with the whole record as its
    properties (values must be JSON-like: str, int, float, bool, None)."""
    features = []
    for i, record in enumerate(records):
        if lon not in record or lat not in record:
            raise BadInputError(f"record {i} needs fields {lon!r} and {lat!r}, found {sorted(record)}")
        features.append(ee.Feature(point(record[lon], record[lat]), dict(record)))
    return ee.FeatureCollection(features)


def crs_transform(resolution: float) -> list[float]:
    """The affine ``crsTransform`` of a north-up grid of ``resolution`` with edges on its multiples."""
    res = float(resolution)
    if not math.isfinite(res) or res <= 0:
        raise BadInputError(f"a grid resolution must be a positive number, found {resolution!r}")
    return [res, 0, 0, 0, -res, 0]


def grid_projection(crs: str, resolution: float) -> ee.Projection:
    """The ``ee.Projection`` of the lattice of ``resolution`` in ``crs`` (for ``sampleRegions``,
    ``reproject``): the lattice :func:`soilclay.earthengine.exports.export_to_gcs` exports on."""
    if not isinstance(crs, str) or not crs:
        raise BadInputError(f"a grid needs a CRS like 'EPSG:32633', found {crs!r}")
    return ee.Projection(crs, crs_transform(resolution))
