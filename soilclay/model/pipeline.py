"""Retraining: samples → features → CNN/RF/ANN → validation → champion/challenger gate → publish.

The gate compares the candidate and the current champion on the SAME held-out data that NEITHER
has seen: a fixed gate set of samples (those whose stable hash of source and point id falls in
the first ``gate_fraction``) is never used for training by any version, so the comparison stays
fair across versions (a champion evaluated on samples it was trained on would always win). Both
are scored on today's composite features; the candidate is its final model, the champion the
served SavedModel. Validation protocols and the final fit use the other samples. A promoted version is
published to the TF Serving base path ``{model_base_path}/{version}/``; a rejected one to
``{store}/models/rejected/{version}/``, never where serving looks. The report (JSON and plots)
travels inside the SavedModel under ``assets.extra/report/`` and, as JSON, in
``soilclay.model_versions.metrics``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyproj import Transformer
from sqlalchemy import Engine

from soilclay.errors import BadInputError
from soilclay.io.store import open_store
from soilclay.model.config import ModelConfig
from soilclay.model.experiment import Experiment, run_experiment
from soilclay.model.features import Features
from soilclay.model.table import utm_for

log = logging.getLogger(__name__)
GATE_MODEL = "cnn"


@dataclass
class RetrainOutcome:
    version: int
    status: str  # 'champion' or 'rejected'
    reason: str
    artefact_uri: str
    metrics: dict
    samples: int

    def render(self) -> str:
        lines = [f"model version {self.version}: {self.status} ({self.reason})", f"  {self.artefact_uri}",
                 f"  trained on {self.samples} samples; out-of-fold metrics:"]
        for protocol, result in self.metrics["protocols"].items():
            cells = "  ".join(f"{m.upper()} R2 {v['r2']:.3f} RMSE {v['rmse']:.2f} RPIQ {v['rpiq']:.2f}"
                              for m, v in result["models"].items())
            lines.append(f"    {protocol:<8} {cells}")
        interval = self.metrics["interval"]
        lines.append(f"  CNN 90 % interval ±{interval['halfwidth']:.2f} "
                     f"(coverage {interval['empirical_coverage']:.3f})")
        gate = self.metrics.get("data", {}).get("gate")
        if gate:
            champ = "none" if gate["champion_rmse"] is None else f"{gate['champion_rmse']:.2f}"
            lines.append(f"  gate set ({gate['samples']} samples never trained on): candidate RMSE "
                         f"{gate['candidate_rmse']:.2f}, champion RMSE {champ}")
        return "\n".join(lines)


def _versions_in(url: str) -> set[int]:
    store = open_store(url)
    return {int(k.split("/", 1)[0]) for k in store.list() if k.split("/", 1)[0].isdigit()}


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


def retrain(engine: Engine, *, aoi_name: str, store_url: str, model_base_path: str, config: ModelConfig,
            force: bool = False, run_id: str | None = None, sources: list[str] | None = None,
            workdir: Path | None = None, progress: bool = False, serving_config_dir: Path | None = None,
            serving_model: str = "clay", serving_base_path: str = "/models/clay") -> RetrainOutcome:
    from soilclay.features.points import features_for_aoi
    from soilclay.model import registry
    from soilclay.model.export import export_savedmodel, publish_model

    store = open_store(store_url)
    with tempfile.TemporaryDirectory(prefix="soilclay-retrain-", dir=workdir) as tmp_name:
        tmp = Path(tmp_name)
        table = features_for_aoi(engine, aoi_name, store=store, workdir=tmp, sources=sources)
        frame = table.data
        if len(frame) < 5 * config.folds:
            raise BadInputError(f"only {len(frame)} samples with features in {aoi_name} ({table.render()}); "
                                f"at least {5 * config.folds} needed")
        available = ("optical", "coords") + (("sar",) if "VV" in frame.columns else ())
        config = config.with_inputs(available)
        in_gate = gate_mask(frame)
        if in_gate.sum() < 5:
            raise BadInputError(f"only {int(in_gate.sum())} of {len(frame)} samples fall in the gate set: "
                                "at least 5 are needed to compare versions")
        gate = Features.from_frame(frame[in_gate], config.inputs, source=f"gate samples of {aoi_name}")
        y_gate = frame.loc[in_gate, "clay"].to_numpy(float)
        frame = frame[~in_gate]
        features = Features.from_frame(frame, config.inputs, source=f"features of {aoi_name}")
        y = frame["clay"].to_numpy(float)
        utm = utm_for(float(frame["lon"].mean()), float(frame["lat"].mean()))
        xy = np.column_stack(Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform(
            frame["lon"].to_numpy(), frame["lat"].to_numpy()))
        inputs_key = _inputs_key(config, table.data)
        lineage = {**table.lineage, "aoi": aoi_name, "samples": int(len(frame)), "requested": table.requested,
                   "excluded_nodata": table.excluded_nodata, "excluded_outside": table.excluded_outside,
                   "sample_ids_hash": _hash_ids(frame["sample_id"].to_numpy()), "inputs_key": inputs_key,
                   "run_id": run_id}
        if not force:
            done = _trained_on(engine, inputs_key)
            if done is not None:
                return done
        experiment = run_experiment(features, y, config, primary="kfold", protocols=("holdout", "kfold", "spatial"),
                                    xy=xy, final=True, lineage=lineage, progress=progress)
        decision, champion = _gate(engine, experiment, gate, y_gate, tmp, force)
        lineage = experiment.lineage
        with engine.connect() as conn:
            version = max([registry.next_version(conn), *(v + 1 for v in _versions_in(model_base_path)),
                           *(v + 1 for v in _rejected_versions(store))])
        export = tmp / "export"
        report = experiment.report()
        assert experiment.final is not None and experiment.domain is not None
        export_savedmodel(experiment.final.cnn, features.inputs, experiment.halfwidth, experiment.domain, export,
                          metadata={"version": version, "config_hash": config.hash(), "lineage": lineage,
                                    "metrics": {"protocol": report["protocol"], "models": report["models"]}})
        experiment.write(export / "assets.extra" / "report" / "report.json", y)
        if decision.promote:
            uri = publish_model(export, model_base_path, version)
        else:
            uri = store.publish_dir(export, f"models/rejected/{version}")
        registry.register_candidate(engine, version=version, artefact_uri=uri, metrics=_jsonable(report),
                                    training_data=_jsonable(lineage), config_hash=config.hash(), run_id=run_id)
        status = registry.apply_decision(engine, version, decision,
                                         expected_champion=champion.version if champion else None)
        if status == "champion" and serving_config_dir is not None:
            write_serving_config(serving_config_dir, serving_model, serving_base_path, version,
                                 previous=champion.version if champion else None)
        shutil.rmtree(export, ignore_errors=True)
    return RetrainOutcome(version, status, decision.reason, uri, report, len(frame))


GATE_FRACTION = 0.1


def write_serving_config(config_dir: Path, model: str, base_path: str, champion: int, previous: int | None) -> None:
    """TF Serving's models.config (and monitoring.config) after a promotion. With a previous champion the
    label stays on it while the new version loads (TF Serving refuses to move a label to a version not yet
    loaded); :func:`soilclay.serving.config.write_models_config` with the new version alone completes the
    swap once it is ready (``soilclay predict --serving tfserving`` does so)."""
    from soilclay.serving.config import write_models_config, write_monitoring_config

    config_dir.mkdir(parents=True, exist_ok=True)
    if previous is None:
        write_models_config(config_dir / "models.config", model_name=model, base_path=base_path, version=champion)
    else:
        write_models_config(config_dir / "models.config", model_name=model, base_path=base_path, version=previous,
                            also_load=[champion])
    write_monitoring_config(config_dir / "monitoring.config")


def gate_mask(frame) -> np.ndarray:
    """Samples in the fixed gate set: stable across versions, reloads and databases (hash of point id and
    source, not of the database's sample id)."""
    import hashlib

    keys = (frame["source"].astype(str) + ":" if "source" in frame else "") + frame["point_id"].astype(str)
    buckets = np.array([int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) % 1000 for k in keys])
    return buckets < int(GATE_FRACTION * 1000)


