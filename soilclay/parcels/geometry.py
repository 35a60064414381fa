"""Parcel geometries: areal parts only, repaired when invalid, reprojected to the storage SRID."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from soilclay.settings import STORAGE_SRID

_POLYGON, _MULTIPOLYGON = 3, 6  # shapely type ids



def _as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Polygons wrapped as MultiPolygons (MultiPolygons unchanged)."""
    out = geoms.copy()
    single = shapely.get_type_id(out) == _POLYGON
    if single.any():
        out[single] = shapely.multipolygons(out[single], indices=np.arange(int(single.sum())))
    return out


def _areal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygonal part of a repaired geometry (empty if none)."""
    if shapely.get_type_id(geom) in (_POLYGON, _MULTIPOLYGON):
        return geom
    polygons = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (_POLYGON, _MULTIPOLYGON)]
    return shapely.union_all(polygons) if polygons else shapely.Polygon()


def _repair(geoms: np.ndarray, mask: np.ndarray, reasons: list[list[str]], repairs: dict[int, str],
            context: str) -> None:
    """Repair the invalid geometries among ``mask`` in place; note the repair or, with no area left, the reason."""
    invalid = np.flatnonzero(mask & ~shapely.is_valid(geoms))
    if not len(invalid):
        return
    why = shapely.is_valid_reason(geoms[invalid])
    fixed = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
    for i, reason, geom in zip(invalid, why, fixed, strict=True):
        geom = _areal(geom)
        if shapely.is_empty(geom) or not shapely.is_valid(geom):
            reasons[i].append(f"invalid geometry{context} ({reason}) with no area left after repair")
        else:
            geoms[i] = geom
            repairs[i] = f"invalid geometry{context} repaired ({reason})"


def check_geometries(geoms: np.ndarray) -> tuple[np.ndarray, list[list[str]], dict[int, str]]:
    """Geometries as 2-D MultiPolygons (invalid ones repaired), the rejection reasons per feature (empty
    list: loadable) and the repairs by feature position."""
    geoms = np.array(geoms, dtype=object)
    reasons: list[list[str]] = [[] for _ in geoms]
    repairs: dict[int, str] = {}
    missing = shapely.is_missing(geoms)
    geoms[~missing] = shapely.force_2d(geoms[~missing])
    empty = ~missing & shapely.is_empty(geoms)
    types = shapely.get_type_id(geoms)
    for i in np.flatnonzero(missing):
        reasons[i].append("no geometry (null)")
    for i in np.flatnonzero(empty):
        reasons[i].append(f"empty geometry ({geoms[i].geom_type})")
    wrong = ~missing & ~empty & ~np.isin(types, [_POLYGON, _MULTIPOLYGON])
    for i in np.flatnonzero(wrong):
        reasons[i].append(f"{geoms[i].geom_type} geometry, expected Polygon or MultiPolygon")
    _repair(geoms, ~missing & ~empty & ~wrong, reasons, repairs, "")
    ok = np.array([not r for r in reasons], dtype=bool)
    geoms[ok] = _as_multipolygons(geoms[ok])
    return geoms, reasons, repairs


def _reproject(geoms: np.ndarray, ok: np.ndarray, crs: CRS, reasons: list[list[str]],
               repairs: dict[int, str]) -> np.ndarray:
    """The loadable geometries in EPSG:4326, checked again there (validity, finite lon/lat)."""
    out = np.full(len(geoms), None, dtype=object)
    target = CRS.from_epsg(STORAGE_SRID)
    if crs.equals(target, ignore_axis_order=True):
        out[ok] = geoms[ok]
    elif ok.any():
        out[ok] = gpd.GeoSeries(geoms[ok], crs=crs).to_crs(target).to_numpy()
    coords, index = shapely.get_coordinates(out[ok], return_index=True)
    bad = ~np.isfinite(coords).all(axis=1) | (np.abs(coords[:, 0]) > 180) | (np.abs(coords[:, 1]) > 90)
    positions = np.flatnonzero(ok)
    for i in positions[np.unique(index[bad])]:
        if crs.is_geographic:  # e.g. metres in a GeoJSON without a crs member (EPSG:4326 by RFC 7946)
            x, y = coords[bad & (index == np.searchsorted(positions, i))][0]
            reasons[i].append(f"coordinates ({x:.6g}, {y:.6g}) outside longitude -180..180 / latitude -90..90 "
                              f"of {_crs_name(crs)}: projected coordinates need their CRS (a GeoJSON without a "
                              f"'crs' member is EPSG:4326)")
        else:
            reasons[i].append(f"cannot be reprojected from {_crs_name(crs)} to EPSG:{STORAGE_SRID} "
                              f"(coordinates outside the CRS's area?)")
    still = ok & np.array([not r for r in reasons], dtype=bool)
    _repair(out, still, reasons, repairs, f" in EPSG:{STORAGE_SRID}")
    still = still & np.array([not r for r in reasons], dtype=bool)
    out[still] = _as_multipolygons(out[still])
    out[~still] = None
    return out


# --------------------------------------------------------------------------- CRS names


def _crs_name(crs: CRS) -> str:
    authority = crs.to_authority(min_confidence=70)
    return f"{authority[0]}:{authority[1]}" if authority else crs.name
