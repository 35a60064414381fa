"""Refresh bare-soil Sentinel-2 and Sentinel-1 composites when new scenes arrive; emit COMPOSITES."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _soilclay_common import COMPOSITES, SCENES, START_DATE, default_aois, default_args, soilclay_runtime, task_run
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from soilclay_airflow.operators.earthengine import EARTHENGINE_POOL, EarthEngineExportOperator

SENSORS = ["sentinel-2", "sentinel-1"]
BACKENDS = ["local", "earthengine"]

DOC = """
### soilclay: composites

Runs when the **SCENES** asset is updated (or by hand). A new composite version is made only when
the recipe's window holds scenes not yet composited with this recipe, so re-running is harmless.

**Backends** (param `backend`):

- `local`: one mapped task per AOI × sensor (`build`) computes from the local STAC archive and
  publishes to `SOILCLAY_STORE_URL` (`soilclay.composites.build.build_composites`).
- `earthengine`: `plan_exports` lists the composites to make (`plan_composites`), one mapped
  **deferrable** `EarthEngineExportOperator` per composite starts the export and frees its worker
  slot while a trigger polls the Earth Engine operation (pool `earthengine` caps concurrent
  exports), and `register_exports` registers the COGs written to `gs://` (`SOILCLAY_STORE_URL`). An
  export with too few valid pixels (`soilclay.composites.build.refused_export`, as a local build) is
  *refused*: not registered, its COG removed, the previous version stays newest.
  Credentials: the Airflow connection `google_cloud_default` (extras `project` and `key_path` or
  `keyfile_dict`).

The branch not chosen is *skipped*.

**Asset**: `publish_composites` emits **COMPOSITES** (`extra`: the versions created) only when some
new version was registered; otherwise it is skipped and no event is emitted. `all_composites_built`
fails the run when any build, export or registration failed.

