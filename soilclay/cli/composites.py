"""``soilclay composites``: build and list composite versions."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click

from soilclay.settings import Settings


@click.group()
def composites() -> None:
    """Bare-soil Sentinel-2 and Sentinel-1 composites."""


@composites.command("build")
@click.option("--aoi", "aoi_name", required=True, help="AOI name.")
@click.option("--backend", type=click.Choice(["local", "earthengine"]), default="local", show_default=True)
@click.option("--sensor", type=click.Choice(["sentinel-2", "sentinel-1", "all"]), default="all", show_default=True)
@click.option("--recipe", "recipe_file", type=click.Path(path_type=Path), default=None,
              help="Recipe JSON (fields of soilclay.composites.recipe.Recipe; aoi and grid default to the AOI's).")
@click.option("--years", type=int, default=None, help="Rolling window length (default 3).")
@click.option("--refresh", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Refresh date ending the window (default: the newest scene's date).")
@click.pass_obj
def build(settings: Settings, aoi_name: str, backend: str, sensor: str, recipe_file: Path | None,
          years: int | None, refresh) -> None:
    """Build new composite versions when the window holds scenes not yet composited."""
    from soilclay.composites.backend import SENSORS, CompositeRequest, LocalComposites
    from soilclay.composites.build import build_composites
    from soilclay.composites.recipe import Recipe
    from soilclay.db.aois import load_aoi
    from soilclay.db.engine import make_engine
    from soilclay.db.runs import recorded_run
    from soilclay.io.store import open_store

    engine = make_engine(settings.database_url)
    aoi = load_aoi(engine, aoi_name)
    data: dict = {"aoi": aoi.name, "grid": {"crs": aoi.grid_crs}, "window": {"years": years or 3}}
    if recipe_file is not None:
        data.update(json.loads(recipe_file.read_text()))
        if years is not None:
            data["window"] = {"years": years}
    recipe = Recipe.parse(data)
    store = open_store(settings.store_url)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    if backend == "earthengine":
        from soilclay.composites.earthengine import EarthEngineBackend

        chosen = EarthEngineBackend.from_settings(settings)
    else:
        chosen = LocalComposites(settings.work_dir, progress=True)
    sensors = SENSORS if sensor == "all" else (sensor,)
    refresh_date: date | None = refresh.date() if refresh else None
    with recorded_run(engine, "composite", aoi_id=aoi.aoi_id,
                      params={"aoi": aoi_name, "backend": backend, "sensors": sensors,
                              "recipe": recipe.model_dump(mode="json")}) as run:
        request = CompositeRequest(aoi.name, recipe, sensors, refresh_date, run.run_id)
        outcomes = build_composites(engine, request, store=store, backend=chosen)
        run.summary = {o.sensor: {"status": o.status, "version": o.version, "scenes": o.scene_count,
                                  "skipped": len(o.skipped)} for o in outcomes}
    engine.dispose()
    click.echo(f"Composites for {aoi_name} (run {run.run_id}):")
    for outcome in outcomes:
        click.echo("  " + outcome.render().replace("\n", "\n  "))


@composites.command("list")
@click.option("--aoi", "aoi_name", required=True)
@click.pass_obj
def list_composites(settings: Settings, aoi_name: str) -> None:
    """List composite versions of an AOI, newest first."""
    from soilclay.cli._db import echo_rows, read_only
    from soilclay.db import composites as composite_rows

    echo_rows(read_only(settings, composite_rows.list_for_aoi, f"listing the composites of {aoi_name}", aoi_name),
              lambda r: f"{r.sensor:<11} v{r.version:<3} {r.period[0]}..{r.period[1]} {r.scene_count:>4} scenes "
                        f"({r.skipped_count} skipped)  {r.uri}",
              empty=f"no composites for {aoi_name}")
