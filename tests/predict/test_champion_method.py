"""Estimates only on composites of the method the champion was trained on (issue 12, item 4).

A model trained on 25th-percentile composites applied to mean composites puts most parcels out of its
domain: the champion's lineage names the method of each sensor's composites (``s2_method_hash``,
``s1_method_hash``) and prediction picks the newest composite of that method, or refuses saying why.

The registry and the composites here are real rows in a database of this module's own (the champion is
shared by every AOI), written through the library's repositories; no model is trained except in the last
test, which goes through retraining on the small demo world.
"""

from __future__ import annotations

import logging
from datetime import date

import pytest
from sqlalchemy import text

from soilclay.composites.recipe import Recipe
from soilclay.db import composites as composite_rows
from soilclay.db import migrate
from soilclay.db.engine import make_engine
from soilclay.db.tx import reading
from soilclay.errors import BadInputError, NotReadyError
from soilclay.features.points import method_lineage
from soilclay.model.registry import apply_decision, decide, register_candidate
from soilclay.predict import run as predict_run
from soilclay.predict.run import NEWEST, NONE, CompositePin, PredictRequest, plan_predictions, predict_aoi
from tests.db import builders

P25 = {"statistic": "p25"}
MEAN = {"statistic": "mean"}


@pytest.fixture(scope="module")
def module_engine(db_factory):
    url = db_factory("soilclay_method")
    migrate.upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def engine(module_engine):
    """No model version (the champion is global); the AOIs and composites of earlier tests stay (each test
    has AOIs of its own)."""
    with module_engine.begin() as conn:
        conn.execute(text("DELETE FROM soilclay.model_versions"))
    return module_engine


def _recipe(aoi: str, s2: dict | None = None, s1: dict | None = None, **more) -> Recipe:
    return Recipe.parse({"aoi": aoi, "window": {"years": 3}, "grid": {"crs": "EPSG:32633"}, "s2": s2 or {},
                         "s1": s1 or {}, **more})


def _composite(engine, aoi: str, sensor: str, recipe: Recipe, n: int) -> composite_rows.CompositeRow:
    """Register the next ``sensor`` composite of AOI ``aoi`` (created if needed) computed with ``recipe``."""
    with engine.begin() as conn:
        found = conn.execute(text("SELECT aoi_id FROM soilclay.aois WHERE name = :n"), {"n": aoi}).scalar()
        aoi_id = found if found is not None else builders.aoi(conn, aoi)
        return composite_rows.insert_next_version(conn, composite_rows.NewComposite(
            aoi_id=aoi_id, sensor=sensor, period=(date(2022, 1, 1), date(2024, 12, 31)),
            recipe_hash=recipe.hash(sensor), recipe_json=recipe.model_dump_json(), inputs_hash=f"{n:032x}",
            scene_count=10, skipped_count=0, backend="local", uri=f"file:///c/{aoi}/{sensor}/{n}.tif", run_id=None))


def _champion(engine, version: int, s2: composite_rows.CompositeRow | None,
              s1: composite_rows.CompositeRow | None) -> None:
    """Model ``version``, champion, trained on features of ``s2``/``s1`` as retraining records them
    (``s2`` None: a champion registered before methods were recorded)."""
    lineage = {"samples": 100} if s2 is None else {"samples": 100, **method_lineage(s2, s1)}
    register_candidate(engine, version=version, artefact_uri=f"file:///models/clay/{version}",
                       metrics={"rmse": 4.0, "data": lineage}, training_data=lineage, config_hash="cfg",
                       run_id=None)
    apply_decision(engine, version, decide(4.0, None))


def _resolve(engine, aoi: str, s2: CompositePin = NEWEST, s1: CompositePin = NEWEST):
    with reading(engine, "resolving") as conn:
        _, _, s2_row, s1_row = predict_run._resolve(conn, aoi, None, s2, s1)
    return s2_row, None if s1_row is None else s1_row.composite_id


def test_newest_composite_of_the_champions_method_not_simply_the_newest(engine):
    trained = _composite(engine, "m-a", "sentinel-2", _recipe("m-a", P25), 1)
    s1 = _composite(engine, "m-a", "sentinel-1", _recipe("m-a", P25), 2)
    _champion(engine, 1, trained, s1)
    # A refresh (window moved forward, another tile size): the same method, newer.
    refreshed = _composite(engine, "m-a", "sentinel-2", _recipe("m-a", P25, tile_size=128,
                                                                window={"start": "2023-01-01", "end": "2025-12-31"}), 3)
    mean = _composite(engine, "m-a", "sentinel-2", _recipe("m-a", MEAN), 4)  # the newest, another method
    boxcar = _composite(engine, "m-a", "sentinel-1", _recipe("m-a", s1={"speckle_filter": "boxcar"}), 5)
    assert mean.version == 3 and boxcar.version == 2

    plan = plan_predictions(engine, aoi_name="m-a")
    assert (plan.model_version, plan.s2_composite_id, plan.s1_composite_id) == (1, refreshed.composite_id,
                                                                                 s1.composite_id)
    # The method is the same on another AOI (another name and grid): that AOI's composite of it is used.
    other = _composite(engine, "m-b", "sentinel-2", _recipe("m-b", P25, grid={"crs": "EPSG:32632"}), 6)
    _composite(engine, "m-b", "sentinel-2", _recipe("m-b", MEAN), 7)
    assert _resolve(engine, "m-b", s1=NONE) == (other, None)


