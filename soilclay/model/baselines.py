"""The paper's baselines on exactly the CNN's features: Random Forest and an ANN (multi-layer
perceptron with standardised inputs and target)."""

from __future__ import annotations

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from soilclay.model.config import AnnConfig, RfConfig


def fit_rf(config: RfConfig, X: np.ndarray, y: np.ndarray, seed: int) -> RandomForestRegressor:
    model = RandomForestRegressor(n_estimators=config.n_estimators, min_samples_leaf=config.min_samples_leaf,
                                  max_features=config.max_features, n_jobs=2, random_state=seed)
    return model.fit(X, y)


def fit_ann(config: AnnConfig, X: np.ndarray, y: np.ndarray, seed: int) -> TransformedTargetRegressor:
    mlp = MLPRegressor(hidden_layer_sizes=config.hidden, alpha=config.alpha, learning_rate_init=config.learning_rate,
                       max_iter=config.max_iter, early_stopping=True, validation_fraction=0.15,
                       n_iter_no_change=30, random_state=seed)
    model = TransformedTargetRegressor(regressor=make_pipeline(StandardScaler(), mlp), transformer=StandardScaler())
    return model.fit(X, y)
