"""``soilclay parcels``: load parcel polygons from registers and other vector files."""

from __future__ import annotations

from pathlib import Path

import click

from soilclay.settings import Settings


@click.group()
def parcels() -> None:
    """Parcels (field boundaries: GeoPackage, Shapefile, GeoJSON, GeoParquet; zipped too)."""


@parcels.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id-column", default=None,
              help="Column of the parcel id; 'A+B' joins several with '/' (default: detected, else derived from "
                   "the geometry).")
@click.option("--layer", default=None, help="Layer to read when the file has several polygon layers.")
@click.option("--id-prefix", default="", help="Put before every id, e.g. 'nl-brp-2023:'.")
@click.option("--source", default=None,
              help="The register or dataset the parcels belong to; ids are unique per source (default: the file "
                   "name without extension). Give an earlier file's source to update its parcels from a new extract.")
@click.option("--show", "show_problems", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many rejected and repaired features to print.")
@click.pass_obj
def load(settings: Settings, file: Path, id_column: str | None, layer: str | None, id_prefix: str,
         source: str | None, show_problems: int) -> None:
    """Check FILE's parcels and upsert them by (source, parcel id); bad features are reported and skipped.

    Geometries are reprojected to EPSG:4326 and invalid ones repaired. Loading the same file again
    changes nothing; a changed geometry or attribute updates its parcel (a changed geometry is estimated
    anew by the next predict; its old estimates stay in parcel_clay_history).
    """
    from soilclay.db.engine import make_engine
    from soilclay.db.runs import recorded_run
    from soilclay.parcels.load import load_parcels

    engine = make_engine(settings.database_url)
    try:
        with recorded_run(engine, "parcel_load",
                          params={"file": str(file.resolve()), "layer": layer, "id_column": id_column,
                                  "id_prefix": id_prefix, "source": source}) as run:
            report = load_parcels(engine, file, layer=layer, id_column=id_column, id_prefix=id_prefix,
                                  source=source)
            run.summary = report.summary()
    finally:
        engine.dispose()
    click.echo(report.render(max_problems=show_problems))