def test_no_composite_of_the_method_refuses_in_one_line_naming_it(engine):
    trained = _composite(engine, "m-c", "sentinel-2", _recipe("m-c", P25), 11)
    _champion(engine, 3, trained, None)
    mean = _composite(engine, "m-d", "sentinel-2", _recipe("m-d", MEAN), 12)
    p25 = _recipe("m-c", P25).method("sentinel-2").hash[:8]
    with pytest.raises(NotReadyError) as refused:
        plan_predictions(engine, aoi_name="m-d")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("AOI m-d has no sentinel-2 composite of the method champion model version 3 was "
                              f"trained on: 25th percentile of bare-soil observations (NDVI < 0.25, NBR2 < 0.075) "
                              f"(method {p25}); its newest sentinel-2 composite is version 1 (id {mean.composite_id}): "
                              "mean of bare-soil observations"), message
    assert _recipe("m-d", MEAN).method("sentinel-2").hash[:8] in message
    # No composite at all is said so too.
    with engine.begin() as conn:
        builders.aoi(conn, "m-e")
    with pytest.raises(NotReadyError, match="AOI m-e has no sentinel-2 composite of the method .* newest "
                                            "sentinel-2 composite is none"):
        _resolve(engine, "m-e")


def test_a_pinned_composite_of_another_method_is_refused(engine):
    trained = _composite(engine, "m-f", "sentinel-2", _recipe("m-f", P25), 21)
    s1 = _composite(engine, "m-f", "sentinel-1", _recipe("m-f"), 22)
    _champion(engine, 4, trained, s1)
    mean = _composite(engine, "m-f", "sentinel-2", _recipe("m-f", MEAN), 23)
    boxcar = _composite(engine, "m-f", "sentinel-1", _recipe("m-f", s1={"speckle_filter": "boxcar"}), 24)

    def never(champion):  # the composites are refused before any model is loaded
        raise AssertionError("the predictor must not be built")

    with pytest.raises(BadInputError, match=rf"sentinel-2 composite version 2 \(id {mean.composite_id}\): mean of "
                                            r"bare-soil .* of AOI m-f is not of the method champion model version 4 "
                                            r"was trained on: 25th percentile"):
        predict_aoi(engine, PredictRequest("m-f", "r", s2=CompositePin.of(mean.composite_id)), never)
    with pytest.raises(BadInputError, match="sentinel-1 composite version 2 .* boxcar 3x3 speckle filter"):
        _resolve(engine, "m-f", s1=CompositePin.of(boxcar.composite_id))
    assert _resolve(engine, "m-f", CompositePin.of(trained.composite_id),
                    CompositePin.of(s1.composite_id)) == (trained, s1.composite_id)


def test_a_model_without_sar_takes_any_sentinel_1_composite(engine):
    trained = _composite(engine, "m-g", "sentinel-2", _recipe("m-g", P25), 31)
    _champion(engine, 5, trained, None)  # trained without a Sentinel-1 composite
    boxcar = _composite(engine, "m-g", "sentinel-1", _recipe("m-g", s1={"speckle_filter": "boxcar"}), 32)
    assert _resolve(engine, "m-g") == (trained, boxcar.composite_id)


def test_a_champion_without_a_recorded_method_keeps_the_newest_with_a_warning(engine, caplog):
    old = _composite(engine, "m-h", "sentinel-2", _recipe("m-h", P25), 41)
    _champion(engine, 6, None, None)
    mean = _composite(engine, "m-h", "sentinel-2", _recipe("m-h", MEAN), 42)
    with caplog.at_level(logging.WARNING, logger="soilclay.predict.run"):
        assert _resolve(engine, "m-h", s1=NONE) == (mean, None)
        assert _resolve(engine, "m-h", CompositePin.of(old.composite_id), NONE) == (old, None)
    assert "champion model version 6 records no composite method" in caplog.text


def test_retraining_records_the_methods_and_prediction_follows_them(world_states):
    """End to end on the small world: the champion trained by retraining records the method of the composites
    its features came from; a newer composite of another method (a mean) is not used for estimates, the one
    trained on is."""
    world = world_states.fresh("champion")
    engine = world.engine
    with engine.connect() as conn:
        training_data, metrics = conn.execute(text(
            "SELECT training_data, metrics FROM soilclay.model_versions WHERE status = 'champion'")).one()
        rows = {r.sensor: r for r in composite_rows.list_for_aoi(conn, "demo-small")}  # version 1 of each
    for key, sensor in (("s2", "sentinel-2"), ("s1", "sentinel-1")):
        method = Recipe.parse(rows[sensor].recipe).method(sensor)
        assert (training_data[f"{key}_method_hash"], training_data[f"{key}_method"]) == (method.hash,
                                                                                       method.description)
        assert metrics["data"][f"{key}_method_hash"] == method.hash  # the report's copy agrees

    grid = rows["sentinel-2"].recipe["grid"]
    mean = Recipe.parse({"aoi": "demo-small", "window": {"years": 3}, "grid": grid, "s2": MEAN, "s1": None})
    with engine.begin() as conn:  # a newer composite of another method (planning reads no pixel of it)
        old = rows["sentinel-2"]
        composite_rows.insert_next_version(conn, composite_rows.NewComposite(
            aoi_id=conn.execute(text("SELECT aoi_id FROM soilclay.aois WHERE name = 'demo-small'")).scalar(),
            sensor="sentinel-2", period=old.period, recipe_hash=mean.hash("sentinel-2"),
            recipe_json=mean.model_dump_json(), inputs_hash="f" * 32, scene_count=old.scene_count, skipped_count=0,
            backend="local", uri=old.uri + "?mean", run_id=None))
    with engine.connect() as conn:
        newest = next(r for r in composite_rows.list_for_aoi(conn, "demo-small") if r.sensor == "sentinel-2")
    assert newest.version == 2 and newest.recipe["s2"]["statistic"] == "mean"
    plan = plan_predictions(engine, aoi_name="demo-small")
    assert plan.s2_composite_id == rows["sentinel-2"].composite_id != newest.composite_id
