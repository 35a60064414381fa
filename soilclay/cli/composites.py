"""``soilclay composites``: build and list composite versions."""

from __future__ import annotations

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
@click.option("--force", is_flag=True, default=False,
              help="Recompute composites that are up to date (a new version only if the scenes used changed).")
@click.option("--min-valid-share", type=click.FloatRange(0.0, 1.0), default=None,
              help="Refuse a composite with a smaller share of valid pixels on the AOI grid (default 0.05).")
@click.pass_obj
def build(settings: Settings, aoi_name: str, backend: str, sensor: str, recipe_file: Path | None,
          years: int | None, refresh, force: bool, min_valid_share: float | None) -> None:
    """Build new composite versions when the window holds scenes not yet composited, or that an
    earlier build skipped. A composite with too few valid pixels is refused (not registered): a
    warning line; the command fails only when no sensor has a usable composite."""
    from soilclay.composites.backend import SENSORS, CompositeRequest, LocalComposites
    from soilclay.composites.build import MIN_VALID_SHARE, build_composites
    from soilclay.composites.recipe import Recipe
    from soilclay.db.aois import load_aoi
    from soilclay.db.engine import make_engine
    from soilclay.db.runs import recorded_run
    from soilclay.io.jsonfile import read_json_object
    from soilclay.io.store import open_store

    engine = make_engine(settings.database_url)
    aoi = load_aoi(engine, aoi_name)
    data: dict = {"aoi": aoi.name, "grid": {"crs": aoi.grid_crs}, "window": {"years": years or 3}}
    if recipe_file is not None:
        data.update(read_json_object(recipe_file, "recipe"))
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
        request = CompositeRequest(aoi.name, recipe, sensors, refresh_date, run.run_id, force=force)
        outcomes = build_composites(engine, request, store=store, backend=chosen,
                                    min_valid_share=MIN_VALID_SHARE if min_valid_share is None else min_valid_share)
        run.summary = {o.sensor: {"status": o.status, "version": o.version, "scenes": o.scene_count,
                                  "skipped": len(o.skipped), **({"reason": o.reason} if o.reason else {})}
                       for o in outcomes}
    engine.dispose()
    click.echo(f"Composites for {aoi_name} (run {run.run_id}):")
    for outcome in outcomes:
        if outcome.status == "refused":
            click.echo(f"Warning: {outcome.reason}", err=True)
            continue
        click.echo("  " + outcome.render().replace("\n", "\n  "))
    refused = [o for o in outcomes if o.status == "refused"]
    if refused and not any(o.status in ("created", "recomputed", "up-to-date") for o in outcomes):
        raise click.ClickException(f"no usable composite for AOI {aoi_name}: "
                                   f"{', '.join(o.sensor for o in refused)} refused (see the warnings above)")


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


def _bbox(value: str) -> dict:
    try:
        west, south, east, north = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected west,south,east,north in degrees, found {value!r}") from None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise click.BadParameter(f"expected west < east and south < north in degrees, found {value!r}")
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                [west, south]]]}


@composites.command("parity")
@click.option("--bbox", required=True, help="Small AOI as west,south,east,north (degrees); a few km at most.")
@click.option("--crs", default="EPSG:32633", show_default=True, help="Grid CRS of the composites.")
@click.option("--sensor", type=click.Choice(["sentinel-2", "sentinel-1"]), default="sentinel-2", show_default=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day of the scenes.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last day of the scenes.")
@click.option("--recipe", "recipe_file", type=click.Path(path_type=Path), default=None,
              help="Recipe JSON (sensor parameters; aoi, grid and window are set here).")
@click.pass_obj
def parity(settings: Settings, bbox: str, crs: str, sensor: str, start, end, recipe_file: Path | None) -> None:
    """Compare Earth Engine's composite with the local backend's on Earth Engine's own pixels, band by
    band against the tolerances of soilclay.composites.parity (needs Earth Engine credentials). Exits 1
    when parity does not hold."""
    import tempfile
    from datetime import UTC, datetime, time, timedelta

    from soilclay.composites.live_parity import run_parity
    from soilclay.composites.recipe import Recipe
    from soilclay.contract import COLLECTION_OF
    from soilclay.earthengine.session import initialize
    from soilclay.io.jsonfile import read_json_object
    from soilclay.scenes.earthengine import EarthEngineSceneSource

    data: dict = read_json_object(recipe_file, "recipe") if recipe_file is not None else {}
    data.update({"aoi": "parity", "grid": {"crs": crs}, "window": {"start": start.date().isoformat(),
                                                                   "end": end.date().isoformat()}})
    recipe, aoi = Recipe.parse(data), _bbox(bbox)
    initialize(settings.ee_project, settings.ee_service_account or None, settings.ee_key_file or None)
    since = datetime.combine(start.date(), time.min, tzinfo=UTC) - timedelta(seconds=1)
    scenes = EarthEngineSceneSource().list_scenes(aoi, (COLLECTION_OF[sensor],), since=since)
    click.echo(f"{len(scenes)} {sensor} scenes listed since {start.date()}; fetching the selected ones")
    with tempfile.TemporaryDirectory(prefix="soilclay-parity-") as tmp:
        report = run_parity(recipe, sensor, aoi, (start.date(), end.date()), Path(tmp), scenes=scenes)
    click.echo(report.render())
    if not report.ok:
        raise SystemExit(1)
