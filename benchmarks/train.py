"""Benchmark: training CNN + RF + ANN under all three protocols (holdout, 5-fold, spatial blocks) plus
the final models, on 6,136 samples (the n of Tziolas et al. 2020) on 2 CPU cores. Target: under 5 minutes.

    .venv/bin/python benchmarks/train.py [--world var/demo] [--samples 6136]

Needs the demo world and its composites (`make demo`). The samples are drawn from the demo world's
truth with the world's own sampler (same seed, more points), and their features read from the
newest composites, as the retraining pipeline does. Prints wall time per protocol, peak RSS and the
pooled out-of-fold metrics.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("var/demo"))
    parser.add_argument("--store", type=Path, default=Path("var/store"))
    parser.add_argument("--samples", type=int, default=6136)
    args = parser.parse_args()
    composites = args.store / "composites" / "demo"
    s2 = sorted((composites / "sentinel-2").glob("*.tif"), key=lambda p: p.stat().st_mtime)
    s1 = sorted((composites / "sentinel-1").glob("*.tif"), key=lambda p: p.stat().st_mtime)
    if not (args.world / "world.json").exists() or not s2 or not s1:
        sys.exit("needs the demo world and its composites: run `make demo` first")

    from pyproj import Transformer

    from soilclay.demo.spec import WorldSpec
    from soilclay.demo.world import WorldState, make_samples
    from soilclay.features.rasters import sample_composites
    from soilclay.model.config import ModelConfig
    from soilclay.model.experiment import run_experiment
    from soilclay.model.features import Features

    spec = WorldSpec.from_json({**json.loads((args.world / "world.json").read_text())["spec"],
                                "n_samples": args.samples})
    samples = make_samples(WorldState.build(spec))
    points = samples.rename(columns={"TH_LONG": "lon", "TH_LAT": "lat", "Clay": "clay"})
    table = sample_composites(points[["lon", "lat", "clay"]], str(s2[-1]), str(s1[-1]))
    table = table.dropna()
    y = table["clay"].to_numpy(float)
    config = ModelConfig()
    features = Features.from_frame(table, config.inputs)
    x, yy = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(table["lon"], table["lat"])
    started = time.perf_counter()
    experiment = run_experiment(features, y, config, primary="kfold", protocols=("holdout", "kfold", "spatial"),
                                xy=np.column_stack([x, yy]), final=True, progress=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{len(y)} samples ({args.samples - len(y)} on nodata pixels dropped), inputs {', '.join(features.inputs)}")
    for name, result in experiment.results.items():
        cells = "  ".join(f"{m.upper()} R2 {v['r2']:.3f} RMSE {v['rmse']:.2f} RPIQ {v['rpiq']:.2f}"
                          for m, v in result.metrics.items())
        print(f"  {name:<8} {result.seconds:6.1f} s  {cells}")
    print(f"  CNN interval ±{experiment.halfwidth:.2f}, coverage {experiment.results['kfold'].coverage:.3f}; "
          f"final CNN {experiment.final.cnn_epochs} epochs")
    print(f"total {seconds:.0f} s (target < 300 s: {'MET' if seconds < 300 else 'MISSED'}), peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
