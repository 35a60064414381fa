"""One training experiment: protocols, importances, final models, interval and domain, and the report.

Shared by ``soilclay train --table`` (any feature table) and the retraining pipeline (samples from
PostGIS, features from composites).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soilclay.model.config import ModelConfig
from soilclay.model.features import Features
from soilclay.model.report import plot_importances, plot_predictions, write_json
from soilclay.model.train import (
    MODELS,
    Fitted,
    ProtocolResult,
    assign_folds,
    fit_all,
    importances,
    run_protocol,
    spatial_block_size,
)


@dataclass
class Experiment:
    config: ModelConfig
    primary: str
    results: dict[str, ProtocolResult]
    importance: dict[str, dict[str, float]]
    final: Fitted | None
    halfwidth: float
    domain: object | None
    lineage: dict = field(default_factory=dict)
    seconds: float = 0.0

    def report(self) -> dict:
        primary = self.results[self.primary]
        out = {
            "protocol": self.primary,
            "models": primary.metrics,
            "protocols": {name: r.to_json() for name, r in self.results.items()},
            "interval": {"coverage_target": self.config.interval_coverage, "halfwidth": self.halfwidth,
                         "empirical_coverage": primary.coverage, "calibrated_on": f"{self.primary} held-out residuals"},
            "importance": self.importance,
            "config": self.config.model_dump(mode="json"),
            "config_hash": self.config.hash(),
            "data": self.lineage,
            "seconds": round(self.seconds, 1),
        }
        if self.domain is not None:
            out["domain"] = {"threshold": self.domain.threshold, "quantile": self.config.domain_quantile}
        if self.final is not None:
            out["final"] = {"cnn_epochs": self.final.cnn_epochs}
        return out

    def write(self, report_path: Path, y: np.ndarray) -> list[Path]:
        """The JSON report and its PNG plots next to it."""
        paths = [write_json(self.report(), report_path)]
        stem = report_path.with_suffix("")
        for name, r in self.results.items():
            paths.append(plot_predictions(y, r.predictions, r.metrics, f"{name} validation (n={len(y)})",
                                          Path(f"{stem}_{name}_predictions.png")))
        if self.importance:
            paths.append(plot_importances(self.importance, Path(f"{stem}_importance.png")))
        return paths


def run_experiment(features: Features, y: np.ndarray, config: ModelConfig, *, primary: str = "kfold",
                   protocols: tuple[str, ...] | None = None, predefined_folds: np.ndarray | None = None,
                   xy: np.ndarray | None = None, final: bool = True, models: tuple[str, ...] = MODELS,
                   lineage: dict | None = None, progress: bool = False) -> Experiment:
    """Validate ``models`` under each protocol (``primary`` first), measure importances on the holdout
    split, and (``final``) train on all data with the interval calibrated on ``primary``'s residuals."""
    started = time.monotonic()
    wanted = tuple(dict.fromkeys((primary, *(protocols or ()))))
    if "holdout" not in wanted:
        wanted = (*wanted, "holdout")  # importances are measured on the holdout split
    # Every protocol's folds first: what cannot work is refused before any model is trained.
    folds_of = {name: assign_folds(name, len(y), config, predefined=predefined_folds if name == "kfold" else None,
                                   xy=xy) for name in wanted}
    results = {}
    for name in wanted:
        results[name] = run_protocol(name, config, features, y, folds_of[name], models, progress)
        if name == "spatial" and xy is not None:
            results[name].block_size_m = spatial_block_size(config, xy)
    hold = results["holdout"]
    test = np.flatnonzero(hold.folds >= 0)
    imp = importances(hold.last_fit, features.take(test), y[test], config.seed, models) if hold.last_fit else {}
    if protocols is not None and "holdout" not in protocols and primary != "holdout":
        results.pop("holdout")
    fitted, domain = None, None
    halfwidth = results[primary].halfwidth
    if final:
        fitted = fit_all(config, features, y, models)
        from soilclay.model.domain import DomainModel

        domain = DomainModel.fit(features.matrix(), quantile=config.domain_quantile)
    return Experiment(config, primary, results, imp, fitted, halfwidth, domain, dict(lineage or {}),
                      time.monotonic() - started)
