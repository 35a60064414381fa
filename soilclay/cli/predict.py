"""``soilclay predict``: per-parcel clay estimates with the champion model, into PostGIS."""

from __future__ import annotations

import click

from soilclay.settings import Settings


def predictor_factory(settings: Settings, serving: str, protocol: str):
    """How to build a predictor for the champion version: in-process SavedModel or TF Serving."""

    def build(champion):
        if serving == "local":
            from soilclay.serving.predictor import InProcessPredictor

            return InProcessPredictor(champion.artefact_uri, champion.version)
        from soilclay.serving.predictor import TFServingPredictor

        target = settings.tf_serving_grpc if protocol == "grpc" else settings.tf_serving_rest
        predictor = TFServingPredictor(target, settings.tf_serving_model, champion.version, protocol=protocol)
        predictor.check_ready()
        # The champion is loaded: move the 'champion' label to it (second step of the swap).
        from soilclay.serving.config import write_models_config

        write_models_config(settings.tf_serving_config_dir / "models.config", model_name=settings.tf_serving_model,
                            base_path=settings.tf_serving_base_path, version=champion.version)
        return predictor

    return build


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
    from soilclay.predict.run import predict_aoi

    engine = make_engine(settings.database_url)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with recorded_run(engine, "predict", params={"aoi": aoi_name, "serving": serving, "max_pixels": max_pixels,
                                                 "inward_buffer_m": inward_buffer}) as run:
        factory = predictor_factory(settings, serving, protocol)
        outcome = predict_aoi(engine, aoi_name=aoi_name, predictor_factory=factory,
                              store=open_store(settings.store_url), run_id=run.run_id, max_pixels=max_pixels,
                              inward_buffer_m=inward_buffer, min_pixels=min_pixels, workdir=settings.work_dir,
                              progress=True)
        run.summary = {"estimated": outcome.estimated, "written": outcome.written, "flags": outcome.flagged}
    engine.dispose()
    click.echo(outcome.render())
