"""The ``soilclay`` command line: one sub-command per pipeline stage."""

from __future__ import annotations

import logging

import click
from pydantic import ValidationError

from soilclay import redact
from soilclay.cli.airflow import airflow
from soilclay.cli.aoi import aoi
from soilclay.cli.composites import composites
from soilclay.cli.db import db
from soilclay.cli.demo import demo_summary, demo_world
from soilclay.cli.metrics import metrics
from soilclay.cli.model import model
from soilclay.cli.parcels import parcels
from soilclay.cli.predict import predict
from soilclay.cli.samples import samples
from soilclay.cli.scenes import scenes
from soilclay.cli.train import train
from soilclay.errors import SoilclayError
from soilclay.settings import Settings


class _Group(click.Group):
    """Turns soilclay's own errors into one clear line (exit code 1) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (SoilclayError, ValidationError) as exc:
            raise click.ClickException(redact.redact(str(exc))) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """soilclay: topsoil clay per parcel from Sentinel-1/2 bare-soil composites."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact.install()
    for noisy in ("alembic", "pyogrio", "rasterio", "google", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = settings


@main.command("settings")
@click.pass_obj
def show_settings(settings: Settings) -> None:
    """Print the effective configuration (secrets masked)."""
    for name, value in settings.describe().items():
        click.echo(f"SOILCLAY_{name.upper():<18} {value}")


main.add_command(db)
main.add_command(aoi)
main.add_command(scenes)
main.add_command(composites)
main.add_command(samples)
main.add_command(model)
main.add_command(parcels)
main.add_command(predict)
main.add_command(train)
main.add_command(demo_world)
main.add_command(demo_summary)
main.add_command(airflow)
main.add_command(metrics)
