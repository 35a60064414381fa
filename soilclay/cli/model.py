"""``soilclay model``: retrain on the AOI's samples and composites, list versions."""

from __future__ import annotations

import json
from pathlib import Path

import click
from sqlalchemy import text

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
    from soilclay.model.pipeline import retrain as run_retrain

    config = ModelConfig.parse(json.loads(config_path.read_text()) if config_path else {})
    engine = make_engine(settings.database_url)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with recorded_run(engine, "train", params={"aoi": aoi_name, "force": force, "config": config.model_dump()}) as run:
        outcome = run_retrain(engine, aoi_name=aoi_name, store_url=settings.store_url,
                              model_base_path=settings.model_base_path, config=config, force=force,
                              run_id=run.run_id, sources=list(sources) or None, workdir=settings.work_dir,
                              progress=True, serving_config_dir=settings.tf_serving_config_dir,
                              serving_model=settings.tf_serving_model,
                              serving_base_path=settings.tf_serving_base_path)
        run.summary = {"version": outcome.version, "status": outcome.status, "samples": outcome.samples}
    engine.dispose()
    click.echo(outcome.render())


@model.command("list")
@click.pass_obj
def list_models(settings: Settings) -> None:
    """Model versions, newest first, with status and held-out metrics."""
    from soilclay.db.engine import make_engine

    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT version, status, created_at, metrics->'models'->'cnn'->>'r2' AS r2, "
            "metrics->'models'->'cnn'->>'rmse' AS rmse, decision_reason, artefact_uri "
            "FROM soilclay.model_versions ORDER BY version DESC")).all()
    engine.dispose()
    for r in rows:
        r2 = f"{float(r.r2):.3f}" if r.r2 else "-"
        rmse = f"{float(r.rmse):.2f}" if r.rmse else "-"
        click.echo(f"v{r.version:<4} {r.status:<9} CNN R2 {r2} RMSE {rmse}  {r.artefact_uri}")
        click.echo(f"      {r.decision_reason}")
    if not rows:
        click.echo("no model versions yet (soilclay model retrain --aoi NAME)")
