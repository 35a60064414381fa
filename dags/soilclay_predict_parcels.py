"""Per-parcel clay estimates with the champion model when composites or the model change; emit PREDICTIONS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _soilclay_common import (
    COMPOSITES,
    MODEL,
    PREDICTIONS,
    START_DATE,
    default_aois,
    default_args,
    soilclay_runtime,
    task_run,
)
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

DOC = """
### soilclay: predict parcels

Runs when the **COMPOSITES** or the **MODEL** asset is updated. `plan` pins the champion model
version and the AOI's newest composites of the method it was trained on, and cuts the AOI's parcels
into `parcel_key` ranges of `chunk_size` (`soilclay.predict.run.plan_predictions`); one mapped
`predict_chunk` task per range estimates the parcels whose current geometry has no estimate from that
model on those composites yet
(`predict_aoi` with `plan.request_for(chunk)`: the pins and the range), so re-running writes nothing
and a failed chunk is retried alone. A chunk is *skipped* if the champion changed after planning
(the new champion's MODEL event triggers a fresh run), so one run never mixes two models or two
composite versions; at most two chunks run at once (each loads the model).

`model_version`: when given it must be the current champion, else the run fails (no retry).
Before the first champion (the first COMPOSITES event also starts the first training) or before
any Sentinel-2 composite, `plan` is *skipped*: the MODEL event runs this DAG again.

**Asset**: `publish_predictions` emits **PREDICTIONS** (`extra`: model version, composites, counts)
only when estimates were written; otherwise it is skipped and no event is emitted.
`all_chunks_estimated` fails the run when any chunk failed.

**Params**: `aoi`, `serving` (`local`: in-process SavedModel; `tfserving`: TF Serving over gRPC,
address from `SOILCLAY_TF_SERVING_GRPC`), `model_version` (integer or null), `chunk_size`, `dry_run`.
"""


@dag(
    dag_id="soilclay_predict_parcels",
    schedule=(COMPOSITES | MODEL),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args("predict", timeout=timedelta(hours=2)),
    dagrun_timeout=timedelta(hours=4),
    tags=["soilclay", "predict"],
    doc_md=DOC,
    params={
        "aoi": Param(default_aois()[0], type="string", minLength=1, description="AOI whose parcels to estimate"),
        "serving": Param("local", type="string", enum=["local", "tfserving"], description="How the model runs"),
        "model_version": Param(None, type=["null", "integer"], minimum=1,
                               description="Expected champion version (null: whatever the champion is)"),
        "chunk_size": Param(500, type="integer", minimum=1, maximum=100_000, description="Parcels per mapped task"),
        "dry_run": Param(False, type="boolean", description="Log what would be done; change nothing"),
    },
)
def soilclay_predict_parcels() -> None:
    @task
    def plan(params: dict[str, Any]) -> dict[str, Any]:
        """Pin the champion and the composites; the parcel id ranges to map over."""
        from soilclay.errors import NotReadyError
        from soilclay.predict.run import plan_predictions

        with soilclay_runtime() as (_, engine):
            try:
                planned = plan_predictions(engine, aoi_name=params["aoi"], chunk_size=params["chunk_size"],
                                           model_version=params["model_version"])
            except NotReadyError as exc:  # e.g. the first composites, before any champion: MODEL runs us later
                raise AirflowSkipException(f"not ready: {exc}") from exc
        print(f"AOI {planned.aoi}: {planned.parcels_in_aoi} parcels in {len(planned.chunks)} chunks; model "
              f"v{planned.model_version}, composites S2 {planned.s2_composite_id}, S1 {planned.s1_composite_id}")
        return planned.as_dict()

    @task
    def chunks(planned: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
        from soilclay.predict.run import PredictPlan

        if params["dry_run"]:
            print(f"dry run: would estimate {planned['parcels_in_aoi']} parcels in {len(planned['chunks'])} chunks")
            return []
        return PredictPlan.from_dict(planned).chunk_args()

    @task(map_index_template="{{ task.op_kwargs['chunk']['first'] }}..{{ task.op_kwargs['chunk']['last'] }}",
          max_active_tis_per_dagrun=2)
    def predict_chunk(chunk: dict[str, Any], planned: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Estimate the chunk's parcels not yet estimated by the pinned model on the pinned composites."""
        from soilclay.errors import ChampionChangedError
        from soilclay.io.store import open_store
        from soilclay.predict.run import PredictPlan, predict_aoi
        from soilclay.serving.factory import ServingChoice, predictor_factory

        plan = PredictPlan.from_dict(planned)
        with soilclay_runtime() as (settings, engine):
            settings.work_dir.mkdir(parents=True, exist_ok=True)
            with task_run(engine, "predict", params={**chunk, "serving": params["serving"]}) as run:
                factory = predictor_factory(ServingChoice.from_settings(settings, params["serving"], "grpc"))
                request = plan.request_for((chunk["first"], chunk["last"]), run_id=run.run_id,
                                           workdir=settings.work_dir)
                try:
                    outcome = predict_aoi(engine, request, factory, store=open_store(settings.store_url))
                except ChampionChangedError as exc:  # a retrain promoted a new model: its MODEL event reruns us
                    run.status, run.summary, outcome = "skipped", {"reason": str(exc)}, None
                else:
                    run.summary = {"estimated": outcome.estimated, "written": outcome.written,
                                   "flags": outcome.flagged}
        if outcome is None:
            raise AirflowSkipException(f"superseded: {run.summary['reason']}")
        print(outcome.render())
        return {"estimated": outcome.estimated, "written": outcome.written, "flags": outcome.flagged,
                "s1_composite_id": outcome.s1_composite_id}

    @task(outlets=[PREDICTIONS], trigger_rule="all_done")
    def publish_predictions(planned: dict[str, Any], results: list[dict[str, Any] | None] | None) -> dict[str, Any]:
        """Emit PREDICTIONS when estimates were written, or skip (no event)."""
        if not planned:
            raise AirflowSkipException("planning failed: no PREDICTIONS event")
        done = [r for r in (results or []) if r]
        written = sum(r["written"] for r in done)
        if not written:
            raise AirflowSkipException(f"no new estimates for {planned['aoi']}: no PREDICTIONS event")
        flags: dict[str, int] = {}
        for r in done:
            for flag, n in r["flags"].items():
                flags[flag] = flags.get(flag, 0) + n
        extra = {"aoi": planned["aoi"], "model_version": planned["model_version"],
                 "s2_composite_id": planned["s2_composite_id"],
                 "s1_composite_id": next((r["s1_composite_id"] for r in done), None),
                 "estimated": sum(r["estimated"] for r in done), "written": written, "flags": flags}
        get_current_context()["outlet_events"][PREDICTIONS].extra = extra
        return extra

    @task(trigger_rule="none_failed")
    def all_chunks_estimated() -> None:
        """Fails (upstream_failed) when any chunk failed, so the run does too."""

    planned = plan()
    estimated = predict_chunk.partial(planned=planned).expand(chunk=chunks(planned))
    publish_predictions(planned, estimated)
    estimated >> all_chunks_estimated()


soilclay_predict_parcels()
