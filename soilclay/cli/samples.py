"""``soilclay samples``: load LUCAS-style soil samples from CSV."""

from __future__ import annotations

from pathlib import Path

import click

from soilclay.settings import Settings


@click.group()
def samples() -> None:
    """Soil samples (LUCAS topsoil style CSV)."""


@samples.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="Source name, part of the sample key (default: the file name stem).")
@click.option("--x-col", default=None, help="Column of projected x coordinates (with --y-col and --crs).")
@click.option("--y-col", default=None, help="Column of projected y coordinates (with --x-col and --crs).")
@click.option("--crs", default="EPSG:4326", show_default=True, help="CRS of the coordinates, e.g. EPSG:25833.")
@click.option("--show", "show_problems", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many problems (with row numbers) to print.")
@click.pass_obj
def load(settings: Settings, file: Path, source: str | None, x_col: str | None, y_col: str | None, crs: str,
         show_problems: int) -> None:
    """Validate FILE and upsert its valid rows; bad rows are reported by row number and skipped.

    Loading the same file again changes nothing; corrected values in a reloaded file update their rows.
    """
    from soilclay.db.engine import make_engine
    from soilclay.db.runs import recorded_run
    from soilclay.samples.load import load_samples

    source_name = source or file.stem
    engine = make_engine(settings.database_url)
    try:
        with recorded_run(engine, "sample_load", params={"file": str(file), "source": source_name, "x_col": x_col,
                                                         "y_col": y_col, "crs": crs}) as run:
            report = load_samples(engine, file, source=source_name, x_col=x_col, y_col=y_col, crs=crs)
            run.summary = report.summary()
    finally:
        engine.dispose()
    click.echo(report.render(max_problems=show_problems))
