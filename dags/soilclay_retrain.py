"""Retrain the clay model monthly or when new composites arrive; emit MODEL when a new champion is published."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _soilclay_common import COMPOSITES, MODEL, START_DATE, default_aois, default_args, soilclay_runtime, task_run
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

DOC = """
### soilclay: retrain

Runs on the 1st of each month at 03:00 UTC **or** when the **COMPOSITES** asset is updated. One task
calls `soilclay.model.pipeline.retrain` (CNN with RF and ANN baselines, three validation protocols,
champion/challenger gate, SavedModel published under `SOILCLAY_MODEL_BASE_PATH`) with the model
config in `SOILCLAY_MODEL_CONFIG_FILE` (JSON; empty: the library's defaults). When the model was
already trained on exactly these inputs the library returns that version and trains nothing.

Before the AOI has a Sentinel-2 composite (a monthly run on a fresh system) the run is *skipped*
(recorded as `skipped` in `soilclay.pipeline_runs`), not failed.

**Asset**: `publish_model` emits **MODEL** (`extra`: version, previous champion) only when this run
made a *new* version the champion (the library decides: `RetrainOutcome.new_champion`, also true for a
retry whose earlier try of the same DAG run promoted the version); when the candidate was rejected or
nothing new was trained it is skipped and no event is emitted.

**Params**: `aoi`, `force_retrain` (promote even if it does not beat the champion, and retrain on
unchanged inputs), `dry_run`.
"""


def _model_config(path: str) -> Any:
    from soilclay.model.config import ModelConfig

    return ModelConfig.from_file(path, what="SOILCLAY_MODEL_CONFIG_FILE: model config")


@dag(
    dag_id="soilclay_retrain",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 1 * *", timezone="UTC"), assets=COMPOSITES),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args("train", timeout=timedelta(hours=4)),
    dagrun_timeout=timedelta(hours=6),
    tags=["soilclay", "model"],
    doc_md=DOC,
    params={
        "aoi": Param(default_aois()[0], type="string", minLength=1, description="AOI whose samples to train on"),
        "force_retrain": Param(False, type="boolean", description="Retrain and promote regardless of the gate"),
        "dry_run": Param(False, type="boolean", description="Log what would be done; change nothing"),
    },
)
def soilclay_retrain() -> None:
    @task
    def retrain(params: dict[str, Any]) -> dict[str, Any]:
        """Train, validate and gate; returns the version, its status and whether it is a new champion."""
        aoi, force = params["aoi"], params["force_retrain"]
        if params["dry_run"]:
            print(f"dry run: would retrain on AOI {aoi} (force={force})")
            return {"aoi": aoi, "version": None, "status": "dry-run", "new_champion": False}
        from soilclay.errors import NotReadyError
        from soilclay.model.pipeline import RetrainRequest
        from soilclay.model.pipeline import retrain as run_retrain
        from soilclay.serving.publish import ServingConfigTarget

        dag_run = get_current_context()["dag_run"]
        with soilclay_runtime() as (settings, engine):
            settings.work_dir.mkdir(parents=True, exist_ok=True)
            with task_run(engine, "train", params={"aoi": aoi, "force": force,
                                                   "config_file": settings.model_config_file}) as run:
                config = _model_config(settings.model_config_file)
                request = RetrainRequest(aoi, config, settings.store_url, settings.model_base_path, force=force,
                                         run_id=run.run_id, workdir=settings.work_dir,
                                         serving=ServingConfigTarget.from_settings(settings),
                                         dag_run=(dag_run.dag_id, dag_run.run_id))
                try:
                    outcome = run_retrain(engine, request)
                except NotReadyError as exc:  # e.g. the monthly run before the first composites
                    run.status, run.summary, outcome = "skipped", {"reason": str(exc)}, None
                else:
                    run.summary = {"version": outcome.version, "status": outcome.status,
                                   "samples": outcome.samples, "config_hash": config.hash()}
        if outcome is None:
            raise AirflowSkipException(f"not ready: {run.summary['reason']}")
        print(outcome.render())
        return {"aoi": aoi, "version": outcome.version, "status": outcome.status, "reason": outcome.reason,
                "previous_champion": outcome.previous_champion, "new_champion": outcome.new_champion}

    @task(outlets=[MODEL])
    def publish_model(result: dict[str, Any]) -> dict[str, Any]:
        """Emit MODEL for a newly promoted champion, or skip (no event)."""
        if not result["new_champion"]:
            raise AirflowSkipException(f"no new champion (version {result['version']}: {result['status']})")
        extra = {"version": result["version"], "previous_champion": result["previous_champion"],
                 "aoi": result["aoi"]}
        get_current_context()["outlet_events"][MODEL].extra = extra
        return extra

    publish_model(retrain())


soilclay_retrain()
