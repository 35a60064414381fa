"""The retraining gate's data: the fixed gate set of samples, and candidate vs champion on it.

The gate compares the candidate and the current champion on the SAME held-out data that NEITHER has
seen: a fixed gate set of samples (those whose stable hash of source and point id falls in the first
:data:`GATE_FRACTION`) is never used for training by any version, so the comparison stays fair across
versions (a champion evaluated on samples it was trained on would always win). Both are scored on
today's composite features; the candidate is its final model, the champion the served SavedModel.
The decision itself is :func:`soilclay.model.registry.decide`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from soilclay.db import models
from soilclay.db.tx import reading
from soilclay.io.store import open_store
from soilclay.model import registry
from soilclay.model.experiment import Experiment
from soilclay.model.features import Features
from soilclay.model.metrics import regression_metrics

log = logging.getLogger(__name__)
GATE_MODEL = "cnn"
GATE_FRACTION = 0.1


def gate_mask(frame) -> np.ndarray:
    """Samples in the fixed gate set: stable across versions, reloads and databases (hash of point id and
    source, not of the database's sample id)."""
    import hashlib

    keys = (frame["source"].astype(str) + ":" if "source" in frame else "") + frame["point_id"].astype(str)
    buckets = np.array([int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) % 1000 for k in keys])
    return buckets < int(GATE_FRACTION * 1000)


def evaluate(engine: Engine, experiment: Experiment, gate: Features, y: np.ndarray, tmp: Path,
             force: bool) -> tuple[registry.Decision, models.ChampionInfo | None]:
    """The gate's decision on the experiment's final CNN against the current champion (both scored on the
    gate set), and that champion; the scores go into ``experiment.lineage['gate']``."""
    from soilclay.model.cnn import predict_cnn

    assert experiment.final is not None
    predicted = np.clip(predict_cnn(experiment.final.cnn, gate), 0, 100)
    candidate_rmse = float(np.sqrt(np.mean((predicted - y) ** 2)))
    candidate_r2 = regression_metrics(np.ravel(y), np.ravel(predicted))["r2"]  # NaN (fewer than 2, no spread): None
    with reading(engine, "reading the champion model") as conn:
        champion = models.current_champion(conn)
    champion_rmse = _champion_rmse(champion, gate, y, tmp) if champion else None
    experiment.lineage["gate"] = {"samples": int(len(y)), "candidate_rmse": candidate_rmse,
                                  "candidate_r2": candidate_r2 if math.isfinite(candidate_r2) else None,
                                  "champion_version": champion.version if champion else None,
                                  "champion_rmse": champion_rmse}
    if champion is not None and champion_rmse is None and not force:
        return registry.Decision(False, f"champion v{champion.version} cannot be evaluated on these inputs; "
                                        "use force to replace it"), champion
    return registry.decide(candidate_rmse, champion_rmse, force=force), champion


def _champion_rmse(champion, features: Features, y: np.ndarray, workdir: Path) -> float | None:
    """RMSE of the served champion on these features, or None when its artefact cannot be used."""
    from soilclay.model.export import load_serving

    uri = champion.artefact_uri
    local = Path(uri) if "://" not in uri else None
    if local is None:  # gs://: fetch the version directory
        store = open_store(uri.rsplit("/", 1)[0])
        local = workdir / "champion"
        version = uri.rstrip("/").rsplit("/", 1)[1]
        for key in store.list(f"{version}/"):
            store.download(key, local / key.split("/", 1)[1])
    serve = load_serving(str(local))
    wanted = set(serve.structured_input_signature[1])
    if not wanted <= set(features.arrays):
        log.warning("champion %s needs inputs %s the new data lacks: the gate cannot compare", champion.version, wanted)
        return None
    import tensorflow as tf

    out = serve(**{k: tf.constant(v) for k, v in features.arrays.items() if k in wanted})
    pred = np.asarray(out["clay"]).ravel()
    return float(np.sqrt(np.mean((pred - y) ** 2)))
