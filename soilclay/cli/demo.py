"""``soilclay demo-world``: generate (or extend) the synthetic demo world."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo-world")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="World folder.")
@click.option("--size", type=click.Choice(["small", "demo"]), default="demo", show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--samples", "n_samples", type=int, default=None, help="Number of soil samples (default per size).")
@click.option("--add-scenes", "add_scenes", type=int, default=None,
              help="Extend an existing world by N new Sentinel-2 dates (and the Sentinel-1 passes among them).")
@click.option("--workers", type=int, default=None, help="Processes for scene rendering (default: CPU count).")
def demo_world(out_dir: Path, size: str, seed: int, n_samples: int | None, add_scenes: int | None,
               workers: int | None) -> None:
    """Generate a deterministic synthetic world: scenes (STAC + COG), samples, parcels, truth."""
    from soilclay.demo import world

    if add_scenes is not None:
        summary = world.add_scenes(out_dir, add_scenes, workers=workers, progress=True)
    else:
        summary = world.generate(out_dir, size=size, seed=seed, n_samples=n_samples, workers=workers,
                                 progress=True)
    click.echo(summary.render())


@click.command("demo-summary")
@click.option("--aoi", "aoi_name", default="demo", show_default=True, help="The demo AOI.")
@click.option("--world", type=click.Path(path_type=Path), default=None,
              help="Demo world folder, for the per-parcel skill against its truth (default: SOILCLAY_DEMO_DIR).")
@click.option("--ui-url", default=None, help="Airflow UI address to print.")
@click.option("--ui-login", default=None, help="Airflow UI login to print (user/password of the local demo).")
@click.option("--parcel-map-url", default=None, help="Parcel map page (Airflow plugin) address to print.")
@click.option("--prometheus-url", default=None, help="Prometheus address to print.")
@click.option("--exporter-url", default=None, help="Metrics exporter address to print.")
@click.pass_obj
def demo_summary(settings, aoi_name: str, world: Path | None, ui_url: str | None, ui_login: str | None,
                 parcel_map_url: str | None, prometheus_url: str | None, exporter_url: str | None) -> None:
    """What the pipeline produced: scenes, composites, models, champion, parcels and their skill."""
    from soilclay.db.engine import make_engine
    from soilclay.demo.summary import collect, render

    engine = make_engine(settings.database_url)
    try:
        summary = collect(engine, aoi_name, world or settings.demo_dir)
    finally:
        engine.dispose()
    links = {"Parcel map": parcel_map_url, "Prometheus": prometheus_url, "Metrics exporter": exporter_url}
    click.echo(render(summary, ui_url=ui_url, ui_login=ui_login, links={k: v for k, v in links.items() if v}))
