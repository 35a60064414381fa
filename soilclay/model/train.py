"""Train and validate the CNN and its baselines on one feature table.

For every protocol (holdout, k-fold, spatial blocks) each model is trained on each fold's training
part and predicts its held-out part; metrics are pooled over these out-of-fold predictions. The
final models are then trained on all data; the CNN's interval half-width is calibrated on its
held-out residuals (split-conformal), and its applicability domain fitted on the training features.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from soilclay.model import protocols
from soilclay.model.baselines import fit_ann, fit_rf
from soilclay.model.cnn import fit_cnn, predict_cnn, spectral_attribution
from soilclay.model.config import ModelConfig
from soilclay.model.features import Features
from soilclay.model.interpret import permutation_importance
from soilclay.model.metrics import regression_metrics
from soilclay.model.uncertainty import conformal_halfwidth, cross_conformal_coverage, split_coverage

log = logging.getLogger(__name__)
MODELS = ("cnn", "rf", "ann")


@dataclass
class Fitted:
    """One trained model of each kind, with how to predict."""

    cnn: Any
    rf: Any
    ann: Any
    cnn_epochs: int = 0

    def predict(self, name: str, features: Features) -> np.ndarray:
        if name == "cnn":
            return predict_cnn(self.cnn, features)
        return np.asarray(getattr(self, name).predict(features.matrix()), dtype=float)


def fit_all(config: ModelConfig, features: Features, y: np.ndarray, models: tuple[str, ...] = MODELS) -> Fitted:
    cnn, epochs = fit_cnn(config.cnn, features, y, config.seed) if "cnn" in models else (None, 0)
    rf = fit_rf(config.rf, features.matrix(), y, config.seed) if "rf" in models else None
    ann = fit_ann(config.ann, features.matrix(), y, config.seed) if "ann" in models else None
    return Fitted(cnn, rf, ann, epochs)


@dataclass
class ProtocolResult:
    name: str
    folds: np.ndarray
    predictions: dict[str, np.ndarray]  # out-of-fold, NaN where never held out
    metrics: dict[str, dict[str, float]]
    coverage: float  # of the CNN's conformal interval, measured on held-out residuals
    halfwidth: float
    seconds: float
    last_fit: Fitted | None = field(default=None, repr=False)  # the holdout protocol's models, for importance
    block_size_m: float | None = None  # spatial CV: the block side used

    def to_json(self) -> dict:
        out = {"models": self.metrics, "folds": int(len(np.unique(self.folds[self.folds >= 0]))),
               "cnn_interval": {"halfwidth": self.halfwidth, "coverage": self.coverage},
               "seconds": round(self.seconds, 1)}
        if self.block_size_m is not None:
            out["block_size_m"] = self.block_size_m
        return out


def assign_folds(name: str, n: int, config: ModelConfig, *, predefined: np.ndarray | None,
                 xy: np.ndarray | None) -> np.ndarray:
    if name == "holdout":
        return protocols.holdout_folds(n, config.holdout_fraction, config.seed)
    if name == "kfold":
        return protocols.kfold_folds(n, config.folds, config.seed, predefined)
    if name == "spatial":
        if xy is None:
            raise ValueError("spatial CV needs projected coordinates")
        size = spatial_block_size(config, xy)
        return protocols.spatial_folds(xy[:, 0], xy[:, 1], size, config.folds, config.seed)
    raise ValueError(f"protocol must be holdout, kfold or spatial, found {name!r}")


def spatial_block_size(config: ModelConfig, xy: np.ndarray) -> float:
    """The block side spatial CV uses on ``xy``: the configured one, or smaller on a small AOI (logged)."""
    size = protocols.fit_block_size(xy[:, 0], xy[:, 1], config.block_size_m, config.folds)
    if size != config.block_size_m:
        log.warning("spatial CV: %d samples fill only %d blocks of %g m, fewer than %d folds; using %g m blocks",
                    len(xy), protocols.count_blocks(xy[:, 0], xy[:, 1], config.block_size_m), config.block_size_m,
                    config.folds, size)
    return size


def run_protocol(name: str, config: ModelConfig, features: Features, y: np.ndarray, folds: np.ndarray,
                 models: tuple[str, ...] = MODELS, progress: bool = False) -> ProtocolResult:
    started = time.monotonic()
    preds = {m: np.full(len(y), np.nan) for m in models}
    fitted = None
    parts = protocols.splits(folds)
    for train_idx, test_idx in tqdm(parts, desc=f"{name}: folds", unit="fold", disable=not progress):
        fitted = fit_all(config, features.take(train_idx), y[train_idx], models)
        for m in models:
            preds[m][test_idx] = fitted.predict(m, features.take(test_idx))
    held = folds >= 0
    metrics = {m: regression_metrics(y[held], preds[m][held]) for m in models}
    coverage, halfwidth = float("nan"), float("nan")
    if "cnn" in models:
        resid = np.where(held, preds["cnn"] - y, np.nan)
        halfwidth = conformal_halfwidth(resid[held], config.interval_coverage)
        coverage = (split_coverage(resid[held], config.interval_coverage, config.seed) if len(parts) == 1
                    else cross_conformal_coverage(resid, folds, config.interval_coverage))
    return ProtocolResult(name, folds, preds, metrics, coverage, halfwidth, time.monotonic() - started,
                          fitted if len(parts) == 1 else None)


def importances(fitted: Fitted, features: Features, y: np.ndarray, seed: int,
                models: tuple[str, ...] = MODELS) -> dict[str, dict[str, float]]:
    """Permutation importance of every model on held-out data, and the CNN's spectral attribution."""
    out = {m: permutation_importance(lambda f, m=m: fitted.predict(m, f), features, y, seed=seed) for m in models}
    if "cnn" in models:
        out["cnn_spectral_gradient"] = spectral_attribution(fitted.cnn, features)
    return out
