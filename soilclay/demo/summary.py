"""What a demo run produced, read back from PostGIS and checked against the demo world's truth.

:func:`collect` gathers the figures (scenes, composite versions, model versions with CNN/RF/ANN
metrics, the champion, parcels estimated and their skill against ``truth/parcels_truth.csv``);
:func:`render` prints them for people, with where to look next (Airflow UI, an SQL query).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from soilclay.db import reports
from soilclay.db.aois import get_aoi
from soilclay.db.tx import reading

SQL_EXAMPLE = reports.EXAMPLE_QUERY


@dataclass(frozen=True)
class ParcelSkill:
    """Per-parcel estimates against the true parcel means (parcels with a number only)."""

    n: int
    r2: float
    rmse: float
    inside_interval: float


@dataclass
class DemoSummary:
    aoi: str
    scenes: dict[str, int]
    composites: list[dict]
    models: list[dict]
    champion: int | None
    parcels: int
    estimated: int
    flagged: int
    skill: ParcelSkill | None = None
    runs: dict[str, int] = field(default_factory=dict)


def parcel_skill(estimates: pd.DataFrame, truth: pd.DataFrame) -> ParcelSkill | None:
    """R², RMSE and interval coverage of ``estimates`` (parcel_id, clay, clay_lower, clay_upper) against
    ``truth`` (parcel_id, clay_true_mean); None when no parcel has both."""
    merged = estimates.merge(truth[["parcel_id", "clay_true_mean"]], on="parcel_id").dropna(subset=["clay"])
    if merged.empty:
        return None
    y, p = merged["clay_true_mean"].to_numpy(float), merged["clay"].to_numpy(float)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - p) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    inside = ((merged["clay_lower"] <= merged["clay_true_mean"]) & (merged["clay_true_mean"] <= merged["clay_upper"]))
    return ParcelSkill(len(merged), r2, float(np.sqrt(((y - p) ** 2).mean())), float(inside.mean()))


def collect(engine: Engine, aoi_name: str, world: Path | None = None) -> DemoSummary:
    with reading(engine, f"summarising AOI {aoi_name}") as conn:
        aoi = get_aoi(conn, aoi_name)
        scenes = reports.scene_counts(conn, aoi.aoi_id)
        composites = reports.composite_versions(conn, aoi.aoi_id)
        models = reports.model_versions(conn)
        estimates = reports.latest_estimates(conn, aoi.aoi_id)
        runs = reports.run_counts(conn)
    champion = next((m["version"] for m in models if m["status"] == "champion"), None)
    has_row = estimates["model_version"].notna()
    summary = DemoSummary(aoi.name, scenes, composites, models, champion, len(estimates), int(has_row.sum()),
                          int((has_row & estimates["clay"].isna()).sum()), runs=runs)
    truth_csv = world / "truth" / "parcels_truth.csv" if world is not None else None
    if truth_csv is not None and truth_csv.is_file():
        summary.skill = parcel_skill(estimates[has_row], pd.read_csv(truth_csv, dtype={"parcel_id": str}))
    return summary


def _metrics(models: dict | None) -> str:
    if not models:
        return "no metrics"
    parts = []
    for name in ("cnn", "rf", "ann"):
        m = models.get(name)
        if m:
            parts.append(f"{name.upper()} R² {m['r2']:.3f} RMSE {m['rmse']:.2f} RPIQ {m['rpiq']:.2f}")
    return " | ".join(parts)


def render(s: DemoSummary, *, ui_url: str | None = None, ui_login: str | None = None,
           links: dict[str, str] | None = None) -> str:
    """The summary for people; ``links``: more addresses to print under the UI's (label -> URL)."""
    lines = [f"soilclay demo summary: AOI {s.aoi}", ""]
    scenes = ", ".join(f"{n} {c}" for c, n in s.scenes.items()) or "none"
    lines.append(f"Scenes recorded:     {sum(s.scenes.values())} ({scenes})")
    lines.append("Composite versions:")
    lines += [f"  {c['sensor']:<10} v{c['version']}  {c['scene_count']} scenes  {c['period_start']}..{c['period_end']}"
              f"  ({c['backend']})" for c in s.composites] or ["  none"]
    lines.append("Model versions (validation: " + (s.models[0]["protocol"] if s.models else "-") + "):")
    lines += [f"  v{m['version']} {m['status']:<9} {_metrics(m['models'])}" for m in s.models] or ["  none"]
    lines.append(f"Champion:            {'v' + str(s.champion) if s.champion else 'none'}")
    lines.append(f"Parcels estimated:   {s.estimated} of {s.parcels} ({s.flagged} flagged without a number, "
                 "e.g. grassland rarely bare)")
    if s.skill is not None:
        lines.append(f"Against the truth:   R² {s.skill.r2:.3f}, RMSE {s.skill.rmse:.2f} % clay over {s.skill.n} "
                     f"parcels; {s.skill.inside_interval:.1%} of true means inside the 90 % intervals")
    if s.runs:
        lines.append("Pipeline runs:       " + ", ".join(f"{n} {st}" for st, n in s.runs.items()))
    if ui_url:
        lines += ["", f"Airflow UI:          {ui_url}" + (f"  (login {ui_login})" if ui_login else "")]
    if links:
        lines += [""] if not ui_url else []
        lines += [f"{label + ':':<20} {url}" for label, url in links.items()]
    lines += ["", "Try in `psql soilclay`:", SQL_EXAMPLE]
    return "\n".join(lines)
