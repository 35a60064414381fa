"""Names in and out of Earth Engine: the catalogue assets soilclay reads, and the descriptions,
object names and URIs of the exports it writes. Pure string functions; no ``ee``.

An export's description is its identity on the Earth Engine side: a retry finds an export already
running under the same description (see :func:`soilclay.earthengine.exports.find_active_export`), so
the same name must always give the same description.
"""

from __future__ import annotations

import re

from soilclay.errors import BadInputError

S2_ASSET = "COPERNICUS/S2_SR_HARMONIZED"
S2_CLOUD_PROBABILITY_ASSET = "COPERNICUS/S2_CLOUD_PROBABILITY"
S1_ASSET = "COPERNICUS/S1_GRD"
#: Earth Engine's Sentinel-2 band names, in the order of soilclay's ``S2_BANDS`` (B02 ... B12).
#: S2_SR_HARMONIZED holds L2A digital numbers (reflectance x 10000, the 05.00 offset already removed).
EE_S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")

#: Earth Engine accepts at most 100 characters of [A-Za-z0-9_-] as a task description.
MAX_DESCRIPTION = 100
_NOT_DESCRIPTION = re.compile(r"[^A-Za-z0-9_-]")


def image_id(asset: str, index: str) -> str:
    """The asset id of one image of a collection: ``COPERNICUS/S1_GRD/<system:index>``."""
    if not asset or not index:
        raise BadInputError(f"an image id needs a collection asset and an index, found {asset!r} and {index!r}")
    return f"{asset.strip('/')}/{index}"


def export_description(name: str) -> str:
    """The task description of the export called ``name``: other characters become ``_``, cut to
    :data:`MAX_DESCRIPTION` (``demo/s2.abc`` -> ``demo_s2_abc``)."""
    name = name.strip("/")
    if not name:
        raise BadInputError("an export needs a non-empty name")
    return _NOT_DESCRIPTION.sub("_", name)[:MAX_DESCRIPTION]


def object_name(prefix: str, name: str) -> str:
    """The Cloud Storage object name (without ``.tif``) of export ``name`` below ``prefix`` (``""``:
    the bucket root); surrounding slashes of both are dropped."""
    name, prefix = name.strip("/"), prefix.strip("/")
    if not name:
        raise BadInputError("an export needs a non-empty name")
    return f"{prefix}/{name}" if prefix else name


def cog_uri(bucket: str, object_name: str) -> str:
    """The URI of the single GeoTIFF an export of ``object_name`` writes: ``gs://bucket/object.tif``."""
    if not bucket or "/" in bucket or not object_name:
        raise BadInputError(f"a COG URI needs a bucket name and an object name, found {bucket!r} and "
                            f"{object_name!r}")
    return f"gs://{bucket}/{object_name}.tif"
