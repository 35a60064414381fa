"""``soilclay train``: CNN, RF and ANN on any feature table, with the validation report."""

from __future__ import annotations

from pathlib import Path

import click

from soilclay.settings import Settings


@click.command("train")
@click.option("--table", "table_path", type=click.Path(path_type=Path), required=True, help="CSV with features.")
@click.option("--target", required=True, help="Target column (clay, %).")
@click.option("--x-col", default=None, help="Projected or lon x column (with --y-col and --crs).")
@click.option("--y-col", default=None)
@click.option("--crs", default=None, help="CRS of --x-col/--y-col, e.g. EPSG:25833.")
@click.option("--band-columns", default=None, help="10 comma-separated columns in the order B02..B12.")
@click.option("--sar-columns", default=None, help="3 comma-separated columns: VV, VH, VV-VH (dB).")
@click.option("--folds-column", default=None, help="Predefined CV folds (used by the kfold protocol).")
@click.option("--protocol", type=click.Choice(["holdout", "kfold", "spatial"]), default="kfold", show_default=True,
              help="Protocol whose metrics are reported at models.<cnn|rf|ann>.")
@click.option("--all-protocols", is_flag=True, help="Also run the other two protocols (reported under protocols).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Model config JSON (fields of soilclay.model.config.ModelConfig).")
@click.option("--report", "report_path", type=click.Path(path_type=Path), required=True, help="Report JSON path.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Also train the final models on all rows and export the CNN SavedModel to OUT/1/.")
@click.pass_obj
def train(settings: Settings, table_path: Path, target: str, x_col: str | None, y_col: str | None, crs: str | None,
          band_columns: str | None, sar_columns: str | None, folds_column: str | None, protocol: str,
          all_protocols: bool, config_path: Path | None, report_path: Path, out_dir: Path | None) -> None:
    """Train the multi-input CNN and the RF and ANN baselines on a feature table; write the report."""
    from soilclay.contract import S2_BANDS
    from soilclay.model.config import ModelConfig
    from soilclay.model.experiment import run_experiment
    from soilclay.model.table import TableSpec, load_table

    config = ModelConfig.from_file(config_path)
    spec = TableSpec(
        target=target,
        band_columns=tuple(c.strip() for c in band_columns.split(",")) if band_columns else S2_BANDS,
        sar_columns=tuple(c.strip() for c in sar_columns.split(",")) if sar_columns else None,
        x_col=x_col, y_col=y_col, crs=crs, folds_column=folds_column)
    table = load_table(table_path, spec, config.inputs)
    config = config.with_inputs(table.features.inputs)
    click.echo(f"{len(table.y)} rows ({table.dropped} dropped for missing values); inputs: "
               f"{', '.join(table.features.inputs)}; target {target}: {table.y.min():.1f}..{table.y.max():.1f}")
    others = ("holdout", "kfold", "spatial") if all_protocols else (protocol,)
    if table.xy is None:
        others = tuple(p for p in others if p != "spatial")
    experiment = run_experiment(
        table.features, table.y, config, primary=protocol, protocols=others, predefined_folds=table.folds,
        xy=table.xy, final=out_dir is not None, progress=True,
        lineage={"table": str(table_path), "rows": int(len(table.y)), "dropped": table.dropped,
                 "target": target, "inputs": list(table.features.inputs),
                 "predefined_folds": folds_column})
    paths = experiment.write(report_path, table.y)
    if out_dir is not None:
        from soilclay.model.export import export_savedmodel

        assert experiment.final is not None and experiment.domain is not None
        exported = export_savedmodel(experiment.final.cnn, table.features.inputs, experiment.halfwidth,
                                     experiment.domain, out_dir / "1")
        paths.append(exported)
    click.echo(f"{protocol} validation ({experiment.results[protocol].to_json()['folds']} folds), "
               f"pooled over out-of-fold predictions:")
    for name, m in experiment.results[protocol].metrics.items():
        click.echo(f"  {name.upper():<4} R2 {m['r2']:.3f}  RMSE {m['rmse']:.2f}  RPIQ {m['rpiq']:.2f}  "
                   f"bias {m['bias']:+.2f}  n {m['n']}")
    r = experiment.results[protocol]
    click.echo(f"  CNN 90 % interval: ±{r.halfwidth:.2f}, cross-conformal coverage {r.coverage:.3f}")
    for other, res in experiment.results.items():
        if other != protocol:
            cells = "  ".join(f"{n.upper()} R2 {m['r2']:.3f}" for n, m in res.metrics.items())
            click.echo(f"  ({other}: {cells})")
    click.echo(f"took {experiment.seconds:.0f} s; wrote {', '.join(str(p) for p in paths)}")
