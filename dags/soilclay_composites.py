"""Refresh bare-soil Sentinel-2 and Sentinel-1 composites when new scenes arrive; emit COMPOSITES."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _soilclay_common import COMPOSITES, SCENES, START_DATE, dag_run_ids, default_aois, default_args, soilclay_runtime
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

SENSORS = ["sentinel-2", "sentinel-1"]
BACKENDS = ["local", "earthengine"]

DOC = """
### soilclay: composites

Runs when the **SCENES** asset is updated (or by hand). One mapped task per AOI × sensor calls
`soilclay.composites.build.build_composites` with the recipe built from the params: it builds a new
composite version only when the window holds scenes not yet composited, so re-running is harmless.

**Backends**: `local` computes from the local STAC archive and publishes to `SOILCLAY_STORE_URL`.
`earthengine` is **not implemented in this DAG yet**: it will hand the export to
`soilclay_airflow.operators.earthengine.EarthEngineExportOperator` (from `plugins/`, deferrable);
until then its mapped tasks are *skipped* with a message (see `earthengine_export`).

**Asset**: `publish_composites` emits **COMPOSITES** (`extra`: the versions created) only when some
new version was registered; otherwise it is skipped and no event is emitted. `all_composites_built`
fails the run when any build failed.

**Params**: `aois`, `sensors`, `years` (window, 1..20), `ndvi_max`, `nbr2_max` (bare-soil thresholds,
defaults as the library's recipe), `backend`, `dry_run`.
"""


def earthengine_export(aoi: str, sensor: str, params: dict[str, Any]) -> dict[str, Any]:
    """The Earth Engine branch: to be done by EarthEngineExportOperator (plugins/); skipped for now."""
    raise AirflowSkipException(
        f"backend=earthengine for {aoi}/{sensor}: not implemented in this DAG yet "
        "(pending soilclay_airflow.operators.earthengine.EarthEngineExportOperator)")


@dag(
    dag_id="soilclay_composites",
    schedule=SCENES,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(timeout=timedelta(hours=3)),
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

    @task(map_index_template="{{ aoi }}/{{ sensor }}")
    def build(aoi: str, sensor: str, params: dict[str, Any]) -> dict[str, Any]:
        """Build (or find up to date) one AOI's composite for one sensor."""
        if params["backend"] == "earthengine":
            return earthengine_export(aoi, sensor, params)
        if params["dry_run"]:
            print(f"dry run: would build the {sensor} composite of {aoi} ({params['years']} years, local)")
            return {"aoi": aoi, "sensor": sensor, "status": "dry-run", "version": None}
        from soilclay.composites.build import build_composites
        from soilclay.composites.recipe import Recipe
        from soilclay.db.aois import get_aoi
        from soilclay.db.runs import recorded_run
        from soilclay.io.store import open_store

        with soilclay_runtime() as (settings, engine):
            with engine.connect() as conn:
                aoi_row = get_aoi(conn, aoi)
            recipe = Recipe.parse({"aoi": aoi_row.name, "grid": {"crs": aoi_row.grid_crs},
                                   "window": {"years": params["years"]},
                                   "s2": {"ndvi_max": params["ndvi_max"], "nbr2_max": params["nbr2_max"]}})
            settings.work_dir.mkdir(parents=True, exist_ok=True)
            with recorded_run(engine, "composite", aoi_id=aoi_row.aoi_id,
                              params={"aoi": aoi, "backend": "local", "sensors": [sensor],
                                      "recipe": recipe.model_dump(mode="json")},
                              **dag_run_ids(get_current_context())) as run:
                (outcome,) = build_composites(engine, aoi_name=aoi, store=open_store(settings.store_url),
                                              recipe=recipe, sensors=(sensor,), backend="local", run_id=run.run_id,
                                              workdir=settings.work_dir)
                run.summary = {sensor: {"status": outcome.status, "version": outcome.version,
                                        "scenes": outcome.scene_count, "skipped": len(outcome.skipped)}}
        print(outcome.render())
        return {"aoi": aoi, "sensor": sensor, "status": outcome.status, "version": outcome.version,
                "uri": outcome.uri, "scenes": outcome.scene_count}

    @task(outlets=[COMPOSITES], trigger_rule="all_done")
    def publish_composites(results: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
        """Emit COMPOSITES listing the new versions, or skip (no event) when none was created."""
        created = [r for r in results if r and r["status"] == "created"]
        if not created:
            raise AirflowSkipException("no new composite version: no COMPOSITES event")
        get_current_context()["outlet_events"][COMPOSITES].extra = {"created": created}
        return created

    @task
    def all_composites_built() -> None:
        """Fails (upstream_failed) when any build failed, so the run does too."""

    built = build.expand(aoi=list_aois(), sensor=list_sensors())
    publish_composites(built)
    built >> all_composites_built()


soilclay_composites()
