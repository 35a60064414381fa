"""Regression metrics as soil spectroscopy reports them: R², RMSE, RPIQ (IQR of observed / RMSE),
bias (mean of predicted − observed), n. Pure numpy."""

from __future__ import annotations

import numpy as np


def regression_metrics(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    obs = np.asarray(observed, dtype=float)
    pred = np.asarray(predicted, dtype=float)
    if obs.shape != pred.shape or obs.ndim != 1:
        raise ValueError(f"observed and predicted must be 1-D of equal length, found {obs.shape} and {pred.shape}")
    ok = np.isfinite(obs) & np.isfinite(pred)
    obs, pred = obs[ok], pred[ok]
    n = int(obs.size)
    if n < 2:
        return {"n": n, "r2": float("nan"), "rmse": float("nan"), "rpiq": float("nan"), "bias": float("nan")}
    resid = pred - obs
    rmse = float(np.sqrt(np.mean(resid**2)))
    ss_tot = float(np.sum((obs - obs.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    q1, q3 = np.percentile(obs, [25, 75])
    rpiq = float((q3 - q1) / rmse) if rmse > 0 else float("inf")
    return {"n": n, "r2": r2, "rmse": rmse, "rpiq": rpiq, "bias": float(resid.mean())}