def _gate(engine: Engine, experiment: Experiment, gate: Features, y: np.ndarray, tmp: Path, force: bool):
    from soilclay.model import registry
    from soilclay.model.cnn import predict_cnn

    assert experiment.final is not None
    candidate_rmse = float(np.sqrt(np.mean((np.clip(predict_cnn(experiment.final.cnn, gate), 0, 100) - y) ** 2)))
    with engine.connect() as conn:
        champion = registry.current_champion(conn)
    champion_rmse = _champion_rmse(champion, gate, y, tmp) if champion else None
    experiment.lineage["gate"] = {"samples": int(len(y)), "candidate_rmse": candidate_rmse,
                                  "champion_version": champion.version if champion else None,
                                  "champion_rmse": champion_rmse}
    if champion is not None and champion_rmse is None and not force:
        return registry.Decision(False, f"champion v{champion.version} cannot be evaluated on these inputs; "
                                        "use force to replace it"), champion
    return registry.decide(candidate_rmse, champion_rmse, force=force), champion


def _rejected_versions(store) -> set[int]:
    return {int(k.split("/")[2]) for k in store.list("models/rejected") if k.split("/")[2].isdigit()}


def _hash_ids(ids: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(",".join(str(i) for i in sorted(ids.tolist())).encode()).hexdigest()[:32]


def _inputs_key(config: ModelConfig, frame) -> str:
    """What a training run depends on: the config and the exact feature table (samples x composites)."""
    import hashlib

    table = frame.sort_values("sample_id").to_csv(index=False, float_format="%.6g")
    return hashlib.sha256((config.hash() + "\n" + table).encode()).hexdigest()[:32]


def _trained_on(engine: Engine, inputs_key: str) -> RetrainOutcome | None:
    """The version already trained on exactly these inputs: retraining the same inputs changes nothing."""
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT version, status, artefact_uri, metrics, (training_data->>'samples')::int AS samples "
            "FROM soilclay.model_versions WHERE training_data->>'inputs_key' = :k ORDER BY version DESC LIMIT 1"),
            {"k": inputs_key}).first()
    if row is None:
        return None
    return RetrainOutcome(row.version, "up-to-date",
                          f"version {row.version} ({row.status}) was trained on exactly these samples, features "
                          "and config", row.artefact_uri, row.metrics, row.samples)


def _jsonable(value):
    import json

    from soilclay.model.report import _clean

    return json.loads(json.dumps(_clean(value), default=str))
