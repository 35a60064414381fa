"""``soilclay scenes``: record newly arrived scenes per AOI."""

from __future__ import annotations

import click

from soilclay.settings import Settings


def scene_source(settings: Settings, source: str, archive: str | None):
    if source == "local":
        from soilclay.scenes.local import LocalStacSource

        return LocalStacSource(archive or settings.scene_archive)
    from soilclay.earthengine.session import initialize
    from soilclay.scenes.earthengine import EarthEngineSceneSource

    initialize(settings.ee_project, settings.ee_service_account or None, settings.ee_key_file or None)
    return EarthEngineSceneSource()


@click.group()
def scenes() -> None:
    """Sentinel-1/2 scenes per AOI."""


@scenes.command("sync")
@click.option("--aoi", "aoi_name", required=True, help="AOI name.")
@click.option("--source", type=click.Choice(["local", "earthengine"]), default="local", show_default=True)
@click.option("--archive", default=None, help="Local STAC archive directory (default: SOILCLAY_SCENE_ARCHIVE).")
@click.pass_obj
def sync(settings: Settings, aoi_name: str, source: str, archive: str | None) -> None:
    """List scenes acquired or published since the last sync and record the new ones."""
    from soilclay.db.engine import make_engine
    from soilclay.db.runs import recorded_run
    from soilclay.scenes.sync import sync_scenes

    engine = make_engine(settings.database_url)
    with recorded_run(engine, "scene_sync", params={"aoi": aoi_name, "source": source}) as run:
        result = sync_scenes(engine, aoi_name, scene_source(settings, source, archive))
        run.summary = {"listed": result.listed, "new": result.new, "skipped": len(result.skipped)}
    engine.dispose()
    click.echo(result.render())
