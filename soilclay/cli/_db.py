"""What the CLI's list commands share: one read through the database layer, rows printed or a note."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from soilclay.settings import Settings

T = TypeVar("T")


def read_only(settings: Settings, query: Callable[..., T], what: str, *args: Any) -> T:
    """``query(conn, *args)`` in one read on a short-lived engine (errors translated by the db layer)."""
    from soilclay.db.engine import make_engine
    from soilclay.db.tx import reading

    engine = make_engine(settings.database_url)
    try:
        with reading(engine, what) as conn:
            return query(conn, *args)
    finally:
        engine.dispose()


def echo_rows(rows: Iterable[Any], line: Callable[[Any], str], *, empty: str) -> None:
    """One line per row, or ``empty`` when there is none."""
    printed = False
    for row in rows:
        click.echo(line(row))
        printed = True
    if not printed:
        click.echo(empty)

