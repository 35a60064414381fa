"""Per-parcel clay estimates with the champion model when composites or the model change; emit PREDICTIONS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _soilclay_common import (
    COMPOSITES,
    MODEL,
    PREDICTIONS,
    START_DATE,
    dag_run_ids,
    default_aois,
    default_args,
    soilclay_runtime,
)
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

DOC = """
### soilclay: predict parcels

Runs when the **COMPOSITES** or the **MODEL** asset is updated. One task per AOI calls
`soilclay.predict.run.predict_aoi`: the champion model on the AOI's newest composites, for the
parcels that have no estimate from that model on those composites yet (re-running writes nothing).
It is one task per AOI, not mapped over parcel chunks: `predict_aoi` selects its parcels itself and
takes no parcel subset, so chunking needs a library change first.

`model_version`: when given it must be the current champion, checked at the moment the predictor is
built for the champion `predict_aoi` uses; otherwise the task fails (no retry).

**Asset**: `publish_predictions` emits **PREDICTIONS** (`extra`: model version, composites, counts)
only when estimates were written; otherwise it is skipped and no event is emitted.

**Params**: `aoi`, `serving` (`local`: in-process SavedModel; `tfserving`: TF Serving over gRPC),
`model_version` (integer or null), `dry_run`.
"""


@dag(
    dag_id="soilclay_predict_parcels",
    schedule=(COMPOSITES | MODEL),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(timeout=timedelta(hours=2)),
    dagrun_timeout=timedelta(hours=4),
    tags=["soilclay", "predict"],
    doc_md=DOC,
    params={
        "aoi": Param(default_aois()[0], type="string", minLength=1, description="AOI whose parcels to estimate"),
        "serving": Param("local", type="string", enum=["local", "tfserving"], description="How the model runs"),
        "model_version": Param(None, type=["null", "integer"], minimum=1,
                               description="Expected champion version (null: whatever the champion is)"),
        "dry_run": Param(False, type="boolean", description="Log what would be done; change nothing"),
    },
)
def soilclay_predict_parcels() -> None:
    @task
    def predict(params: dict[str, Any]) -> dict[str, Any]:
        """Estimate clay for the AOI's parcels not yet estimated by the champion on the newest composites."""
        aoi, serving, expected = params["aoi"], params["serving"], params["model_version"]
        if params["dry_run"]:
            print(f"dry run: would predict parcels of AOI {aoi} with serving={serving}, model_version={expected}")
            return {"aoi": aoi, "estimated": 0, "written": 0, "dry_run": True}
        from soilclay.cli.predict import predictor_factory
        from soilclay.db.runs import recorded_run
        from soilclay.errors import BadInputError
        from soilclay.io.store import open_store
        from soilclay.predict.run import predict_aoi

        with soilclay_runtime() as (settings, engine):
            build_predictor = predictor_factory(settings, serving, "grpc")

            def checked_factory(champion):
                if expected is not None and champion.version != expected:
                    raise BadInputError(f"model_version={expected} requested but the champion is "
                                        f"version {champion.version}")
                return build_predictor(champion)

            settings.work_dir.mkdir(parents=True, exist_ok=True)
            with recorded_run(engine, "predict", params={"aoi": aoi, "serving": serving, "model_version": expected},
                              **dag_run_ids(get_current_context())) as run:
                outcome = predict_aoi(engine, aoi_name=aoi, predictor_factory=checked_factory,
                                      store=open_store(settings.store_url), run_id=run.run_id,
                                      workdir=settings.work_dir)
                run.summary = {"estimated": outcome.estimated, "written": outcome.written, "flags": outcome.flagged}
        print(outcome.render())
        return {"aoi": aoi, "model_version": outcome.model_version, "s2_composite_id": outcome.s2_composite_id,
                "s1_composite_id": outcome.s1_composite_id, "estimated": outcome.estimated,
                "written": outcome.written, "flags": outcome.flagged}

    @task(outlets=[PREDICTIONS])
    def publish_predictions(result: dict[str, Any]) -> dict[str, Any]:
        """Emit PREDICTIONS when estimates were written, or skip (no event)."""
        if not result["written"]:
            raise AirflowSkipException(f"no new estimates for {result['aoi']}: no PREDICTIONS event")
        get_current_context()["outlet_events"][PREDICTIONS].extra = result
        return result

    publish_predictions(predict())


soilclay_predict_parcels()
