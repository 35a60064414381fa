"""Benchmark: one Prometheus scrape of soilclay's exporter (the whole snapshot read from PostGIS and turned into
metric families) on 100,000 parcels and 400,000 estimates over 4 AOIs. Target: median and p95 <= 200 ms.

    .venv/bin/python benchmarks/metrics.py [--parcels 100000] [--estimates-per-parcel 4] [--scrapes 30]

Uses a scratch database `soilclay_bench_metrics` on the configured server (created and migrated with soilclay's
helpers, filled with set-based SQL), dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TARGET_MS = 200.0
NAME = "soilclay_bench_metrics"

FILL = """
INSERT INTO soilclay.aois (name, geom, grid_crs)
SELECT 'bench-' || i, ST_Multi(ST_MakeEnvelope(12 + (i % 2), 52 + 0.5 * (i / 2), 13 + (i % 2), 52.5 + 0.5 * (i / 2),
                                               4326)), 'EPSG:32633'
FROM generate_series(0, 3) AS i;

INSERT INTO soilclay.pipeline_runs (run_id, stage, aoi_id, status, error, started_at, finished_at)
SELECT 'run-' || i, (ARRAY['scene_sync', 'composite', 'train', 'predict', 'parcel_load'])[1 + i % 5], 1 + i % 4,
       (ARRAY['success', 'success', 'success', 'failed', 'skipped'])[1 + (i / 5) % 5],
       CASE WHEN (i / 5) % 5 = 3 THEN 'boom' END,
       now() - make_interval(hours => i), now() - make_interval(hours => i) + make_interval(secs => 10 + i % 300)
FROM generate_series(1, :runs) AS i;
INSERT INTO soilclay.pipeline_runs (run_id, stage, status) VALUES ('run-live', 'predict', 'running');

INSERT INTO soilclay.scenes (aoi_id, scene_id, collection, platform, acquired_at, source, first_seen_at)
SELECT a, c || '-' || a || '-' || d, c, 'x', timestamptz '2022-01-01 10:00+00' + make_interval(days => d * 3),
       'local', timestamptz '2022-01-02 00:00+00' + make_interval(days => d * 3)
FROM generate_series(1, 4) AS a, unnest(ARRAY['sentinel-2-l2a', 'sentinel-1-grd']) AS c, generate_series(0, 300) AS d;

INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, recipe_hash, recipe, inputs_hash,
                                 scene_count, skipped_count, backend, uri, created_at)
SELECT a, s, v, date '2022-01-01', date '2023-06-01' + 60 * v, lpad(to_hex(v), 16, '0'), '{}',
       lpad(to_hex(a * 100 + v + length(s)), 16, '0'), 100 + v, v % 2, 'local',
       'file:///c/' || a || '/' || s || '/' || v,
       timestamptz '2024-01-01 00:00+00' + make_interval(days => v * 30)
FROM generate_series(1, 4) AS a, unnest(ARRAY['sentinel-2', 'sentinel-1']) AS s, generate_series(1, 3) AS v;

INSERT INTO soilclay.model_versions (version, status, artefact_uri, training_data, promoted_at)
SELECT v, CASE WHEN v = 5 THEN 'champion' WHEN v < 5 AND v % 2 = 0 THEN 'retired' WHEN v < 5 THEN 'rejected'
               ELSE 'candidate' END,
       'file:///models/' || v, jsonb_build_object('gate', jsonb_build_object('candidate_rmse', 5 + v * 0.1)),
       CASE WHEN v <= 5 THEN now() - make_interval(days => 6 - v) END
FROM generate_series(1, 6) AS v;

INSERT INTO soilclay.parcels (source, parcel_id, geom, source_file)
SELECT 'bench', 'B' || i,
       ST_Multi(ST_MakeEnvelope(12 + (i % :side) * :sx, 52 + (i / :side) * :sy,
                                12 + (i % :side) * :sx + :size, 52 + (i / :side) * :sy + :size, 4326)),
       'bench.gpkg'
FROM generate_series(0, :parcels - 1) AS i;
"""

# Per parcel: the champion on the newest composites (flags on some), on an older S2, and the former champion.
ESTIMATES = """
WITH newest AS (
    SELECT aoi_id, max(composite_id) FILTER (WHERE sensor = 'sentinel-2' AND version = 3) AS s2,
           max(composite_id) FILTER (WHERE sensor = 'sentinel-2' AND version = 2) AS s2_old,
           max(composite_id) FILTER (WHERE sensor = 'sentinel-1' AND version = 3) AS s1
    FROM soilclay.composites GROUP BY aoi_id
), placed AS (
    SELECT DISTINCT ON (p.parcel_key) p.parcel_key, p.geom_hash, n.*
    FROM soilclay.parcels p JOIN soilclay.aois a ON ST_Intersects(p.geom, a.geom) JOIN newest n USING (aoi_id)
    ORDER BY p.parcel_key, a.aoi_id
)
INSERT INTO soilclay.parcel_predictions (parcel_key, geom_hash, model_version, s2_composite_id, s1_composite_id, run_id,
                                         clay_mean, clay_median, clay_lower, clay_upper, pixel_count, flags,
                                         predicted_at)
