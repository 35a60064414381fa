"""The training report: JSON (metrics per model and protocol, importances, interval coverage,
lineage) and PNG plots (observed vs predicted, residuals, importances)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def jsonable(value):
    """``value`` as plain JSON types (numpy scalars unwrapped, non-finite floats None, the rest as text)."""
    return json.loads(json.dumps(_clean(value), default=str))


def write_json(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_clean(report), indent=1, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def plot_predictions(y: np.ndarray, predictions: dict[str, np.ndarray], metrics: dict[str, dict], title: str,
                     path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(predictions)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 8), squeeze=False)
    lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
    for i, name in enumerate(names):
        p = predictions[name]
        ok = np.isfinite(p)
        m = metrics[name]
        ax = axes[0, i]
        ax.scatter(y[ok], p[ok], s=6, alpha=0.5)
        ax.plot([lo, hi], [lo, hi], color="k", lw=1)
        ax.set(title=f"{name.upper()}  R²={m['r2']:.2f}  RMSE={m['rmse']:.2f}  RPIQ={m['rpiq']:.2f}",
               xlabel="observed clay (%)", ylabel="predicted clay (%)")
        ax = axes[1, i]
        ax.scatter(p[ok], p[ok] - y[ok], s=6, alpha=0.5)
        ax.axhline(0, color="k", lw=1)
        ax.set(xlabel="predicted clay (%)", ylabel="residual (pred − obs)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_importances(importances: dict[str, dict[str, float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(importances)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        items = list(importances[name].items())
        ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1])
        ax.set(title=name, xlabel="RMSE increase" if "gradient" not in name else "share of attribution")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render_retrain(outcome) -> str:
    """The text summary of a :class:`soilclay.model.pipeline.RetrainOutcome`."""
    lines = [f"model version {outcome.version}: {outcome.status} ({outcome.reason})", f"  {outcome.artefact_uri}",
             f"  trained on {outcome.samples} samples; out-of-fold metrics:"]
    for protocol, result in outcome.metrics["protocols"].items():
        cells = "  ".join(f"{m.upper()} R2 {v['r2']:.3f} RMSE {v['rmse']:.2f} RPIQ {v['rpiq']:.2f}"
                          for m, v in result["models"].items())
        lines.append(f"    {protocol:<8} {cells}")
    interval = outcome.metrics["interval"]
    lines.append(f"  CNN 90 % interval ±{interval['halfwidth']:.2f} "
                 f"(coverage {interval['empirical_coverage']:.3f})")
    gate = outcome.metrics.get("data", {}).get("gate")
    if gate:
        champ = "none" if gate["champion_rmse"] is None else f"{gate['champion_rmse']:.2f}"
        lines.append(f"  gate set ({gate['samples']} samples never trained on): candidate RMSE "
                     f"{gate['candidate_rmse']:.2f}, champion RMSE {champ}")
    return "\n".join(lines)
