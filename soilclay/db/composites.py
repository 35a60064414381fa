"""Repository of ``soilclay.composites``: composite versions with their lineage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, text

from soilclay.db.tx import advisory_lock
from soilclay.errors import BadInputError


@dataclass(frozen=True)
class CompositeRow:
    """One registered composite version."""

    composite_id: int
    aoi: str
    sensor: str
    version: int
    uri: str
    scene_count: int
    skipped_count: int = 0
    period: tuple[date, date] | None = None
    #: The recipe's hash (:meth:`soilclay.composites.recipe.Recipe.hash`) and the recipe as stored (JSON).
    recipe_hash: str | None = None
    recipe: dict[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NewComposite:
    """What registering a composite version stores (the version number is the next free one)."""

    aoi_id: int
    sensor: str
    period: tuple[date, date]
    recipe_hash: str
    recipe_json: str
    inputs_hash: str
    scene_count: int
    skipped_count: int
    backend: str
    uri: str
    run_id: str | None


_COLUMNS = ("c.composite_id, a.name AS aoi, c.sensor, c.version, c.uri, c.scene_count, c.skipped_count, "
            "c.period_start, c.period_end, c.recipe_hash, c.recipe")
_FROM = "FROM soilclay.composites c JOIN soilclay.aois a USING (aoi_id)"


def _row(r) -> CompositeRow:
    return CompositeRow(r.composite_id, r.aoi, r.sensor, r.version, r.uri, r.scene_count, r.skipped_count,
                        (r.period_start, r.period_end), r.recipe_hash, r.recipe)


def lock_series(conn: Connection, aoi_name: str, sensor: str) -> None:
    """Serialise registrations of one (AOI, sensor) series until the transaction ends."""
    advisory_lock(conn, f"composites:{aoi_name}/{sensor}")


def find_by_inputs(conn: Connection, aoi_id: int, sensor: str, recipe_hash: str,
                   inputs_hash: str) -> CompositeRow | None:
    """The version computed with this recipe over exactly these scenes, if any."""
    row = conn.execute(text(
        f"SELECT {_COLUMNS} {_FROM} WHERE c.aoi_id = :a AND c.sensor = :s AND c.recipe_hash = :r "
        "AND c.inputs_hash = :i"), {"a": aoi_id, "s": sensor, "r": recipe_hash, "i": inputs_hash}).first()
    return None if row is None else _row(row)


def insert_next_version(conn: Connection, new: NewComposite) -> CompositeRow:
    """Insert ``new`` as the next version of its (AOI, sensor) series (hold :func:`lock_series`)."""
    composite_id = conn.execute(text(
        "INSERT INTO soilclay.composites (aoi_id, sensor, version, period_start, period_end, recipe_hash, recipe, "
        " inputs_hash, scene_count, skipped_count, backend, uri, run_id) "
        "SELECT :a, :s, coalesce(max(version), 0) + 1, :ps, :pe, :r, CAST(:rj AS jsonb), :i, :n, :k, :b, :u, :run "
        "FROM soilclay.composites WHERE aoi_id = :a AND sensor = :s RETURNING composite_id"),
        {"a": new.aoi_id, "s": new.sensor, "ps": new.period[0], "pe": new.period[1], "r": new.recipe_hash,
         "rj": new.recipe_json, "i": new.inputs_hash, "n": new.scene_count, "k": new.skipped_count,
         "b": new.backend, "u": new.uri, "run": new.run_id}).scalar_one()
    return get(conn, composite_id)


def get(conn: Connection, composite_id: int) -> CompositeRow | None:
    row = conn.execute(text(f"SELECT {_COLUMNS}, c.aoi_id {_FROM} WHERE c.composite_id = :i"),
                       {"i": composite_id}).first()
    return None if row is None else _row(row)


def newest(conn: Connection, aoi_id: int, sensor: str) -> CompositeRow | None:
    """The AOI's newest version of ``sensor``, or None."""
    row = conn.execute(text(f"SELECT {_COLUMNS} {_FROM} WHERE c.aoi_id = :a AND c.sensor = :s "
                            "ORDER BY c.version DESC LIMIT 1"), {"a": aoi_id, "s": sensor}).first()
    return None if row is None else _row(row)


def newest_where(conn: Connection, aoi_id: int, sensor: str,
                 accept: Callable[[CompositeRow], bool]) -> CompositeRow | None:
    """The AOI's newest version of ``sensor`` that ``accept`` accepts (e.g. of a given method), or None."""
    rows = conn.execute(text(f"SELECT {_COLUMNS} {_FROM} WHERE c.aoi_id = :a AND c.sensor = :s "
                             "ORDER BY c.version DESC"), {"a": aoi_id, "s": sensor})
    return next((row for row in map(_row, rows) if accept(row)), None)


def pick(conn: Connection, aoi_id: int, aoi_name: str, sensor: str, composite_id: int | None) -> CompositeRow | None:
    """The composite ``composite_id`` (checked to be the AOI's ``sensor`` composite), or the newest
    version of that sensor for the AOI (None when there is none)."""
    if composite_id is None:
        return newest(conn, aoi_id, sensor)
    row = conn.execute(text(f"SELECT {_COLUMNS}, c.aoi_id {_FROM} WHERE c.composite_id = :i"),
                       {"i": composite_id}).first()
    if row is None:
        raise BadInputError(f"no composite with id {composite_id}; expected a {sensor} composite of AOI {aoi_name!r}")
    if row.aoi_id != aoi_id or row.sensor != sensor:
        raise BadInputError(f"composite {composite_id} is a {row.sensor} composite of AOI {row.aoi!r}; "
                            f"expected a {sensor} composite of AOI {aoi_name!r}")
    return _row(row)


def list_for_aoi(conn: Connection, aoi_name: str) -> list[CompositeRow]:
    """Every version of the AOI's composites, by sensor, newest first."""
    rows = conn.execute(text(f"SELECT {_COLUMNS} {_FROM} WHERE a.name = :n ORDER BY c.sensor, c.version DESC"),
                        {"n": aoi_name}).all()
    return [_row(r) for r in rows]


def created_in_dag_run(conn: Connection, dag_id: str, dag_run_id: str) -> list[CompositeRow]:
    """The versions registered by any task try of the Airflow DAG run ``dag_id``/``dag_run_id``
    (through the ``pipeline_runs`` row each version names), oldest first."""
    rows = conn.execute(text(
        f"SELECT {_COLUMNS} {_FROM} JOIN soilclay.pipeline_runs r ON r.run_id = c.run_id "
        "WHERE r.dag_id = :d AND r.dag_run_id = :dr ORDER BY c.composite_id"),
        {"d": dag_id, "dr": dag_run_id}).all()
    return [_row(r) for r in rows]
