"""``soilclay db``: schema migrations."""

from __future__ import annotations

import click

from soilclay.db import migrate
from soilclay.settings import Settings


@click.group()
def db() -> None:
    """Database schema: upgrade, downgrade, current revision."""


@db.command()
@click.pass_obj
def create(settings: Settings) -> None:
    """Create the database and its PostGIS extension if they are missing."""
    from soilclay.db.admin import ensure_database

    done = ensure_database(settings.database_url)
    for line in done:
        click.echo(line)
    if not done:
        click.echo(f"database ready: {settings.safe_database_url} (PostGIS present)")


@db.command()
@click.option("--to", "target", default="head", show_default=True, help="Revision to upgrade to.")
@click.pass_obj
def upgrade(settings: Settings, target: str) -> None:
    """Apply migrations up to TARGET in one checked transaction."""
    click.echo(f"Migrating {settings.safe_database_url} to {target} ...")
    result = migrate.upgrade(settings.database_url, target)
    if result.changed:
        click.echo(f"Schema upgraded: {result.before or 'empty'} -> {result.after}")
    else:
        click.echo(f"Schema already at {result.after}; nothing to do.")


@db.command()
@click.argument("target")
@click.pass_obj
def downgrade(settings: Settings, target: str) -> None:
    """Revert migrations down to TARGET (a revision id, or 'base' to remove the schema's tables)."""
    result = migrate.downgrade(settings.database_url, target)
    click.echo(f"Schema downgraded: {result.before or 'empty'} -> {result.after or 'base'}")


@db.command()
@click.pass_obj
def current(settings: Settings) -> None:
    """Show the database's revision and the newest available one."""
    from soilclay.cli._db import read_only

    rev = read_only(settings, migrate.current_revision, "reading the schema revision")
    head = migrate.head_revision()
    state = "up to date" if rev == head else "behind: run `soilclay db upgrade`"
    click.echo(f"database: {rev or 'empty'}  newest: {head}  ({state})")
