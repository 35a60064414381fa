"""Per-parcel estimates end to end on the small demo world: PostGIS in, PostGIS out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from soilclay.db.runs import recorded_run
from soilclay.errors import BadInputError, ChampionChangedError
from soilclay.model.config import ModelConfig
from soilclay.model.pipeline import RetrainRequest, retrain
from soilclay.parcels.load import load_parcels
from soilclay.predict import write as write_module
from soilclay.predict.run import NONE, CompositePin, PredictRequest, plan_predictions, predict_aoi
from soilclay.serving.predictor import InProcessPredictor
from soilclay.testing import FAST, prepared_world_db


def _local(champion):
    return InProcessPredictor(champion.artefact_uri, champion.version)


@pytest.fixture(scope="module")
def world_db(db_factory, small_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    engine, store = prepared_world_db(db_factory(), small_world, root)
    retrain(engine, RetrainRequest("demo-small", ModelConfig.parse(FAST), str(root / "store"), str(root / "models")))
    load_parcels(engine, small_world / "parcels.gpkg")
    yield engine, store
    engine.dispose()


def _run(engine, store, run_id):
    with recorded_run(engine, "predict", run_id=run_id) as run:
        return predict_aoi(engine, PredictRequest("demo-small", run.run_id), _local, store=store)


def _latest(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(text("SELECT * FROM soilclay.parcel_clay_latest ORDER BY parcel_id"), conn)


def test_estimates_match_the_truth_and_rerun_writes_nothing(world_db, small_world):
    engine, store = world_db
    first = _run(engine, store, "predict-1")
    parcels = pd.read_csv(small_world / "truth" / "parcels_truth.csv")
    assert first.estimated == first.written == len(parcels)
    latest = _latest(engine)
    assert len(latest) == len(parcels) and (latest["model_version"] == 1).all()
    merged = latest.merge(parcels, on="parcel_id")
    ok = merged["clay"].notna()
    assert ok.sum() >= 0.75 * len(merged)  # grassland parcels are rarely bare: flagged instead
    resid = merged.loc[ok, "clay"] - merged.loc[ok, "clay_true_mean"]
    truth = merged.loc[ok, "clay_true_mean"]
    r2 = 1 - (resid**2).sum() / ((truth - truth.mean()) ** 2).sum()
    assert r2 > 0.6, r2
    inside = (merged.loc[ok, "clay_true_mean"].between(merged.loc[ok, "clay_lower"], merged.loc[ok, "clay_upper"]))
    assert inside.mean() >= 0.85
    flagged = merged[~ok]
    assert (flagged["flags"].map(len) > 0).all()
    assert (merged.loc[ok, "pixel_count"] >= 3).all()

    again = _run(engine, store, "predict-2")
    assert (again.estimated, again.written) == (0, 0)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM soilclay.parcel_predictions")).scalar() == len(parcels)


def test_failure_mid_write_leaves_previous_results_intact(world_db, monkeypatch):
    engine, store = world_db
    with engine.begin() as conn:  # a new parcel needs an estimate
        conn.execute(text(
            "INSERT INTO soilclay.parcels (source, parcel_id, geom, source_file) SELECT 't', 'NEW-1', ST_Multi("
            "ST_Buffer(ST_Centroid(geom)::geography, 60)::geometry), 't' FROM soilclay.aois WHERE name = 'demo-small'"))
    before = _latest(engine)
    original = write_module.rows

    def broken_rows(est, geometries, **kwargs):
        for i, row in enumerate(original(est, geometries, **kwargs)):
            yield row if i == 0 else (*row[:6], 150.0, *row[7:])  # violates the clay range CHECK

    monkeypatch.setattr(write_module, "rows", broken_rows)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM soilclay.parcel_predictions pp USING soilclay.parcels p "
                          "WHERE pp.parcel_key = p.parcel_key AND p.parcel_id LIKE 'DEMO-0000%'"))
    with pytest.raises(BadInputError, match="parcel_predictions_(mean_range|interval_order)"):
        _run(engine, store, "predict-broken")
    with engine.connect() as conn:
        missing = conn.execute(text(
            "SELECT count(*) FROM soilclay.parcels p WHERE NOT EXISTS (SELECT 1 FROM soilclay.parcel_predictions pp "
            "WHERE pp.parcel_key = p.parcel_key)")).scalar()
        status = conn.execute(text(
            "SELECT status FROM soilclay.pipeline_runs WHERE run_id = 'predict-broken'")).scalar()
    assert status == "failed"
    assert missing == 1 + 9  # nothing of the failed run is visible: the new parcel and the deleted ones lack rows
    after = _latest(engine)
    kept = before["parcel_id"].str.startswith("DEMO-0000") == False  # noqa: E712
    pd.testing.assert_frame_equal(before[kept].reset_index(drop=True), after[kept].reset_index(drop=True))
    monkeypatch.setattr(write_module, "rows", original)
    resumed = _run(engine, store, "predict-resume")
    assert resumed.estimated == 10


def test_reader_role_queries_the_view(world_db):
    engine, store = world_db
    _run(engine, store, "predict-reader")  # estimates exist whatever ran before (a re-run writes nothing)
    with engine.connect() as conn:
        conn.execute(text("SET ROLE soilclay_reader"))
        n = conn.execute(text("SELECT count(*) FROM soilclay.parcel_clay_latest WHERE clay > 0")).scalar()
        conn.execute(text("RESET ROLE"))
    assert n > 20


def test_parcels_outside_or_smaller_than_a_pixel_are_flagged(world_db):
    engine, store = world_db
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO soilclay.parcels (source, parcel_id, geom, source_file) VALUES "
            "('t', 'TINY-1', (SELECT ST_Multi(ST_Buffer(ST_Centroid(geom)::geography, 3)::geometry) "
            " FROM soilclay.aois WHERE name = 'demo-small'), 't'),"
            "('t', 'EDGE-1', ST_Multi(ST_Buffer((SELECT ST_PointN(ST_ExteriorRing(ST_GeometryN(geom, 1)), 1) "
            " FROM soilclay.aois WHERE name = 'demo-small')::geography, 25)::geometry), 't')"))
    _run(engine, store, "predict-small")
    with engine.connect() as conn:
        rows = dict(conn.execute(text(
            "SELECT parcel_id, flags FROM soilclay.parcel_clay_history WHERE parcel_id IN ('TINY-1', 'EDGE-1')")).all())
        clay = conn.execute(text(
            "SELECT clay FROM soilclay.parcel_clay_history WHERE parcel_id = 'TINY-1'")).scalar()
    assert clay is None and set(rows["TINY-1"]) & {"no_pixels", "too_few_pixels"}
    assert "EDGE-1" in rows


def test_a_reshaped_parcel_is_estimated_anew_and_its_old_estimate_is_history(world_db, small_world, tmp_path):
    """Issue 12 item 2: reloading a file in which a parcel's geometry changed used to keep the estimate of the
    old shape in the view, and predict found nothing to do."""
    import geopandas as gpd

    engine, store = world_db
    _run(engine, store, "predict-before-reshape")  # every parcel has an estimate, whatever ran before
    frame = gpd.read_file(small_world / "parcels.gpkg")
    target = frame["parcel_id"].iloc[3]
    frame.loc[3, "geometry"] = frame.geometry.iloc[3].buffer(-15)  # 15 m shaved off the edges
    changed = tmp_path / "parcels.gpkg"  # the same register, re-extracted
    frame.to_file(changed, layer="parcels")
    report = load_parcels(engine, changed)
    assert (report.updated, report.reshaped, report.unchanged) == (1, 1, len(frame) - 1)
    reshaped = _run(engine, store, "predict-after-reshape")
    assert (reshaped.estimated, reshaped.written) == (1, 1)
    with engine.connect() as conn:
        latest = conn.execute(text("SELECT run_id, geom_hash FROM soilclay.parcel_clay_latest WHERE parcel_id = :p"),
                              {"p": target}).one()
        history = conn.execute(text("SELECT geometry_current, run_id, ST_Area(geom::geography) AS m2 "
                                    "FROM soilclay.parcel_clay_history WHERE parcel_id = :p AND model_version = 1 "
                                    "ORDER BY geometry_current"), {"p": target}).all()
    assert latest.run_id == "predict-after-reshape"
    assert [h.geometry_current for h in history] == [False, True] and history[0].m2 > history[1].m2
    assert history[1].run_id == "predict-after-reshape"
    assert _run(engine, store, "predict-after-reshape-again").estimated == 0


def test_chunked_run_equals_the_whole_run_and_pins_the_champion(world_db):
    engine, store = world_db
    _run(engine, store, "predict-whole")
    whole = _latest(engine).set_index("parcel_id")
    plan = plan_predictions(engine, aoi_name="demo-small", chunk_size=37)
    assert plan.model_version == 1 and plan.s1_composite_id is not None
    assert plan.parcels_in_aoi == len(whole) and len(plan.chunks) == -(-len(whole) // 37)
    bounds = [b for chunk in plan.chunks for b in chunk]
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM soilclay.parcel_predictions"))
    pins = {"model_version": plan.model_version, "s2": CompositePin.of(plan.s2_composite_id),
            "s1": CompositePin.of(plan.s1_composite_id)}
    counts = []
    for i, (lo, hi) in enumerate(plan.chunks):
        with recorded_run(engine, "predict", run_id=f"predict-chunk-{i}") as run:
            out = predict_aoi(engine, PredictRequest("demo-small", run.run_id, parcel_range=(lo, hi), **pins),
                              _local, store=store)
        counts.append(out.estimated)
    assert counts[:-1] == [37] * (len(plan.chunks) - 1) and sum(counts) == len(whole)
    chunked = _latest(engine).set_index("parcel_id").loc[whole.index]
    assert chunked["run_id"].str.startswith("predict-chunk-").all()
    np.testing.assert_allclose(chunked["clay"].to_numpy(float), whole["clay"].to_numpy(float), atol=1e-4)
    again = predict_aoi(engine, PredictRequest("demo-small", "x", parcel_range=plan.chunks[0], **pins), _local,
                        store=store)
    assert (again.estimated, again.written) == (0, 0)
    # Pinned "no S1" means none, not the newest S1: this SAR model then refuses (unpinned it would find
    # the chunk done with the newest S1 and return quietly).
    with pytest.raises(BadInputError, match="needs SAR inputs but no Sentinel-1 composite"):
        predict_aoi(engine, PredictRequest("demo-small", "z", parcel_range=plan.chunks[0], **{**pins, "s1": NONE}),
                    _local, store=store)
    with pytest.raises(ChampionChangedError, match="model version 7 was requested .* champion is now version 1"):
        predict_aoi(engine, PredictRequest("demo-small", "y", parcel_range=plan.chunks[0],
                                           **{**pins, "model_version": 7}), _local, store=store)
    with pytest.raises(BadInputError, match="chunk_size"):
        plan_predictions(engine, aoi_name="demo-small", chunk_size=0)


def test_aggregation_interval_and_flags():
    from soilclay.predict.aggregate import aggregate

    parcel = np.array([0, 0, 0, 0, 1, 2, 2, 2])
    clay = np.array([10, 12, 14, 16, 30, 40, 42, 44], float)
    est = aggregate(["a", "b", "c", "d"], parcel, clay, clay - 5, clay + 5, np.array([1, 1, 1, 1, 1, 0, 0, 1], bool),
                    total_pixels=np.array([4, 10, 3, 0]), usable_pixels=np.array([4, 1, 6, 0]))
    assert est.clay_mean[0] == 13 and est.clay_median[0] == 13
    assert (est.clay_lower[0], est.clay_upper[0]) == (8, 18)  # all usable pixels used: model interval only
    assert np.isnan(est.clay_mean[1]) and est.flags[1] == ["too_few_pixels"] and est.bare_fraction[1] == 0.1
    assert est.flags[2] == ["pixels_sampled", "mostly_out_of_domain"]  # 3 of 6 usable pixels kept
    assert est.clay_upper[2] - est.clay_mean[2] > 5  # the sampling error widens the interval
    assert est.flags[3] == ["no_pixels"] and est.pixel_count[3] == 0
