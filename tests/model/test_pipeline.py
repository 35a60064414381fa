"""Retraining from PostGIS samples and composites, with the champion/challenger gate and publication
to the TF Serving layout; rejected versions never land where serving looks."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from soilclay.model.config import ModelConfig
from soilclay.model.pipeline import RetrainRequest, retrain
from soilclay.serving.publish import ServingConfigTarget
from soilclay.testing import AOI, FAST


@pytest.fixture(scope="module")
def prepared(world_states):
    """A database of its own (the registry must start empty): AOI, samples, scenes, composites."""
    world = world_states.fresh("composites")
    return world.engine, world.root


def test_first_version_becomes_champion_then_worse_is_rejected_and_forced_wins(prepared):
    engine, root = prepared
    base, store = str(root / "models"), str(root / "store")
    serving = ServingConfigTarget(root / "tf-serving")
    first = retrain(engine, RetrainRequest(AOI, ModelConfig.parse(FAST), store, base, serving=serving))
    assert (first.version, first.status) == (1, "champion") and "no champion yet" in first.reason
    assert (root / "models" / "1" / "saved_model.pb").exists()
    assert (root / "models" / "1" / "assets.extra" / "report" / "report_spatial_predictions.png").exists()
    assert set(first.metrics["protocols"]) == {"holdout", "kfold", "spatial"}
    assert first.metrics["models"]["cnn"]["r2"] > 0.3, first.metrics["models"]

    same = retrain(engine, RetrainRequest(AOI, ModelConfig.parse(FAST), store, base))
    assert (same.version, same.status) == (1, "up-to-date")  # same inputs: nothing new

    crippled = ModelConfig.parse({**FAST, "cnn": {"epochs": 1, "patience": 1, "learning_rate": 1e-6}})
    worse = retrain(engine, RetrainRequest(AOI, crippled, store, base))
    assert (worse.version, worse.status) == (2, "rejected")
    assert "vs champion RMSE" in worse.reason
    assert not (root / "models" / "2").exists()  # never where TF Serving looks
    assert (root / "store" / "models" / "rejected" / "2" / "saved_model.pb").exists()

    from soilclay.serving.config import read_models_config, served_versions

    config_file = root / "tf-serving" / "models.config"
    assert served_versions(read_models_config(config_file), "clay") == ((1,), {"champion": 1})
    forced = retrain(engine, RetrainRequest(AOI, crippled, store, base, force=True, serving=serving))
    # The new champion loads next to the old one; the label moves once it is ready.
    assert served_versions(read_models_config(config_file), "clay") == ((1, 3), {"champion": 1})
    assert (root / "tf-serving" / "monitoring.config").exists()
    assert (forced.version, forced.status) == (3, "champion") and forced.reason.startswith("forced")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version, status, training_data->>'s2_composite_id' AS s2, "
                                 "metrics->'models'->'cnn'->>'rmse' AS rmse FROM soilclay.model_versions "
                                 "ORDER BY version")).all()
    assert [(r.version, r.status) for r in rows] == [(1, "retired"), (2, "rejected"), (3, "champion")]
    assert all(r.s2 is not None and float(r.rmse) > 0 for r in rows)  # lineage and metrics stored
    meta = json.loads((root / "models" / "3" / "assets.extra" / "soilclay_model.json").read_text())
    assert meta["format"] == "soilclay-model/1" and meta["metadata"]["version"] == 3
