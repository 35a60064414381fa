"""Metrics, protocols and conformal intervals against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from soilclay.errors import BadInputError
from soilclay.model import protocols
from soilclay.model.config import ModelConfig
from soilclay.model.metrics import regression_metrics
from soilclay.model.uncertainty import conformal_halfwidth, cross_conformal_coverage


def test_metrics_match_hand_computation():
    obs = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    pred = np.array([12.0, 18.0, 33.0, 40.0, 47.0])
    m = regression_metrics(obs, pred)
    # residuals 2, -2, 3, 0, -3: SSE 26, MSE 5.2; SST 1000; IQR of obs = 40 - 20 = 20
    assert m["n"] == 5
    assert m["rmse"] == pytest.approx(np.sqrt(5.2))
    assert m["r2"] == pytest.approx(1 - 26 / 1000)
    assert m["rpiq"] == pytest.approx(20 / np.sqrt(5.2))
    assert m["bias"] == pytest.approx(0.0)
    shifted = regression_metrics(obs, obs + 1.5)
    assert shifted["bias"] == pytest.approx(1.5) and shifted["rmse"] == pytest.approx(1.5)
    assert regression_metrics(obs, np.r_[pred[:4], np.nan])["n"] == 4  # missing predictions are not counted


def test_holdout_and_kfold_assignments():
    hold = protocols.holdout_folds(100, 0.2, seed=1)
    assert (hold == 0).sum() == 20 and (hold == protocols.NEVER).sum() == 80
    assert np.array_equal(hold, protocols.holdout_folds(100, 0.2, seed=1))
    k = protocols.kfold_folds(103, 5, seed=1)
    # 103 = 5 * 20 + 3: every fold gets 20 samples and the first three one more; which sample goes
    # where is shuffled by the seed (not the input order) and reproducible.
    assert np.bincount(k).tolist() == [21, 21, 21, 20, 20]
    assert np.array_equal(k, protocols.kfold_folds(103, 5, seed=1))
    assert not np.array_equal(k, np.arange(103) % 5)
    assert not np.array_equal(k, protocols.kfold_folds(103, 5, seed=2))
    predefined = np.array([3, 3, 7, 7, 9, 9])
    assert protocols.kfold_folds(6, 5, 0, predefined).tolist() == [0, 0, 1, 1, 2, 2]
    for train, test in protocols.splits(k):
        assert set(train).isdisjoint(test) and len(train) + len(test) == 103


def test_spatial_blocks_never_straddle_folds():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 10_000, 500), rng.uniform(0, 10_000, 500)
    folds = protocols.spatial_folds(x, y, 1000.0, 5, seed=2)
    blocks = np.floor(x / 1000).astype(int) * 100 + np.floor(y / 1000).astype(int)
    for b in np.unique(blocks):
        assert len(np.unique(folds[blocks == b])) == 1
    counts = np.bincount(folds)
    assert len(counts) == 5 and counts.max() - counts.min() < 30  # balanced by samples
    with pytest.raises(ValueError, match="at least 5 blocks"):
        protocols.spatial_folds(x[:3], y[:3], 50_000.0, 5, seed=2)


def test_a_small_aoi_gets_smaller_spatial_blocks_and_what_cannot_work_is_refused():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1_900, 120), rng.uniform(0, 1_900, 120)  # the small demo world: 4 blocks of 1 km
    assert protocols.count_blocks(x, y, 1000.0) == 4
    size = protocols.fit_block_size(x, y, 1000.0, 5)
    assert size == 500.0 and protocols.count_blocks(x, y, size) >= 5
    assert protocols.fit_block_size(x, y, 250.0, 5) == 250.0  # enough blocks: the configured size stays
    with pytest.raises(BadInputError, match=r"fill only 1 blocks even of 31.25 m \(configured 1000 m\)"):
        protocols.fit_block_size(np.full(50, 5.0), np.full(50, 5.0), 1000.0, 5)  # all in one place
    with pytest.raises(BadInputError, match="needs at least 5 samples, found 3"):
        protocols.fit_block_size(x[:3], y[:3], 1000.0, 5)


def test_an_experiment_refuses_impossible_folds_before_training(monkeypatch):
    from soilclay.model import experiment, train
    from soilclay.model.features import Features

    trained = []
    monkeypatch.setattr(train, "fit_all", lambda *a, **k: trained.append(1))
    n = 40
    rng = np.random.default_rng(0)
    features = Features.from_frame(_frame(rng, n), ("optical", "coords"), source="t")
    xy = np.zeros((n, 2))  # every sample at one point: no 5 spatial blocks of any size
    with pytest.raises(BadInputError, match="spatial CV with 5 folds"):
        experiment.run_experiment(features, rng.uniform(5, 50, n), ModelConfig.parse({}), xy=xy,
                                  protocols=("holdout", "kfold", "spatial"))
    assert trained == []


def _frame(rng, n):
    import pandas as pd

    from soilclay.contract import COORD_COLUMNS, S2_BANDS

    cols = {b: rng.uniform(0.05, 0.4, n) for b in S2_BANDS}
    cols.update({c: rng.uniform(10, 11, n) for c in COORD_COLUMNS})
    return pd.DataFrame(cols)


def test_conformal_halfwidth_and_coverage():
    residuals = np.arange(1, 20, dtype=float)  # 19 residuals: rank ceil(20 * 0.9) = 18
    assert conformal_halfwidth(residuals, 0.9) == 18.0
    assert conformal_halfwidth(-residuals, 0.9) == 18.0  # absolute values
    rng = np.random.default_rng(5)
    r = rng.normal(0, 3, 4000)
    folds = rng.integers(0, 5, 4000)
    assert 0.88 < cross_conformal_coverage(r, folds, 0.9) < 0.92


def test_config_refuses_bad_values_and_restricts_inputs():
    with pytest.raises(BadInputError, match="cnn.kernel_size"):
        ModelConfig.parse({"cnn": {"kernel_size": 1}})
    with pytest.raises(BadInputError, match="inputs must include 'optical'"):
        ModelConfig.parse({"inputs": ["sar"]})
    assert ModelConfig().with_inputs(("optical", "coords")).inputs == ("optical", "coords")
    assert ModelConfig().hash() == ModelConfig().hash() != ModelConfig.parse({"seed": 1}).hash()
