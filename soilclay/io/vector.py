"""Reading areas of interest from vector files (GeoJSON, GeoPackage, Shapefile)."""

from __future__ import annotations

import json
from pathlib import Path

from soilclay.errors import BadInputError


def read_aoi_file(path: Path) -> tuple[dict, dict]:
    """(geometry in EPSG:4326 as GeoJSON, properties of the first feature) from a vector file."""
    import geopandas as gpd

    if not path.exists():
        raise BadInputError(f"AOI file not found: {path}")
    frame = gpd.read_file(path)
    if frame.empty:
        raise BadInputError(f"AOI file {path} has no features")
    if frame.crs is None:
        raise BadInputError(f"AOI file {path} declares no CRS")
    frame = frame.to_crs(4326)
    geom = frame.geometry.union_all()
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise BadInputError(f"AOI in {path} must be areal, found {geom.geom_type}")
    props = {k: v for k, v in frame.iloc[0].items() if k != "geometry"}
    return json.loads(json.dumps(geom.__geo_interface__)), props
