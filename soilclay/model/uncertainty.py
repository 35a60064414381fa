"""Prediction intervals by split-conformal calibration on held-out residuals.

The half-width is the ⌈(n+1)·coverage⌉-th smallest absolute held-out residual, which guarantees
the coverage for exchangeable data. Coverage is *measured* cross-conformally: each fold's interval
is calibrated on the other folds' held-out residuals, so no residual judges its own interval.
"""

from __future__ import annotations

import math

import numpy as np


def conformal_halfwidth(residuals: np.ndarray, coverage: float) -> float:
    r = np.sort(np.abs(np.asarray(residuals, dtype=float)[np.isfinite(residuals)]))
    n = len(r)
    if n == 0:
        raise ValueError("conformal calibration needs held-out residuals, found none")
    rank = math.ceil((n + 1) * coverage)
    return float(r[min(rank, n) - 1]) if rank <= n else float(r[-1])


def cross_conformal_coverage(residuals: np.ndarray, folds: np.ndarray, coverage: float) -> float:
    """Share of held-out residuals inside an interval calibrated on the other folds' residuals."""
    residuals = np.asarray(residuals, dtype=float)
    inside, total = 0, 0
    for f in np.unique(folds[folds >= 0]):
        mine = (folds == f) & np.isfinite(residuals)
        others = (folds != f) & (folds >= 0) & np.isfinite(residuals)
        if mine.sum() == 0 or others.sum() == 0:
            continue
        h = conformal_halfwidth(residuals[others], coverage)
        inside += int((np.abs(residuals[mine]) <= h).sum())
        total += int(mine.sum())
    return inside / total if total else float("nan")


def split_coverage(residuals: np.ndarray, coverage: float, seed: int) -> float:
    """For a single held-out set: calibrate on one random half, measure on the other, and vice versa."""
    r = np.asarray(residuals, dtype=float)
    r = r[np.isfinite(r)]
    halves = np.random.default_rng([seed, 21]).permutation(len(r)) % 2
    folds = halves.astype(int)
    return cross_conformal_coverage(r, folds, coverage)
