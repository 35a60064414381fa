"""``soilclay aoi``: register and list areas of interest."""

from __future__ import annotations

from pathlib import Path

import click

from soilclay.settings import Settings


@click.group()
def aoi() -> None:
    """Areas of interest."""


@aoi.command("add")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--name", default=None, help="AOI name (default: the file's 'name' property).")
@click.option("--grid-crs", default=None, help="Target grid CRS, e.g. EPSG:32633 (default: the file's 'grid_crs').")
@click.pass_obj
def add(settings: Settings, file: Path, name: str | None, grid_crs: str | None) -> None:
    """Register (or update) an AOI from a GeoJSON/GeoPackage/Shapefile polygon.

    Everything is checked before the database is touched: the file, the AOI name, the grid CRS (a metric
    projected CRS). A self-intersecting polygon is repaired, with a warning line."""
    from soilclay.db.aois import check_aoi_name, check_grid_crs, register_aoi
    from soilclay.db.engine import make_engine
    from soilclay.errors import BadInputError
    from soilclay.io.vector import read_aoi_file

    geometry, props = read_aoi_file(file, warn=lambda message: click.echo(f"warning: {message}", err=True))
    if name is None:
        name, name_from = _text(props.get("name")), f"{file}: property 'name'"
    else:
        name_from = "--name"
    if grid_crs is None:
        grid_crs, crs_from = _text(props.get("grid_crs")), f"{file}: property 'grid_crs'"
    else:
        crs_from = "--grid-crs"
    if not name or not grid_crs:
        raise BadInputError(f"{file}: give --name and --grid-crs (the file has name={name!r}, grid_crs={grid_crs!r})")
    name = check_aoi_name(name, where=name_from)
    grid_crs = check_grid_crs(grid_crs, where=crs_from)
    engine = make_engine(settings.database_url)
    try:
        registered = register_aoi(engine, name, geometry, grid_crs, _text(props.get("description")))
    finally:
        engine.dispose()
    click.echo(f"AOI {registered.name} registered (id {registered.aoi_id}, grid {registered.grid_crs})")


def _text(value: object) -> object:
    """A property's value, ``None`` for a missing one (``None`` or the NaN of a column other features fill)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value

@aoi.command("list")
@click.pass_obj
def list_aois(settings: Settings) -> None:
    """List registered AOIs with their area and scene counts."""
    from soilclay.cli._db import echo_rows, read_only
    from soilclay.db import aois

    echo_rows(read_only(settings, aois.summaries, "listing AOIs"),
              lambda r: f"{r.name:<20} {r.grid_crs:<12} {r.area_km2:>8} km2  {r.scenes:>6} scenes",
              empty="no AOIs registered (soilclay aoi add FILE)")
