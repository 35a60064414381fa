"""Benchmark: per-parcel estimation of 100,000 synthetic parcels, end to end (pixels, prediction,
PostGIS commit) with the in-process predictor, next to
  (i)  the COPY-only rate of the same final rows (the write limit), and
  (ii) a naive loop: one prediction call and one INSERT (and commit) per parcel, on a subset.
Targets: >= 2,000 parcels/s end to end on 2 cores, and >= 20x the naive loop.

    .venv/bin/python benchmarks/parcels.py [--parcels 100000] [--naive 300]

Needs `make demo` (the demo world's composites and a champion model). Uses a scratch database
`soilclay_bench_parcels` on the configured server, dropped at the end.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcels", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=300, help="parcels timed in the naive loop")
    parser.add_argument("--store", type=Path, default=Path("var/store"))
    parser.add_argument("--models", type=Path, default=Path("var/models"))
    args = parser.parse_args()
    s2 = sorted((args.store / "composites/demo/sentinel-2").glob("*.tif"), key=lambda p: p.stat().st_mtime)
    s1 = sorted((args.store / "composites/demo/sentinel-1").glob("*.tif"), key=lambda p: p.stat().st_mtime)
    versions = sorted(int(p.name) for p in args.models.glob("[0-9]*") if (p / "saved_model.pb").exists())
    if not s2 or not versions:
        sys.exit("needs the demo composites and a published model: run `make demo` first")

    from soilclay.db import migrate
    from soilclay.db.admin import ensure_database
    from soilclay.db.engine import make_engine
    from soilclay.predict.aggregate import aggregate
    from soilclay.predict.pixels import parcel_pixels
    from soilclay.predict.write import write_estimates
    from soilclay.serving.predictor import InProcessPredictor
    from soilclay.settings import Settings

    url = make_url(Settings().database_url).set(database="soilclay_bench_parcels").render_as_string(False)
    ensure_database(url)
    migrate.upgrade(url)
    engine = make_engine(url)
    import rasterio

    with rasterio.open(s2[-1]) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    side = int(np.ceil(np.sqrt(args.parcels)))
    size = (right - left) / side
    i = np.arange(args.parcels)
    x0, y0 = left + (i % side) * size, top - (i // side + 1) * size
    boxes = shapely.box(x0 + 2, y0 + 2, x0 + size - 2, y0 + size - 2)  # 2 m gaps, ~10 pixels per parcel
    parcels = gpd.GeoDataFrame({"parcel_id": [f"B{k:06d}" for k in i]}, geometry=boxes, crs=crs)
    wgs = parcels.to_crs(4326)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE soilclay.parcel_predictions, soilclay.parcels, soilclay.model_versions, "
                          "soilclay.composites, soilclay.pipeline_runs, soilclay.aois CASCADE"))
        conn.execute(text("INSERT INTO soilclay.aois (name, geom, grid_crs) VALUES ('bench', "
                          "ST_Multi(ST_GeomFromText(:g, 4326)), 'EPSG:32633')"), {"g": wgs.union_all().envelope.wkt})
        conn.execute(text("INSERT INTO soilclay.pipeline_runs (run_id, stage) VALUES ('bench', 'predict')"))
        for sensor, path in (("sentinel-2", s2[-1]), ("sentinel-1", s1[-1])):
            conn.execute(text(
                "INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, recipe_hash, "
                "recipe, inputs_hash, scene_count, backend, uri) SELECT aoi_id, :s, 1, '2022-01-01', '2025-01-01', "
                "md5(:s), '{}', md5(:u), 1, 'local', :u FROM soilclay.aois"), {"s": sensor, "u": str(path)})
        conn.execute(text("INSERT INTO soilclay.model_versions (version, status, artefact_uri, promoted_at) "
                          "VALUES (:v, 'champion', :u, now())"), {"v": versions[-1], "u": str(args.models)})
        ids = dict(conn.execute(text("SELECT sensor, composite_id FROM soilclay.composites")).all())
    cursor_rows = [(pid, geom.wkb) for pid, geom in zip(wgs["parcel_id"], wgs.geometry, strict=True)]
    with engine.begin() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        with cur.copy("COPY soilclay.parcels (source, parcel_id, geom, source_file) FROM STDIN") as copy:
            for pid, wkb in cursor_rows:
                copy.write_row(("bench", pid, "SRID=4326;" + shapely.MultiPolygon([shapely.from_wkb(wkb)]).wkt,
                                "bench"))
    with engine.connect() as conn:  # the geometry each estimate is computed on
        geometries = {r.parcel_id: (r.parcel_key, r.geom_hash) for r in conn.execute(text(
            "SELECT parcel_id, parcel_key, geom_hash FROM soilclay.parcels"))}

    predictor = InProcessPredictor(args.models / str(versions[-1]), versions[-1])
    s1_id = ids["sentinel-1"] if "sar" in predictor.inputs else None

    # End to end: pixels -> prediction -> aggregation -> COPY + apply in one transaction.
    started = time.perf_counter()
    pixels = parcel_pixels(parcels, str(s2[-1]), str(s1[-1]), predictor.inputs)
    t_pixels = time.perf_counter() - started
    out = predictor.predict(pixels.arrays)
    t_predict = time.perf_counter() - started - t_pixels
    est = aggregate(pixels.parcel_ids, pixels.parcel, np.asarray(out["clay"], float),
                    np.asarray(out["clay_lower"], float), np.asarray(out["clay_upper"], float),
                    np.asarray(out["in_domain"], bool), pixels.total_pixels, pixels.usable_pixels)
    written = write_estimates(engine, est, geometries, model_version=versions[-1],
                              s2_composite_id=ids["sentinel-2"], s1_composite_id=s1_id, run_id="bench")
    e2e = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # (i) COPY-only: the same rows again, into an emptied table.
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE soilclay.parcel_predictions"))
    started = time.perf_counter()
    write_estimates(engine, est, geometries, model_version=versions[-1], s2_composite_id=ids["sentinel-2"],
                    s1_composite_id=s1_id, run_id="bench")
    copy_only = time.perf_counter() - started

    # (ii) naive: per parcel one predict call and one INSERT with its own commit.
    subset = np.arange(min(args.naive, len(pixels.parcel_ids)))
    order = np.argsort(pixels.parcel, kind="stable")
    starts = np.searchsorted(pixels.parcel[order], subset)
    ends = np.searchsorted(pixels.parcel[order], subset, side="right")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM soilclay.parcel_predictions WHERE parcel_key = ANY(:p)"),
                     {"p": [geometries[pixels.parcel_ids[k]][0] for k in subset]})
    started = time.perf_counter()
    for k, a, b in zip(subset, starts, ends, strict=True):
        rows = order[a:b]
        clay = None
        if len(rows):
            res = predictor.predict({name: arr[rows] for name, arr in pixels.arrays.items()})
            clay = float(np.mean(res["clay"]))
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO soilclay.parcel_predictions (parcel_key, geom_hash, model_version, s2_composite_id,"
                " s1_composite_id, run_id, clay_mean, clay_lower, clay_upper, pixel_count, flags) VALUES (:k, :h, :m,"
                " :s2, :s1, 'bench', :c, :c, :c, :n, :f)"),
                {"k": geometries[pixels.parcel_ids[k]][0], "h": geometries[pixels.parcel_ids[k]][1],
                 "m": versions[-1], "s2": ids["sentinel-2"], "s1": s1_id, "c": clay, "n": len(rows),
                 "f": [] if clay is not None else ["no_pixels"]})
    naive = (time.perf_counter() - started) / len(subset) * len(pixels.parcel_ids)

    n = len(pixels.parcel_ids)
    print(f"{n:,} parcels, {len(pixels.parcel):,} pixels, {written:,} rows written")
    print(f"end to end:   {e2e:7.1f} s  {n / e2e:9,.0f} parcels/s  (pixels {t_pixels:.1f} s, prediction "
          f"{t_predict:.1f} s, aggregation + write {e2e - t_pixels - t_predict:.1f} s), peak RSS {peak:,.0f} MB")
    print(f"COPY only:    {copy_only:7.1f} s  {n / copy_only:9,.0f} parcels/s  (the write limit)")
    print(f"naive loop:   {naive:7.1f} s  {n / naive:9,.0f} parcels/s  (extrapolated from {len(subset)} parcels)")
    print(f"end to end vs naive: {naive / e2e:.0f}x (target >= 20x: {'MET' if naive / e2e >= 20 else 'MISSED'}); "
          f"{n / e2e:,.0f} parcels/s (target >= 2,000: {'MET' if n / e2e >= 2000 else 'MISSED'}); "
          f"share of the COPY limit: {copy_only / e2e:.0%}")
    predictor.close()
    engine.dispose()
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "soilclay_bench_parcels" WITH (FORCE)'))
    admin.dispose()


if __name__ == "__main__":
    main()
