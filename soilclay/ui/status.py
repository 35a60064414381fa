"""The status panel's data: per AOI, what arrived when, which composite versions exist, the model versions
with their skill (shared by all AOIs) and the champion, the recent runs and failures with their reasons.
Everything is read in one read-only transaction as ``soilclay_reader`` (views only, :mod:`soilclay.db.parcel_map`)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine

from soilclay.db import parcel_map as queries


def _by_aoi(rows: list[dict[str, Any]]) -> dict[int | None, list[dict[str, Any]]]:
    grouped: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row.pop("aoi_id")].append(row)
    return grouped


def build_status(engine: Engine) -> dict[str, Any]:
    """One document: ``aois`` (each with ``scenes``, ``composites``, ``runs``, ``failures``), ``models``
    (oldest first), ``champion`` (its version or None), ``parcels_extent_3857`` and ``unassigned`` (runs of
    no AOI)."""
    with queries.read_only_as(engine, queries.READER, "reading the pipeline status") as conn:
        aois = queries.aois(conn)
        scenes = _by_aoi(queries.scene_freshness(conn))
        composites = _by_aoi(queries.composite_versions(conn))
        runs = _by_aoi(queries.recent_runs(conn))
        failures = _by_aoi(queries.recent_failures(conn))
        models = queries.model_skill(conn)
        extent = queries.parcels_extent(conn)
    for aoi in aois:
        key = aoi["aoi_id"]
        aoi.update(scenes=scenes.get(key, []), composites=composites.get(key, []), runs=runs.get(key, []),
                   failures=failures.get(key, []))
    champion = next((m["version"] for m in models if m["status"] == "champion"), None)
    return {"aois": aois, "models": models, "champion": champion, "parcels_extent_3857": extent,
            "unassigned": {"runs": runs.get(None, []), "failures": failures.get(None, [])}}
