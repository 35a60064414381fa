"""Features at the soil samples of an AOI: the stage that joins the database (which samples, which
composite versions) with the rasters (:mod:`soilclay.features.rasters`) into one training table
(:mod:`soilclay.features.table`). A sample on a pixel with a missing spectral (or, with Sentinel-1,
backscatter) value is excluded and counted as ``excluded_nodata``; one outside a raster as
``excluded_outside``.

The features of one table come from one composite per sensor, so from one composite method per sensor
(:meth:`soilclay.composites.recipe.Recipe.method`); the lineage names each method, and a model trained
on the table is applied only to composites of the same methods (:mod:`soilclay.predict.run`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from soilclay.composites.recipe import method_of
from soilclay.db import composites as composite_rows
from soilclay.db import samples as sample_rows
from soilclay.db.aois import get_aoi
from soilclay.db.tx import reading
from soilclay.errors import NotReadyError
from soilclay.features.rasters import sample_composites
from soilclay.features.table import STATUS_NODATA, STATUS_OK, STATUS_OUTSIDE, FeatureTable, as_table
from soilclay.io.store.local_copy import local_path

if TYPE_CHECKING:
    from soilclay.io.store import ObjectStore

log = logging.getLogger(__name__)


def features_for_aoi(engine: Engine, aoi_name: str, *, s2_composite_id: int | None = None,
                     s1_composite_id: int | None = None, store: ObjectStore | None = None,
                     workdir: Path | None = None, sources: Sequence[str] | None = None) -> FeatureTable:
    """The feature table of the samples inside AOI ``aoi_name`` (optionally only from ``sources``).

    Composites default to the AOI's newest version per sensor; without any Sentinel-1 composite the
    table has no SAR columns (a missing Sentinel-2 composite is an error). Composites stored in
    Cloud Storage are downloaded to a temporary file below ``workdir``. The composite ids, URIs and
    methods used are the table's ``lineage`` (also in ``table.data.attrs``; see :func:`method_lineage`).
    """
    with reading(engine, f"finding the samples and composites of AOI {aoi_name}") as conn:
        aoi = get_aoi(conn, aoi_name)
        s2 = composite_rows.pick(conn, aoi.aoi_id, aoi.name, "sentinel-2", s2_composite_id)
        if s2 is None:
            raise NotReadyError(f"AOI {aoi.name!r} has no sentinel-2 composite yet "
                                f"(build one with `soilclay composites build --aoi {aoi.name}`)")
        s1 = composite_rows.pick(conn, aoi.aoi_id, aoi.name, "sentinel-1", s1_composite_id)
        points = sample_rows.samples_in_aoi(conn, aoi.aoi_id, sources)
    if s1 is None:
        log.info("AOI %s has no sentinel-1 composite: the feature table has no SAR columns", aoi.name)
    lineage = {"aoi": aoi.name, "s2_composite_id": s2.composite_id, "s2_version": s2.version, "s2_uri": s2.uri,
               "s1_composite_id": s1.composite_id if s1 else None, "s1_version": s1.version if s1 else None,
               "s1_uri": s1.uri if s1 else None, "sources": list(sources) if sources is not None else None,
               **method_lineage(s2, s1)}
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="soilclay-features-", dir=workdir) as tmp:
        s2_path = local_path(s2.uri, store, Path(tmp))
        s1_path = local_path(s1.uri, store, Path(tmp)) if s1 else None
        sampled = sample_composites(points, s2_path, s1_path)
    status = sampled["status"]
    table = FeatureTable(as_table(sampled[status == STATUS_OK], with_s1=s1 is not None), requested=len(points),
                         excluded_nodata=int((status == STATUS_NODATA).sum()),
                         excluded_outside=int((status == STATUS_OUTSIDE).sum()), lineage=lineage)
    log.info("AOI %s: %s", aoi.name, table.render())
    return table


def method_lineage(s2: composite_rows.CompositeRow, s1: composite_rows.CompositeRow | None) -> dict:
    """The methods of the composites features come from: ``s2_method_hash`` and ``s2_method`` (its
    description), ``s1_method_hash`` and ``s1_method`` (None without a Sentinel-1 composite). A hash is
    None when the composite's stored recipe cannot be read (then nothing is known of its method)."""
    out: dict = {}
    for key, row, sensor in (("s2", s2, "sentinel-2"), ("s1", s1, "sentinel-1")):
        method = None if row is None else method_of(row.recipe, sensor)
        if row is not None and method is None:
            log.warning("the recipe stored with %s composite %s (AOI %s) cannot be read: its method is unknown",
                        sensor, row.composite_id, row.aoi)
        out[f"{key}_method_hash"] = None if method is None else method.hash
        out[f"{key}_method"] = None if method is None else method.description
    return out
