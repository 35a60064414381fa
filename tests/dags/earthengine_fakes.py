"""Earth Engine scripted for DAG tests: exports that write real COGs into a Cloud Storage emulator bucket."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
from google.cloud import storage

from soilclay.composites.grid import TargetGrid
from soilclay.contract import S1_COMPOSITE_BANDS, S2_COMPOSITE_BANDS
from soilclay.io.cog import write_cog

#: The emulator's default bucket (the ``emulator_host`` fixture of tests/dags/conftest.py).
BUCKET = "soilclay-test"
#: The scene ids each scripted export was made of, by COG URI.
EXPORTED_SCENES: dict[str, list[str]] = {}


def fake_earth_engine(monkeypatch, bucket: storage.Bucket, workdir: Path, empty: set[str]) -> list[tuple[str, str]]:
    """Script Earth Engine: each export writes a COG of its sensor's bands on the AOI's grid to the bucket,
    every pixel nodata for the sensors in ``empty`` (at the time of the export), valid data otherwise.
    Returns the (sensor, COG URI) of the exports started, in order; :data:`EXPORTED_SCENES` holds each
    export's scene ids by URI."""
    from soilclay_airflow.hooks.earthengine import EarthEngineHook

    from soilclay.composites.earthengine import EarthEngineBackend
    from soilclay.earthengine.assets import cog_uri, object_name

    started: list[tuple[str, str]] = []

    def start(self, recipe, sensor, aoi_geometry, period, name, scene_ids):
        grid = TargetGrid.for_aoi(aoi_geometry, recipe.grid)
        bands = S2_COMPOSITE_BANDS if sensor == "sentinel-2" else S1_COMPOSITE_BANDS
        data = np.full((len(bands), grid.height, grid.width), np.nan if sensor in empty else 1200.0, np.float32)
        path = write_cog(workdir / f"{uuid.uuid4().hex}.tif", data, transform=grid.transform, crs=grid.crs,
                         nodata=float("nan"), descriptions=list(bands))
        target = object_name(self.prefix, name)
        bucket.blob(f"{target}.tif").upload_from_filename(str(path))  # where Earth Engine writes its COG
        started.append((sensor, cog_uri(self.bucket, target)))
        EXPORTED_SCENES[started[-1][1]] = list(scene_ids)
        return f"projects/p/operations/OP{len(started)}", started[-1][1]

    def get_operation(self, name):
        return {"name": name, "done": True, "metadata": {"state": "SUCCEEDED", "destinationUris": []}}

    monkeypatch.setattr(EarthEngineBackend, "start", start)
    monkeypatch.setattr(EarthEngineHook, "initialize", lambda self: None)
    monkeypatch.setattr(EarthEngineHook, "get_operation", get_operation)
    return started
