"""Interpretation: permutation importance on held-out data (any model) and, for the CNN, gradient
attribution over the spectral bands (in :mod:`soilclay.model.cnn`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from soilclay.model.features import Features


def permutation_importance(predict: Callable[[Features], np.ndarray], features: Features, y: np.ndarray, *,
                           seed: int, repeats: int = 5) -> dict[str, float]:
    """Mean increase of RMSE on ``features`` when one column is shuffled (larger = more important)."""
    rng = np.random.default_rng([seed, 31])
    base = float(np.sqrt(np.mean((predict(features) - y) ** 2)))
    flat = features.matrix()
    out = {}
    for j, column in enumerate(features.columns):
        losses = []
        for _ in range(repeats):
            shuffled = features.with_column(j, flat[rng.permutation(len(y)), j])
            losses.append(float(np.sqrt(np.mean((predict(shuffled) - y) ** 2))))
        out[column] = float(np.mean(losses) - base)
    return out
