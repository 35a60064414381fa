"""Reading areas of interest from vector files (GeoJSON, GeoPackage, Shapefile)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

from soilclay.errors import BadInputError

log = logging.getLogger(__name__)

_AREAL = ("Polygon", "MultiPolygon")


def _geodesic_km2(geom) -> float:
    """Area on the WGS 84 ellipsoid of a lon/lat geometry, in km² (as its rings say, valid or not)."""
    from pyproj import Geod

    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(geom)
    return abs(area) / 1e6


def _check_lonlat_bounds(path: Path, bounds, crs_text: str, stage: str) -> None:
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    if not all(math.isfinite(b) for b in (minx, miny, maxx, maxy)) or \
            minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise BadInputError(
            f"AOI file {path}: coordinates outside longitude/latitude range{stage} "
            f"(bounds {minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g}; expected longitude in [-180, 180] "
            f"and latitude in [-90, 90] for CRS {crs_text}); "
            "the file probably holds projected coordinates; declare its CRS")


def _repaired(path: Path, index: int, geom, warn: Callable[[str], None]):
    """``geom`` (lon/lat), made valid if it is not; refused if the repair leaves no (Multi)Polygon."""
    import shapely
    from shapely.validation import explain_validity

    if geom.is_valid:
        return geom
    why = explain_validity(geom)
    fixed = shapely.make_valid(geom)
    if fixed.is_empty or fixed.geom_type not in _AREAL:
        raise BadInputError(
            f"AOI file {path}: feature {index} is an invalid polygon ({why}) and repairing it gives "
            f"{'nothing' if fixed.is_empty else fixed.geom_type}; expected a Polygon or MultiPolygon")
    warn(f"AOI file {path}: feature {index} was an invalid polygon ({why}); repaired it to a "
         f"{fixed.geom_type}, area {_geodesic_km2(geom):.3f} km2 as drawn -> {_geodesic_km2(fixed):.3f} km2")
    return fixed


def read_aoi_file(path: Path, warn: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """(geometry in EPSG:4326 as GeoJSON, properties of the first feature) from a vector file.

    Refused (:class:`BadInputError`): a missing or unreadable file, no features, no CRS, coordinates
    outside the longitude/latitude range, geometry that is not areal. An invalid (e.g. self-intersecting)
    polygon is repaired with ``shapely.make_valid`` and reported through ``warn`` (default: a logged
    warning), unless the repair leaves something other than a (Multi)Polygon, which is refused."""
    import geopandas as gpd
    from pyogrio.errors import DataSourceError

    warn = warn or log.warning
    if not path.exists():
        raise BadInputError(f"AOI file not found: {path}")
    try:
        frame = gpd.read_file(path)
    except DataSourceError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInputError(f"AOI file {path} is not a readable vector file "
                            f"(GeoJSON, GeoPackage, Shapefile): {first}") from None
    if frame.empty:
        raise BadInputError(f"AOI file {path} has no features")
    if frame.crs is None:
        raise BadInputError(f"AOI file {path} declares no CRS")
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    if frame.empty:
        raise BadInputError(f"AOI file {path} has no feature with a geometry")
    crs_text = frame.crs.to_string()
    if frame.crs.is_geographic:
        _check_lonlat_bounds(path, frame.total_bounds, crs_text, "")
    frame = frame.to_crs(4326)
    _check_lonlat_bounds(path, frame.total_bounds, crs_text, " after reprojection to EPSG:4326")
    kinds = sorted(set(frame.geometry.geom_type) - set(_AREAL))
    if kinds:
        raise BadInputError(f"AOI in {path} must be areal (Polygon or MultiPolygon), found {', '.join(kinds)}")
    parts = [_repaired(path, i, g, warn) for i, g in enumerate(frame.geometry)]
    geom = gpd.GeoSeries(parts, crs=4326).union_all()
    if geom.geom_type not in _AREAL:
        raise BadInputError(f"AOI in {path} must be areal, found {geom.geom_type}")
    props = {k: v for k, v in frame.iloc[0].items() if k != "geometry"}
    return json.loads(json.dumps(geom.__geo_interface__)), props
