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
from sqlalchemy import Engine, text

from soilclay.db.aois import get_aoi

SQL_EXAMPLE = ("SELECT parcel_id, round(clay::numeric, 1) AS clay, round(clay_lower::numeric, 1) AS lower,\n"
               "       round(clay_upper::numeric, 1) AS upper, model_version, s2_composite_version, flags\n"
               "FROM soilclay.parcel_clay_latest WHERE clay > 30 ORDER BY clay DESC LIMIT 10;")


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
    with engine.connect() as conn:
        aoi = get_aoi(conn, aoi_name)
        scenes = dict(conn.execute(text(
            "SELECT collection, count(*) FROM soilclay.scenes WHERE aoi_id = :a GROUP BY collection ORDER BY 1"),
            {"a": aoi.aoi_id}).all())
        composites = [dict(r._mapping) for r in conn.execute(text(
            "SELECT sensor, version, scene_count, period_start, period_end, backend, created_at "
            "FROM soilclay.composites WHERE aoi_id = :a ORDER BY sensor DESC, version"), {"a": aoi.aoi_id})]
        models = [dict(r._mapping) for r in conn.execute(text(
            "SELECT version, status, metrics->'models' AS models, metrics->>'protocol' AS protocol, decision_reason "
            "FROM soilclay.model_versions ORDER BY version"))]
        estimates = pd.read_sql(text(
            "SELECT l.parcel_id, l.clay, l.clay_lower, l.clay_upper, l.flags, l.model_version "
            "FROM soilclay.parcel_clay_latest l JOIN soilclay.aois a ON ST_Intersects(l.geom, a.geom) "
            "WHERE a.aoi_id = :a"), conn, params={"a": aoi.aoi_id})
        runs = dict(conn.execute(text(
            "SELECT status, count(*) FROM soilclay.pipeline_runs GROUP BY status ORDER BY 1")).all())
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


def render(s: DemoSummary, *, ui_url: str | None = None, ui_login: str | None = None) -> str:
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
    lines += ["", "Try in `psql soilclay`:", SQL_EXAMPLE]
    return "\n".join(lines)