**Params**: `aois`, `sensors`, `years` (window, 1..20), `ndvi_max`, `nbr2_max` (bare-soil thresholds,
defaults as the library's recipe), `backend`, `dry_run`.
"""


def _recipe(aoi: Any, params: dict[str, Any]) -> Any:
    from soilclay.composites.recipe import Recipe

    return Recipe.parse({"aoi": aoi.name, "grid": {"crs": aoi.grid_crs}, "window": {"years": params["years"]},
                         "s2": {"ndvi_max": params["ndvi_max"], "nbr2_max": params["nbr2_max"]}})


def _plans(engine: Any, aoi_name: str, sensors: list[str], params: dict[str, Any], refresh: Any = None) -> list:
    from soilclay.composites.backend import CompositeRequest
    from soilclay.composites.build import plan_composites
    from soilclay.db.aois import load_aoi

    request = CompositeRequest(aoi_name, _recipe(load_aoi(engine, aoi_name), params), tuple(sensors), refresh)
    return plan_composites(engine, request, backend=params["backend"])


def _register_one(engine: Any, store: Any, item: dict[str, Any], uri: str, params: dict[str, Any]) -> dict[str, Any]:
    """Register one exported COG as a new composite version, if its inputs are still the planned ones and
    enough of its pixels are valid (else 'refused' with the reason: not registered, as a local build)."""
    from datetime import date

    from soilclay.composites.build import refused_export, register_planned
    from soilclay.composites.selection import selection_of
    from soilclay.errors import BadInputError

    record = {"aoi": item["aoi"], "backend": "earthengine", "sensors": [item["sensor"]], "uri": uri}
    with task_run(engine, "composite", item=f"{item['aoi']}/{item['sensor']}", params=record) as run:
        (plan,) = _plans(engine, item["aoi"], [item["sensor"]], params, refresh=date.fromisoformat(item["refresh"]))
        if plan.name != item["name"]:
            raise BadInputError(f"{item['aoi']}/{item['sensor']}: the scenes changed while exporting "
                                f"(exported {item['name']}, now {plan.name}); the next run exports anew")
        if plan.status == "up-to-date":
            outcome = plan.existing
        else:
            selection = selection_of(plan)  # what the export was made of (plan_exports passed these ids)
            outcome = refused_export(engine, plan, uri, store) or register_planned(
                engine, plan, uri=uri, backend="earthengine", run_id=run.run_id, used=len(selection.selected),
                skipped=list(selection.ruled_out))
        run.summary = {item["sensor"]: {"status": outcome.status, "version": outcome.version,
                                        **({"reason": outcome.reason} if outcome.reason else {})}}
    print(outcome.render())
    return {"aoi": item["aoi"], "sensor": item["sensor"], "status": outcome.status, "version": outcome.version,
            "uri": outcome.uri, "scenes": outcome.scene_count, **({"reason": outcome.reason} if outcome.reason else {})}


def _created_by_this_run() -> list[dict[str, Any]]:
    from soilclay.db import composites as composite_rows
    from soilclay.db.tx import reading

    dag_run = get_current_context().get("dag_run")
    if dag_run is None:
        return []
    with soilclay_runtime() as (_, engine), reading(engine, "listing this run's composites") as conn:
        rows = composite_rows.created_in_dag_run(conn, dag_run.dag_id, dag_run.run_id)
    return [{"aoi": r.aoi, "sensor": r.sensor, "version": r.version, "uri": r.uri, "scenes": r.scene_count,
             "status": "created"} for r in rows]


def _export_kwargs(item: dict[str, Any]) -> dict[str, Any]:
    return item["export"]


def _gcs_target(store_url: str) -> tuple[str, str]:
    from soilclay.errors import BadInputError
    from soilclay.io.store import split_gs_url

    if not store_url.startswith("gs://"):
        raise BadInputError("backend=earthengine exports to Cloud Storage: SOILCLAY_STORE_URL must be "
                            f"gs://bucket/prefix, found {store_url!r}")
    return split_gs_url(store_url)


@dag(
    dag_id="soilclay_composites",
    schedule=SCENES,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args("composite", timeout=timedelta(hours=3)),
    dagrun_timeout=timedelta(hours=8),
    tags=["soilclay", "composites"],
    doc_md=DOC,
    params={
        "aois": Param(default_aois(), type="array", items={"type": "string", "minLength": 1}, minItems=1,
                      uniqueItems=True, description="AOI names"),
        "sensors": Param(SENSORS, type="array", items={"type": "string", "enum": SENSORS}, minItems=1,
                         uniqueItems=True, description="Sensors to composite"),
        "years": Param(3, type="integer", minimum=1, maximum=20, description="Rolling window length in years"),
        "ndvi_max": Param(0.25, type="number", exclusiveMinimum=-1, exclusiveMaximum=1,
                          description="Bare soil if NDVI < ndvi_max"),
        "nbr2_max": Param(0.075, type="number", exclusiveMinimum=-1, exclusiveMaximum=1,
                          description="Bare soil if NBR2 < nbr2_max"),
        "backend": Param("local", type="string", enum=BACKENDS, description="Where composites are computed"),
        "dry_run": Param(False, type="boolean", description="Log what would be done; change nothing"),
    },
)
def soilclay_composites() -> None:
    @task
    def list_aois(params: dict[str, Any]) -> list[str]:
        return list(params["aois"])

    @task
    def list_sensors(params: dict[str, Any]) -> list[str]:
        return list(params["sensors"])

    @task(map_index_template="{{ task.op_kwargs['aoi'] }}/{{ task.op_kwargs['sensor'] }}")
    def build(aoi: str, sensor: str, params: dict[str, Any]) -> dict[str, Any]:
        """Local backend: build (or find up to date) one AOI's composite for one sensor."""
        if params["backend"] != "local":
            raise AirflowSkipException(f"backend={params['backend']}: see plan_exports / earthengine_export")
        if params["dry_run"]:
            print(f"dry run: would build the {sensor} composite of {aoi} ({params['years']} years, local)")
            return {"aoi": aoi, "sensor": sensor, "status": "dry-run", "version": None}
        from soilclay.composites.backend import CompositeRequest, LocalComposites
        from soilclay.composites.build import build_composites
        from soilclay.db.aois import load_aoi
        from soilclay.io.store import open_store

        with soilclay_runtime() as (settings, engine):
            settings.work_dir.mkdir(parents=True, exist_ok=True)
            with task_run(engine, "composite", params={"aoi": aoi, "backend": "local", "sensors": [sensor],
                                                       **{k: params[k] for k in ("years", "ndvi_max", "nbr2_max")}}
                          ) as run:
                request = CompositeRequest(aoi, _recipe(load_aoi(engine, aoi), params), (sensor,), run_id=run.run_id)
                (outcome,) = build_composites(engine, request, store=open_store(settings.store_url),
                                              backend=LocalComposites(settings.work_dir))
                run.summary = {sensor: {"status": outcome.status, "version": outcome.version,
                                        "scenes": outcome.scene_count, "skipped": len(outcome.skipped)}}
        print(outcome.render())
        return {"aoi": aoi, "sensor": sensor, "status": outcome.status, "version": outcome.version,
                "uri": outcome.uri, "scenes": outcome.scene_count}

    @task
    def plan_exports(params: dict[str, Any]) -> list[dict[str, Any]]:
        """Earth Engine backend: per export to start, the operator's kwargs and what to register after it."""
        if params["backend"] != "earthengine":
            raise AirflowSkipException(f"backend={params['backend']}: see build")
        from soilclay.composites.selection import selection_of

        with soilclay_runtime() as (settings, engine):
            bucket, prefix = _gcs_target(settings.store_url)
            planned = []
            for aoi in params["aois"]:
                for plan in _plans(engine, aoi, params["sensors"], params):
                    print(f"{aoi}/{plan.sensor}: {plan.status} ({len(plan.scenes)} scenes, "
                          f"{plan.period[0]}..{plan.period[1]})")
                    if plan.status != "todo":
                        continue
                    selection = selection_of(plan)
                    if not selection.selected:
                        print(f"{aoi}/{plan.sensor}: the recipe selects none of the {len(plan.scenes)} scenes "
                              "(other orbit pass, cloud cover, mode); nothing to export")
                        continue
                    export = {"recipe": plan.recipe.model_dump(mode="json"), "sensor": plan.sensor,
                              "aoi_geometry": plan.aoi.geometry,
                              "period": [plan.period[0].isoformat(), plan.period[1].isoformat()],
                              "name": plan.key.removesuffix(".tif"), "scene_ids": selection.ids,
                              "bucket": bucket, "prefix": prefix}
                    planned.append({"aoi": aoi, "sensor": plan.sensor, "name": plan.name,
                                    "refresh": plan.period[1].isoformat(), "export": export})
        if params["dry_run"]:
            print(f"dry run: would start {len(planned)} Earth Engine exports")
            return []
        return planned

    @task
    def register_exports(planned: list[dict[str, Any]], uris: list[str], params: dict[str, Any]) -> list[dict]:
        """Register each exported COG as a new composite version, if its inputs are still the planned ones."""
        from soilclay.errors import BadInputError
        from soilclay.io.store import open_store

        results, errors = [], []
        with soilclay_runtime() as (settings, engine):
            store = open_store(settings.store_url)  # where the exports landed (gs://, see plan_exports)
            for item, uri in zip(planned, list(uris), strict=True):
                try:
                    results.append(_register_one(engine, store, item, uri, params))
                except BadInputError as exc:  # register the others; fail at the end (publish sees the rest)
                    errors.append(str(exc))
        if errors:
            raise BadInputError(f"{len(errors)} of {len(planned)} exports not registered: " + "; ".join(errors))
        return results

    @task(outlets=[COMPOSITES], trigger_rule="all_done")
    def publish_composites(built: list[dict[str, Any] | None] | None,
                           registered: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """Emit COMPOSITES listing the new versions, or skip (no event) when none was created."""
        results = [r for r in (built or []) if r] + list(registered or [])
        created = [r for r in results if r["status"] == "created"]
        seen = {(r["aoi"], r["sensor"], r["version"]) for r in created}
        # Also versions an earlier try of this run registered (a retry finds them 'up-to-date') and those
        # registered by a task that failed afterwards: what this run made is in the database.
        created += [r for r in _created_by_this_run() if (r["aoi"], r["sensor"], r["version"]) not in seen]
        if not created:
            raise AirflowSkipException("no new composite version: no COMPOSITES event")
        get_current_context()["outlet_events"][COMPOSITES].extra = {"created": created}
        return created

    @task(trigger_rule="none_failed")
    def all_composites_built() -> None:
        """Fails (upstream_failed) when any build, export or registration failed, so the run does too."""

    built = build.expand(aoi=list_aois(), sensor=list_sensors())
    planned = plan_exports()
    exported = EarthEngineExportOperator.partial(task_id="earthengine_export", pool=EARTHENGINE_POOL,
                                                 ).expand_kwargs(planned.map(_export_kwargs))
    registered = register_exports(planned, exported.output)
    publish_composites(built, registered)
    [built, registered] >> all_composites_built()


soilclay_composites()
