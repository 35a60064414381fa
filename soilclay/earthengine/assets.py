"""Names in and out of Earth Engine: the catalogue assets soilclay reads, and the descriptions,
object names and URIs of the exports it writes. Pure string functions; no ``ee``.

An export's description is its identity on the Earth Engine side: a retry finds an export already
running under the same description (see :func:`soilclay.earthengine.exports.find_active_export`), so
the same name must always give the same description, and two names never the same one.
"""

from __future__ import annotations

import hashlib
import re

from soilclay.errors import BadInputError

S2_ASSET = "COPERNICUS/S2_SR_HARMONIZED"
S2_CLOUD_PROBABILITY_ASSET = "COPERNICUS/S2_CLOUD_PROBABILITY"
S1_ASSET = "COPERNICUS/S1_GRD"
#: Earth Engine's Sentinel-2 band names, in the order of soilclay's ``S2_BANDS`` (B02 ... B12).
#: S2_SR_HARMONIZED holds L2A digital numbers (reflectance x 10000, the 05.00 offset already removed).
EE_S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")

#: The longest task description soilclay gives an export, in characters of [A-Za-z0-9_-].
#: Earth Engine's reference does not state a limit ("a human-readable name of the task",
#: https://developers.google.com/earth-engine/reference/rest/v1/projects.image/export); 100 is the
#: limit clients keep to in practice (e.g. nasaharvest/cropharvest PR #60 cuts descriptions to
#: ``[:100]`` as "this GEE limitation"), and soilclay's long-standing cap. Staying within it is safe.
MAX_DESCRIPTION = 100
#: Hex digits of sha256(name) appended (after ``_``) when a name cannot be its own description.
DESCRIPTION_DIGEST = 16
_NOT_DESCRIPTION = re.compile(r"[^A-Za-z0-9_-]")


def image_id(asset: str, index: str) -> str:
    """The asset id of one image of a collection: ``COPERNICUS/S1_GRD/<system:index>``."""
    if not asset or not index:
        raise BadInputError(f"an image id needs a collection asset and an index, found {asset!r} and {index!r}")
    return f"{asset.strip('/')}/{index}"


def export_description(name: str) -> str:
    """The task description of the export called ``name`` (surrounding slashes dropped, as in
    :func:`object_name`): at most :data:`MAX_DESCRIPTION` characters of ``[A-Za-z0-9_-]``, the same
    for the same name, different for different names.

    A name that is already a valid description is its own description. Any other name (one with
    other characters, or too long) gives a readable head (other characters become ``_``, cut so
    the whole fits) plus ``_`` and the first :data:`DESCRIPTION_DIGEST` hex digits of the sha256 of
    the full name: ``demo/s2.abc`` -> ``demo_s2_abc_<16 hex>``. So ``a/b`` and ``a_b`` differ, and
    names that differ only past the cut (the inputs hash of a long AOI name) differ too.
    """
    name = name.strip("/")
    if not name:
        raise BadInputError("an export needs a non-empty name")
    readable = _NOT_DESCRIPTION.sub("_", name)
    if readable == name and len(name) <= MAX_DESCRIPTION:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:DESCRIPTION_DIGEST]
    return f"{readable[:MAX_DESCRIPTION - DESCRIPTION_DIGEST - 1]}_{digest}"


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
