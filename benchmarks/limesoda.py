"""Benchmark on real data: LimeSoDa BB.250 (Brandenburg, 250 samples, Sentinel-2 bare-soil bands, clay,
coordinates in EPSG:25833, 10 predefined folds). CNN, RF and ANN on the same features (10 bands +
coordinates), pooled 10-fold out-of-fold metrics, next to the published reference.

    .venv/bin/python benchmarks/limesoda.py [--config model.json]

Reference (Schmidinger et al. 2025, LimeSoDa; 10-fold CV with more covariates than the bands):
clay RF R² 0.70, MLR R² 0.63.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args()
    from LimeSoDa import load_dataset

    from soilclay.model.config import ModelConfig
    from soilclay.model.experiment import run_experiment
    from soilclay.model.table import TableSpec, table_from_frame

    data = load_dataset("BB.250")
    frame = pd.concat([data["Dataset"], data["Coordinates"]], axis=1)
    frame["fold"] = data["Folds"]
    config = ModelConfig.parse(json.loads(args.config.read_text()) if args.config else {})
    table = table_from_frame(frame, TableSpec(target="Clay_target", x_col="x_25833", y_col="y_25833",
                                              crs="EPSG:25833", folds_column="fold"), config.inputs, "BB.250")
    config = config.with_inputs(table.features.inputs)
    started = time.perf_counter()
    experiment = run_experiment(table.features, table.y, config, primary="kfold", protocols=("kfold",),
                                predefined_folds=table.folds, xy=table.xy, final=False, progress=True)
    print(f"\nBB.250 clay ({len(table.y)} samples, {np.min(table.y):.1f}..{np.max(table.y):.1f} %), "
          f"10 predefined folds, inputs {', '.join(table.features.inputs)}:")
    for name, m in experiment.results["kfold"].metrics.items():
        print(f"  {name.upper():<4} R2 {m['r2']:.3f}  RMSE {m['rmse']:.2f}  RPIQ {m['rpiq']:.2f}  "
              f"bias {m['bias']:+.2f}")
    print("  reference (LimeSoDa paper, more covariates): RF R2 0.70, MLR R2 0.63")
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
