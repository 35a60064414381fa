"""Watch for new Sentinel-1/2 scenes per AOI every 6 hours; emit the SCENES asset when some arrived."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from _soilclay_common import SCENES, START_DATE, default_aois, default_args, soilclay_runtime, task_run
from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

DOC = """
### soilclay: scene watch

Every 6 hours (UTC) records the Sentinel-1/2 scenes that arrived for each AOI since the last sync
(`soilclay.scenes.sync.sync_scenes`), one mapped task per AOI, from the local STAC archive
`SOILCLAY_SCENE_ARCHIVE` (`source=local`) or the Earth Engine catalogue (`source=earthengine`,
credentials from the Airflow connection `google_cloud_default`). Syncing again adds nothing
(scenes are keyed by AOI and scene id).

**Asset**: `publish_scenes` emits **SCENES** (`extra`: new scene counts per AOI and the total) only
when at least one new scene was recorded; otherwise it is *skipped*, and a skipped task emits no asset
event. It runs even when some AOI failed (`all_done`), so the scenes recorded for the other AOIs still
trigger the composites; `all_aois_synced` then fails the run.

**Params**: `aois` (default: `SOILCLAY_AOIS`, comma-separated, else `["demo"]`), `source`, `dry_run`
(log the plan, touch nothing).
"""


def _source(name: str, settings: Any) -> Any:
    if name == "earthengine":
        from soilclay_airflow.hooks.earthengine import EarthEngineHook

        from soilclay.scenes.earthengine import EarthEngineSceneSource

        EarthEngineHook().initialize()
        return EarthEngineSceneSource()
    from soilclay.scenes.local import LocalStacSource

    return LocalStacSource(settings.scene_archive)


@dag(
    dag_id="soilclay_scene_watch",
    schedule=CronTriggerTimetable("0 */6 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args("scene_sync", timeout=timedelta(minutes=30)),
    dagrun_timeout=timedelta(hours=2),
    tags=["soilclay", "scenes"],
    doc_md=DOC,
    params={
        "aois": Param(default_aois(), type="array", items={"type": "string", "minLength": 1}, minItems=1,
                      uniqueItems=True, description="AOI names to sync"),
        "source": Param("local", type="string", enum=["local", "earthengine"], description="Where scenes are listed"),
        "dry_run": Param(False, type="boolean", description="Log what would be done; change nothing"),
    },
)
def soilclay_scene_watch() -> None:
    @task
    def list_aois(params: dict[str, Any]) -> list[str]:
        return list(params["aois"])

    @task(map_index_template="{{ task.op_kwargs['aoi'] }}")
    def sync_aoi(aoi: str, params: dict[str, Any]) -> dict[str, Any]:
        """Record the AOI's new scenes; returns {"aoi", "new": {collection: n}, "listed"}."""
        if params["dry_run"]:
            print(f"dry run: would sync scenes of AOI {aoi}")
            return {"aoi": aoi, "listed": 0, "new": {}, "dry_run": True}
        from soilclay.scenes.sync import sync_scenes

        with soilclay_runtime() as (settings, engine):
            with task_run(engine, "scene_sync", params={"aoi": aoi, "source": params["source"]}) as run:
                result = sync_scenes(engine, aoi, _source(params["source"], settings))
                run.summary = {"listed": result.listed, "new": result.new, "skipped": len(result.skipped)}
        print(result.render())
        return {"aoi": aoi, "listed": result.listed, "new": result.new}

    @task(outlets=[SCENES], trigger_rule="all_done")
    def publish_scenes(results: list[dict[str, Any] | None]) -> dict[str, Any]:
        """Emit SCENES with the new counts, or skip (no event) when nothing new arrived."""
        new = {r["aoi"]: r["new"] for r in results if r and sum(r["new"].values())}
        total = sum(sum(counts.values()) for counts in new.values())
        if not total:
            raise AirflowSkipException("no new scenes: no SCENES event")
        extra = {"new_scenes": total, "by_aoi": new}
        get_current_context()["outlet_events"][SCENES].extra = extra
        return extra

    @task
    def all_aois_synced() -> None:
        """Fails (upstream_failed) when any AOI's sync failed, so the run does too."""

    synced = sync_aoi.expand(aoi=list_aois())
    publish_scenes(synced)
    synced >> all_aois_synced()


soilclay_scene_watch()
