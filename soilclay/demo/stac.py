"""STAC Items for the demo archive, following Microsoft Planetary Computer conventions
(``sentinel-2-l2a`` single-band assets B02..B12 and SCL; ``sentinel-1`` assets vv and vh)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pyproj import Transformer
from rasterio.transform import Affine

from soilclay.demo.optics import BAND_10M, BANDS, COMMON_NAME, WAVELENGTH_UM
from soilclay.io.cog import COG_MEDIA_TYPE

S2_COLLECTION = "sentinel-2-l2a"
S1_COLLECTION = "sentinel-1-grd"
MGRS_TILE = "33UUU"
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
]
SAR_EXTENSION = "https://stac-extensions.github.io/sar/v1.0.0/schema.json"
_S2_TIME = time(10, 16, 1)
_S1_TIME = {"ascending": time(16, 50, 12), "descending": time(5, 21, 40)}


def footprint(bounds: tuple[float, float, float, float], crs: str) -> tuple[dict, list[float]]:
    """GeoJSON polygon and bbox in WGS 84 of a projected rectangle."""
    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    xmin, ymin, xmax, ymax = bounds
    ring = [to_wgs.transform(x, y) for x, y in ((xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax))]
    ring = [(round(x, 7), round(y, 7)) for x, y in ring]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    geom = {"type": "Polygon", "coordinates": [[list(p) for p in ring + ring[:1]]]}
    return geom, [min(lons), min(lats), max(lons), max(lats)]


def _stamp(d: date, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=UTC)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def s2_item_id(d: date, index: int) -> str:
    platform = "S2A" if index % 2 == 0 else "S2B"
    acq, proc = _stamp(d, _S2_TIME), _stamp(d, time(15, 42, 7))
    return f"{platform}_MSIL2A_{acq:%Y%m%dT%H%M%S}_R065_T{MGRS_TILE}_{proc:%Y%m%dT%H%M%S}"


def s1_item_id(d: date, orbit: str) -> str:
    start = _stamp(d, _S1_TIME[orbit])
    stop = start + timedelta(seconds=25)
    absolute = 41_000 + (d - date(2022, 1, 1)).days * 175 // 12
    return f"S1A_IW_GRDH_1SDV_{start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_{absolute:06d}_{absolute % 0xFFFFF:05X}"


def _proj(shape: tuple[int, int], transform: Affine) -> dict:
    return {"proj:shape": list(shape), "proj:transform": [round(v, 6) for v in transform[:6]]}


def s2_item(item_id: str, d: date, index: int, *, crs: str, bounds, transform10: Affine,
            shape10: tuple[int, int], cloud_cover: float) -> dict:
    geom, bbox = footprint(bounds, crs)
    acquired = _stamp(d, _S2_TIME)
    transform20 = transform10 @ Affine.scale(2)
    shape20 = (shape10[0] // 2, shape10[1] // 2)
    assets: dict[str, dict] = {}
    for name, wl, common in zip(BANDS, WAVELENGTH_UM, COMMON_NAME, strict=True):
        ten = name in BAND_10M
        assets[name] = {
            "href": f"./{name}.tif", "type": COG_MEDIA_TYPE, "roles": ["data"],
            "title": f"Band {name[1:].lstrip('0')} - {common} - {'10' if ten else '20'}m",
            "gsd": 10.0 if ten else 20.0,
            "eo:bands": [{"name": name, "common_name": common, "center_wavelength": wl}],
            "raster:bands": [{"data_type": "uint16", "nodata": 0, "scale": 0.0001, "offset": 0.0,
                              "spatial_resolution": 10 if ten else 20}],
            **_proj(shape10 if ten else shape20, transform10 if ten else transform20),
        }
    assets["SCL"] = {
        "href": "./SCL.tif", "type": COG_MEDIA_TYPE, "roles": ["data"], "title": "Scene classification map (SCL)",
        "gsd": 20.0, "raster:bands": [{"data_type": "uint8", "nodata": 0, "spatial_resolution": 20}],
        **_proj(shape20, transform20),
    }
    return {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": EXTENSIONS, "id": item_id,
        "collection": S2_COLLECTION, "geometry": geom, "bbox": bbox,
        "properties": {
            "datetime": _iso(acquired),
            "created": _iso(acquired + timedelta(hours=6)),
            "platform": "Sentinel-2A" if index % 2 == 0 else "Sentinel-2B",
            "constellation": "Sentinel 2", "instruments": ["msi"],
            "eo:cloud_cover": cloud_cover, "s2:mgrs_tile": MGRS_TILE, "s2:product_type": "S2MSI2A",
            "s2:processing_baseline": "05.10", "sat:orbit_state": "descending", "sat:relative_orbit": 65,
            "proj:code": crs,
        },
        "links": [{"rel": "collection", "href": f"https://planetarycomputer.microsoft.com/api/stac/v1/collections/{S2_COLLECTION}", "type": "application/json"}],  # noqa: E501
        "assets": assets,
    }


def s1_item(item_id: str, d: date, orbit: str, *, crs: str, bounds, transform10: Affine,
            shape10: tuple[int, int]) -> dict:
    geom, bbox = footprint(bounds, crs)
    acquired = _stamp(d, _S1_TIME[orbit])
    assets = {
        pol: {
            "href": f"./{pol}.tif", "type": COG_MEDIA_TYPE, "roles": ["data"],
            "title": f"{pol.upper()}: sigma0, linear power", "gsd": 10.0,
            "raster:bands": [{"data_type": "float32", "nodata": 0, "unit": "linear power",
                              "spatial_resolution": 10}],
            **_proj(shape10, transform10),
        }
        for pol in ("vv", "vh")
    }
    return {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": EXTENSIONS + [SAR_EXTENSION],
        "id": item_id, "collection": S1_COLLECTION, "geometry": geom, "bbox": bbox,
        "properties": {
            "datetime": _iso(acquired), "created": _iso(acquired + timedelta(hours=3)),
            "platform": "sentinel-1a", "constellation": "sentinel-1", "instruments": ["c-sar"],
            "sar:instrument_mode": "IW", "sar:frequency_band": "C", "sar:center_frequency": 5.405,
            "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD",
            "sat:orbit_state": orbit, "sat:relative_orbit": 117 if orbit == "ascending" else 22,
            "s1:backscatter": "sigma0", "s1:scale": "linear",
            "proj:code": crs,
        },
        "links": [],
        "assets": assets,
    }
