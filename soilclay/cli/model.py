"""``soilclay model``: retrain on the AOI's samples and composites, list versions."""

from __future__ import annotations

from pathlib import Path

import click

from soilclay.settings import Settings


@click.group("model")
def model() -> None:
    """Clay model versions: retrain with the champion/challenger gate, list."""


@model.command("retrain")
@click.option("--aoi", "aoi_name", required=True, help="AOI whose samples and newest composites to use.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="Model config JSON.")
@click.option("--force", is_flag=True, help="Promote the new version even if it does not beat the champion.")
@click.option("--source", "sources", multiple=True, help="Only samples of this source (repeatable).")
@click.pass_obj
def retrain(settings: Settings, aoi_name: str, config_path: Path | None, force: bool, sources: tuple[str, ...]) -> None:
    """Train CNN, RF and ANN, validate (holdout, k-fold, spatial), gate against the champion, publish."""
    from soilclay.db.engine import make_engine
    from soilclay.db.runs import recorded_run
    from soilclay.model.config import ModelConfig
    from soilclay.model.pipeline import RetrainRequest
    from soilclay.model.pipeline import retrain as run_retrain
    from soilclay.serving.publish import ServingConfigTarget

    config = ModelConfig.from_file(config_path)
    engine = make_engine(settings.database_url)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with recorded_run(engine, "train", params={"aoi": aoi_name, "force": force, "config": config.model_dump()}) as run:
        request = RetrainRequest(aoi_name, config, settings.store_url, settings.model_base_path, force=force,
                                 run_id=run.run_id, workdir=settings.work_dir,
                                 serving=ServingConfigTarget.from_settings(settings),
                                 sources=tuple(sources) or None, progress=True)
        outcome = run_retrain(engine, request)
        run.summary = {"version": outcome.version, "status": outcome.status, "samples": outcome.samples}
    engine.dispose()
    click.echo(outcome.render())


@model.command("list")
@click.pass_obj
def list_models(settings: Settings) -> None:
    """Model versions, newest first, with status and held-out metrics."""
    from soilclay.db import models
    from soilclay.db.engine import make_engine
    from soilclay.db.tx import reading

    engine = make_engine(settings.database_url)
    with reading(engine, "listing model versions") as conn:
        rows = models.list_versions(conn)
    engine.dispose()
    for r in rows:
        r2 = "-" if r.cnn_r2 is None else f"{r.cnn_r2:.3f}"
        rmse = "-" if r.cnn_rmse is None else f"{r.cnn_rmse:.2f}"
        click.echo(f"v{r.version:<4} {r.status:<9} CNN R2 {r2} RMSE {rmse}  {r.artefact_uri}")
        click.echo(f"      {r.decision_reason}")
    if not rows:
        click.echo("no model versions yet (soilclay model retrain --aoi NAME)")
