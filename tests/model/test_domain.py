"""The applicability domain: zero at the mean, the threshold quantile holds, JSON keeps it exactly."""

from __future__ import annotations

import numpy as np
import pytest

from soilclay.errors import BadInputError
from soilclay.model.domain import DomainModel


def _training(n: int = 5000, seed: int = 0) -> np.ndarray:
    """Correlated features on very different scales, like reflectance DN next to dB and degrees."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    mixing = rng.normal(size=(3, 5))
    return latent @ mixing * np.array([1000, 500, 2, 0.1, 0.1]) + np.array([3000, 2500, -12, 13.0, 52.0])


def test_distance_is_zero_at_the_mean_and_grows_away_from_it():
    X = _training()
    domain = DomainModel.fit(X)
    assert domain.distance(X.mean(axis=0))[0] == pytest.approx(0.0, abs=1e-9)
    far = X.mean(axis=0) + 50 * X.std(axis=0)
    assert domain.distance(far)[0] > domain.threshold
    assert not domain.in_domain(far[None, :])[0]


def test_threshold_quantile_is_respected_on_training_rows():
    X = _training()
    domain = DomainModel.fit(X, quantile=0.99)
    flagged = 1 - domain.in_domain(X).mean()
    assert 0.005 <= flagged <= 0.011
    assert domain.quantile == 0.99


def test_distance_matches_textbook_mahalanobis():
    X = _training(n=500) + np.random.default_rng(2).normal(size=(500, 5))  # full rank
    domain = DomainModel.fit(X, ridge=0.0)
    inv_cov = np.linalg.inv(np.cov((X - X.mean(axis=0)) / X.std(axis=0), rowvar=False))
    z = (X[:10] - X.mean(axis=0)) / X.std(axis=0)
    expected = np.sqrt(np.einsum("ij,jk,ik->i", z, inv_cov, z))
    np.testing.assert_allclose(domain.distance(X[:10]), expected, rtol=1e-6)
    np.testing.assert_allclose(domain.inv_cov, inv_cov, rtol=1e-6, atol=1e-9)


def test_exactly_dependent_features_are_handled_by_the_ridge():
    """VV_VH is VV - VH in dB: a singular covariance must still give a usable domain."""
    rng = np.random.default_rng(4)
    vv, vh = rng.normal(-12, 2, 1000), rng.normal(-18, 2, 1000)
    X = np.column_stack([vv, vh, vv - vh])
    domain = DomainModel.fit(X)
    assert np.all(np.isfinite(domain.distance(X)))
    assert 0.005 <= 1 - domain.in_domain(X).mean() <= 0.011
    assert not domain.in_domain(np.array([[-12.0, -18.0, 20.0]]))[0]  # VV_VH inconsistent with VV, VH


def test_off_correlation_rows_are_out_of_domain_even_within_marginal_ranges():
    rng = np.random.default_rng(1)
    a = rng.normal(size=2000)
    X = np.column_stack([a, a + 0.01 * rng.normal(size=2000)])  # two nearly identical features
    domain = DomainModel.fit(X)
    assert not domain.in_domain(np.array([[1.0, -1.0]]))[0]  # each value ordinary, the pair impossible
    assert domain.in_domain(np.array([[1.0, 1.0]]))[0]


def test_constant_feature_and_nan_rows():
    X = _training(n=300)
    X[:, 2] = 7.0
    domain = DomainModel.fit(X)
    assert domain.scale[2] == 1.0
    assert domain.in_domain(X).mean() > 0.98
    moved = X[:1].copy()
    moved[0, 2] = 8.0
    assert not domain.in_domain(moved)[0]
    assert not domain.in_domain(np.full((1, 5), np.nan))[0]


def test_json_round_trip_is_exact():
    domain = DomainModel.fit(_training(n=400), quantile=0.95)
    again = DomainModel.from_json(domain.to_json())
    assert again == domain
    X = _training(n=50, seed=3)
    np.testing.assert_array_equal(again.distance(X), domain.distance(X))


@pytest.mark.parametrize(("call", "match"), [
    (lambda: DomainModel.fit(np.ones((1, 3))), "at least 2 rows"),
    (lambda: DomainModel.fit(np.array([[1.0, np.nan], [2.0, 3.0]])), "NaN"),
    (lambda: DomainModel.fit(np.ones((10, 2))), "identical"),
    (lambda: DomainModel.fit(np.random.default_rng(0).normal(size=(10, 2)), quantile=1.5), "quantile"),
    (lambda: DomainModel(mean=[0.0, 1.0], scale=[1.0], components=[[1.0, 0], [0, 1.0]], threshold=1.0), "scale"),
    (lambda: DomainModel(mean=[0.0], scale=[1.0], components=[[1.0]], threshold=0.0), "threshold"),
    (lambda: DomainModel.from_json('{"format": "other/1"}'), "soilclay-domain/1"),
    (lambda: DomainModel.from_json('{"mean": [0.0]}'), "lacks"),
    (lambda: DomainModel.fit(np.random.default_rng(0).normal(size=(10, 2))).distance(np.ones((2, 3))),
     "2 features"),
])
def test_bad_inputs_are_named(call, match):
    with pytest.raises(BadInputError, match=match):
        call()
