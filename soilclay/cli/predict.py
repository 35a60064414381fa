"""``soilclay predict``: per-parcel clay estimates with the champion model, into PostGIS."""

from __future__ import annotations

import click

from soilclay.settings import Settings


@click.command("predict")
@click.option("--aoi", "aoi_name", required=True, help="AOI whose parcels to estimate.")
@click.option("--serving", type=click.Choice(["local", "tfserving"]), default="local", show_default=True,
              help="In-process SavedModel, or TF Serving (SOILCLAY_TF_SERVING_GRPC / _REST).")
@click.option("--protocol", type=click.Choice(["grpc", "rest"]), default="grpc", show_default=True)
@click.option("--max-pixels", type=int, default=200, show_default=True, help="Pixels per parcel at most (sampled).")
@click.option("--inward-buffer", type=float, default=0.0, show_default=True, help="Metres shaved off parcel edges.")
@click.option("--min-pixels", type=int, default=3, show_default=True, help="Fewer usable pixels: flagged, no number.")
@click.pass_obj
def predict(settings: Settings, aoi_name: str, serving: str, protocol: str, max_pixels: int, inward_buffer: float,
            min_pixels: int) -> None:
    """Estimate clay per parcel (mean, median, 90 % interval, pixel count, flags) and write to PostGIS."""
    from soilclay.db.engine import make_engine
    from soilclay.db.runs import recorded_run
    from soilclay.io.store import open_store
    from soilclay.predict.run import PredictRequest, predict_aoi
    from soilclay.serving.factory import ServingChoice, predictor_factory

    choice = ServingChoice.from_settings(settings, serving, protocol)
    engine = make_engine(settings.database_url)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        with recorded_run(engine, "predict", params={"aoi": aoi_name, "serving": serving, "max_pixels": max_pixels,
                                                     "inward_buffer_m": inward_buffer}) as run:
            request = PredictRequest(aoi_name, run.run_id, max_pixels=max_pixels, min_pixels=min_pixels,
                                     inward_buffer_m=inward_buffer, workdir=settings.work_dir)
            outcome = predict_aoi(engine, request, predictor_factory(choice), store=open_store(settings.store_url))
            run.summary = {"estimated": outcome.estimated, "written": outcome.written, "flags": outcome.flagged}
    finally:
        engine.dispose()
    click.echo(outcome.render())