SELECT x.parcel_key, x.geom_hash, k.model, k.s2, k.s1, 'run-1',
       CASE WHEN x.parcel_key % 50 = 0 THEN NULL ELSE 20 + x.parcel_key % 30 END,
       CASE WHEN x.parcel_key % 50 = 0 THEN NULL ELSE 20 + x.parcel_key % 30 END,
       CASE WHEN x.parcel_key % 50 = 0 THEN NULL ELSE 15 + x.parcel_key % 30 END,
       CASE WHEN x.parcel_key % 50 = 0 THEN NULL ELSE 25 + x.parcel_key % 30 END,
       40, CASE WHEN x.parcel_key % 50 = 0 THEN ARRAY['too_few_pixels']
                WHEN x.parcel_key % 7 = 0 THEN ARRAY['pixels_sampled'] ELSE '{}'::text[] END,
       timestamptz '2024-04-01 00:00+00' + make_interval(secs => x.parcel_key % 3600)
FROM placed x
CROSS JOIN LATERAL (VALUES (5, x.s2, x.s1), (5, x.s2_old, x.s1), (4, x.s2, x.s1), (4, x.s2_old, NULL::bigint),
                           (2, x.s2, x.s1), (2, x.s2_old, x.s1)) AS k(model, s2, s1)
LIMIT :estimates
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcels", type=int, default=100_000)
    parser.add_argument("--estimates-per-parcel", type=int, default=4, choices=range(1, 7))
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5_000, help="pipeline runs recorded")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (to profile the queries)")
    args = parser.parse_args()

    from soilclay.db import migrate
    from soilclay.db.admin import ensure_database
    from soilclay.monitoring.exporter import exporter_engine, make_registry, scrape
    from soilclay.settings import Settings

    base = make_url(Settings().database_url)
    url = base.set(database=NAME).render_as_string(hide_password=False)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
    engine = None
    try:
        ensure_database(url)
        migrate.upgrade(url)
        side = int(args.parcels**0.5) + 1  # a side x side grid over the 4 AOIs' 2 x 1 degrees
        sx, sy = 2.0 / side, 1.0 / side
        t = time.perf_counter()
        filler = create_engine(url)
        with filler.begin() as conn:
            for statement in FILL.split(";\n"):
                if statement.strip():
                    conn.execute(text(statement), {"runs": args.runs, "side": side, "sx": sx, "sy": sy,
                                                   "size": 0.8 * min(sx, sy), "parcels": args.parcels})
            conn.execute(text(ESTIMATES), {"estimates": args.parcels * args.estimates_per_parcel})
        with filler.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            counts = conn.execute(text("SELECT (SELECT count(*) FROM soilclay.parcels), "
                                       "(SELECT count(*) FROM soilclay.parcel_predictions)")).one()
        filler.dispose()
        fill_s = time.perf_counter() - t

        engine = exporter_engine(url)
        registry = make_registry(engine)
        page = scrape(registry)  # warm: connection, plans, caches
        if "soilclay_database_up 1.0" not in page:
            raise SystemExit(f"the scrape did not read the database:\n{page}")
        times = []
        for _ in range(args.scrapes):
            t = time.perf_counter()
            scrape(registry)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        median = statistics.median(times)
        p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        sample = {line.split(" ")[0]: line.split(" ")[1] for line in page.splitlines()
                  if line.startswith(("soilclay_parcels{", "soilclay_parcels_estimated_current{"))}
        print(f"{counts[0]:,} parcels, {counts[1]:,} estimates, {args.runs:,} runs, 4 AOIs (filled in {fill_s:.1f} s)")
        print(json.dumps(dict(sorted(sample.items())), indent=None))
        print(f"{'scrape (ms)':<14}{'median':>10}{'p95':>10}{'target':>10}  result")
        ok = median <= TARGET_MS and p95 <= TARGET_MS
        verdict = "MET" if ok else "MISSED"
        print(f"{f'{args.scrapes} scrapes':<14}{median:>10.1f}{p95:>10.1f}{TARGET_MS:>10.0f}  {verdict}")
    finally:
        if engine is not None:
            engine.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
