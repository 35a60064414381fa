"""Retraining: samples → features → CNN/RF/ANN → validation → champion/challenger gate → publish.

:func:`retrain` takes one :class:`RetrainRequest`. A fixed gate set of samples is held out from
training by every version (:mod:`soilclay.model.gate`); validation protocols and the final fit use the
other samples. A promoted version is published to the TF Serving base path
``{model_base_path}/{version}/`` (its number from :func:`choose_version`); a rejected one to
``{store}/models/rejected/{version}/``, never where serving looks. The report (JSON and plots) travels
inside the SavedModel under ``assets.extra/report/`` and, as JSON, in ``soilclay.model_versions.metrics``.
Whether the run made a *new* champion (a MODEL event is due) is decided here too
(:func:`soilclay.model.registry.champion_change`), not by the caller: :class:`RetrainOutcome` says so.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyproj import Transformer
from sqlalchemy import Engine

from soilclay.db import claims, models
from soilclay.db.tx import reading
from soilclay.errors import BadInputError
from soilclay.io.store import open_store
from soilclay.model import registry
from soilclay.model.config import ModelConfig
from soilclay.model.experiment import run_experiment
from soilclay.model.features import Features
from soilclay.model.gate import evaluate as gate_evaluation
from soilclay.model.gate import gate_mask
from soilclay.model.report import jsonable
from soilclay.model.table import utm_for
from soilclay.serving.publish import ServingConfigTarget, write_serving_config


def _nonempty(value, name: str, *, optional: bool = False) -> None:
    if (value is None and optional) or (isinstance(value, str) and value.strip()):
        return
    raise BadInputError(f"retrain {name} must be a non-empty string{' or None' if optional else ''}, found {value!r}")


def _refuse(ok: bool, what: str, value) -> None:
    if not ok:
        raise BadInputError(f"retrain {what}, found {value!r}")


@dataclass(frozen=True)
class RetrainRequest:
    """One retraining: the AOI's samples and newest composites, trained with ``config``.

    ``store_url``: the object store (composites; rejected models under ``models/rejected/``);
    ``model_base_path``: TF Serving's base path for promoted versions. ``force``: retrain on unchanged
    inputs and promote whatever the gate says. ``run_id``: the ``pipeline_runs`` row the version is
    registered with. ``serving``: where a promotion writes TF Serving's config (None: nowhere).
    ``sources``: only samples of these sources. ``dag_run``: ``(dag_id, dag_run_id)`` of the Airflow DAG
    run this is a try of, so a retry after an earlier try's promotion still counts as a new champion.
    """

    aoi: str
    config: ModelConfig
    store_url: str
    model_base_path: str
    force: bool = False
    run_id: str | None = None
    workdir: Path | None = None
    serving: ServingConfigTarget | None = None
    sources: tuple[str, ...] | None = None
    dag_run: tuple[str, str] | None = None
    progress: bool = False
    #: How long to wait for another retrain (one runs at a time) before giving up.
    claim_wait_s: float = 1800.0

    def __post_init__(self) -> None:
        for name in ("aoi", "store_url", "model_base_path"):
            _nonempty(getattr(self, name), name)
        _nonempty(self.run_id, "run_id", optional=True)
        _refuse(isinstance(self.config, ModelConfig), "config must be a ModelConfig", self.config)
        _refuse(isinstance(self.claim_wait_s, int | float) and not isinstance(self.claim_wait_s, bool)
                and 0 <= self.claim_wait_s < float("inf"), "claim_wait_s must be seconds >= 0", self.claim_wait_s)
        for name in ("force", "progress"):
            _refuse(isinstance(getattr(self, name), bool), f"{name} must be true or false", getattr(self, name))
        if self.workdir is not None:
            _refuse(isinstance(self.workdir, str | Path) and str(self.workdir).strip() != "",
                    "workdir must be a directory path", self.workdir)
            object.__setattr__(self, "workdir", Path(self.workdir))
        _refuse(self.serving is None or isinstance(self.serving, ServingConfigTarget),
                "serving must be a ServingConfigTarget or None", self.serving)
        if self.sources is not None:
            _refuse(isinstance(self.sources, tuple | list) and len(self.sources) > 0,
                    "sources must be a non-empty list of names or None", self.sources)
            object.__setattr__(self, "sources", tuple(self.sources))
            for source in self.sources:
                _nonempty(source, "source")
        if self.dag_run is not None:
            _refuse(isinstance(self.dag_run, tuple | list) and len(self.dag_run) == 2,
                    "dag_run must be (dag_id, dag_run_id) or None", self.dag_run)
            object.__setattr__(self, "dag_run", tuple(self.dag_run))
            _nonempty(self.dag_run[0], "dag_id")
            _nonempty(self.dag_run[1], "dag_run_id")


@dataclass(frozen=True)
class RetrainOutcome:
    version: int
    status: str  # 'champion', 'rejected' or 'up-to-date'
    reason: str
    artefact_uri: str
    metrics: dict
    samples: int
    #: This run made ``version`` the champion (also when an earlier try of the same DAG run did).
    new_champion: bool = False
    #: The champion it replaced (new champion), else the champion left in place; None when there is none.
    previous_champion: int | None = None

    def render(self) -> str:
        from soilclay.model.report import render_retrain

        return render_retrain(self)


def retrain(engine: Engine, request: RetrainRequest) -> RetrainOutcome:
    """Train, validate and gate on ``request``'s AOI; publish and register the new version (or return the
    version already trained on exactly these inputs, as 'up-to-date', unless forced).

    One retrain runs at a time (a :func:`soilclay.db.claims.claim`: model versions and the champion are
    shared by every AOI): a second one waits for the first, then finds its inputs already trained on
    ('up-to-date') instead of training them again."""
    with claims.claim(engine, RETRAIN_CLAIM, stage="train", what="the retrain claim (one retrain at a time)",
                      own_run=request.run_id, wait_s=request.claim_wait_s):
        return _retrain(engine, request)


#: The claim every retrain holds while it runs.
RETRAIN_CLAIM = "soilclay.retrain"


def _retrain(engine: Engine, request: RetrainRequest) -> RetrainOutcome:
    store = open_store(request.store_url)
    with tempfile.TemporaryDirectory(prefix="soilclay-retrain-", dir=request.workdir) as tmp_name:
        tmp = Path(tmp_name)
        data = _training_data(engine, request, store, tmp)
        if not request.force:
            done = _trained_on(engine, request, data.lineage["inputs_key"])
            if done is not None:
                return done
        experiment = run_experiment(data.features, data.y, data.config, primary="kfold",
                                    protocols=("holdout", "kfold", "spatial"), xy=data.xy, final=True,
                                    lineage=data.lineage, progress=request.progress)
        decision, champion = gate_evaluation(engine, experiment, data.gate, data.y_gate, tmp, request.force)
        before = champion.version if champion else None
        version = choose_version(engine, request.model_base_path, store)
        uri, report = _publish(experiment, data, request, store, version, decision.promote, tmp / "export")
        registry.register_candidate(engine, version=version, artefact_uri=uri, metrics=jsonable(report),
                                    training_data=jsonable(experiment.lineage), config_hash=data.config.hash(),
                                    run_id=request.run_id)
        status = registry.apply_decision(engine, version, decision, expected_champion=before)
        if status == "champion" and request.serving is not None:
            target = request.serving
            write_serving_config(target.config_dir, target.model, target.base_path, version, previous=before)
    change = _champion_change(engine, request, version, before=before, replaced=before)
    return RetrainOutcome(version, status, decision.reason, uri, report, len(data.y), change.new_champion,
                          change.previous_champion)


@dataclass(frozen=True)
class _TrainingData:
    config: ModelConfig  # with the inputs the data has
    features: Features
    y: np.ndarray
    xy: np.ndarray
    gate: Features
    y_gate: np.ndarray
    lineage: dict


def _training_data(engine: Engine, request: RetrainRequest, store, tmp: Path) -> _TrainingData:
    """The AOI's samples with features, split into the gate set and the training samples, with lineage.

    The lineage (the model's ``training_data``) names the composites the features came from and each
    one's method (``s2_method_hash``, ``s1_method_hash``: :func:`soilclay.features.points.method_lineage`);
    prediction uses only composites of those methods."""
    from soilclay.features.points import features_for_aoi

    aoi_name, config = request.aoi, request.config
    table = features_for_aoi(engine, aoi_name, store=store, workdir=tmp,
                             sources=list(request.sources) if request.sources else None)
    frame = table.data
    if len(frame) < 5 * config.folds:
        raise BadInputError(f"only {len(frame)} samples with features in {aoi_name} ({table.render()}); "
                            f"at least {5 * config.folds} needed")
    config = config.with_inputs(("optical", "coords") + (("sar",) if "VV" in frame.columns else ()))
    in_gate = gate_mask(frame)
    if in_gate.sum() < 5:
        raise BadInputError(f"only {int(in_gate.sum())} of {len(frame)} samples fall in the gate set: "
                            "at least 5 are needed to compare versions")
    gate = Features.from_frame(frame[in_gate], config.inputs, source=f"gate samples of {aoi_name}")
    y_gate = frame.loc[in_gate, "clay"].to_numpy(float)
    train = frame[~in_gate]
    utm = utm_for(float(train["lon"].mean()), float(train["lat"].mean()))
    xy = np.column_stack(Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform(
        train["lon"].to_numpy(), train["lat"].to_numpy()))
    lineage = {**table.lineage, "aoi": aoi_name, "samples": int(len(train)), "requested": table.requested,
               "excluded_nodata": table.excluded_nodata, "excluded_outside": table.excluded_outside,
               "sample_ids_hash": _hash_ids(train["sample_id"].to_numpy()),
               "inputs_key": _inputs_key(config, frame), "run_id": request.run_id}
    return _TrainingData(config, Features.from_frame(train, config.inputs, source=f"features of {aoi_name}"),
                         train["clay"].to_numpy(float), xy, gate, y_gate, lineage)


def _publish(experiment, data: _TrainingData, request: RetrainRequest, store, version: int, promote: bool,
             export: Path) -> tuple[str, dict]:
    """Export the final CNN as SavedModel ``version`` with its report; publish it where serving looks
    (promoted) or under ``models/rejected/``; return its URI and the report."""
    from soilclay.model.export import export_savedmodel, publish_model

    report = experiment.report()
    assert experiment.final is not None and experiment.domain is not None
    export_savedmodel(experiment.final.cnn, data.features.inputs, experiment.halfwidth, experiment.domain, export,
                      metadata={"version": version, "config_hash": data.config.hash(), "lineage": experiment.lineage,
                                "metrics": {"protocol": report["protocol"], "models": report["models"]}})
    experiment.write(export / "assets.extra" / "report" / "report.json", data.y)
    if promote:
        uri = publish_model(export, request.model_base_path, version)
    else:
        uri = store.publish_dir(export, f"models/rejected/{version}")
    shutil.rmtree(export, ignore_errors=True)
    return uri, report


def choose_version(engine: Engine, model_base_path: str, store) -> int:
    """The version number a newly trained model is published and registered under (chosen nowhere else).

    One more than the highest number already used wherever a version can exist, 1 when there is none:
    registered in ``soilclay.model_versions`` (any status: a rejected number is never reused), a version
    directory under the TF Serving base path ``{model_base_path}/{N}/``, or a rejected export under
    ``{store}/models/rejected/{N}/``. The two directories count too because a run may have published an
    export and then failed before registering it: its number must not name a different model later.
    """
    with reading(engine, "choosing the next model version") as conn:
        registered = models.next_version(conn) - 1
    published = {int(k.split("/", 1)[0]) for k in open_store(model_base_path).list() if k.split("/", 1)[0].isdigit()}
    rejected = {int(k.split("/")[2]) for k in store.list("models/rejected") if k.split("/")[2].isdigit()}
    return max([registered, *published, *rejected]) + 1


def _champion_change(engine: Engine, request: RetrainRequest, version: int, *, before: int | None,
                     replaced: int | None) -> registry.ChampionChange:
    """Whether ``version`` is this run's new champion: the champion before vs now, and for a retried try
    whether this DAG run registered it (an earlier try promoted it)."""
    with reading(engine, f"checking whether model version {version} is a new champion") as conn:
        after = models.champion_version(conn)
        here = (request.dag_run is not None and after == version
                and models.registered_in_dag_run(conn, version, *request.dag_run))
    return registry.champion_change(version, before=before, after=after, registered_in_dag_run=here,
                                    replaced=replaced)


def _hash_ids(ids: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(",".join(str(i) for i in sorted(ids.tolist())).encode()).hexdigest()[:32]


def _inputs_key(config: ModelConfig, frame) -> str:
    """What a training run depends on: the config and the exact feature table (samples x composites)."""
    import hashlib

    table = frame.sort_values("sample_id").to_csv(index=False, float_format="%.6g")
    return hashlib.sha256((config.hash() + "\n" + table).encode()).hexdigest()[:32]


def _trained_on(engine: Engine, request: RetrainRequest, inputs_key: str) -> RetrainOutcome | None:
    """The version already trained on exactly these inputs: retraining the same inputs changes nothing."""
    with reading(engine, "looking up a model version trained on these inputs") as conn:
        done = models.trained_on(conn, inputs_key)
        champion = models.champion_version(conn)
    if done is None or done.status == "candidate":  # never gated (a try that failed in between): train anew
        return None
    change = _champion_change(engine, request, done.version, before=champion, replaced=done.gated_against)
    if change.new_champion and request.serving is not None:  # the earlier try may have failed before this
        target = request.serving
        write_serving_config(target.config_dir, target.model, target.base_path, done.version,
                             previous=change.previous_champion)
    return RetrainOutcome(done.version, "up-to-date",
                          f"version {done.version} ({done.status}) was trained on exactly these samples, features "
                          "and config", done.artefact_uri, done.metrics, done.samples, change.new_champion,
                          change.previous_champion)

