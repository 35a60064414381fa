"""Apply the Alembic migrations in ``sql/migrations`` in one checked transaction.

pgstac-style: take an advisory lock, run every step inside one transaction, check that the
database reports the requested revision, and only then commit. Any failure rolls back to the
state before the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy import exc as sa_exc

from soilclay.db.engine import SCHEMA, make_engine
from soilclay.db.tx import translated
from soilclay.errors import SoilclayError

#: Arbitrary constant key for pg_advisory_xact_lock: one migrator at a time.
_LOCK_KEY = 0x50111C1A


def sql_dir() -> Path:
    """The ``sql/`` folder of the checkout (or of the image, where it is copied next to the package)."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "sql", here.parents[1] / "sql"):
        if (candidate / "migrations" / "env.py").is_file():
            return candidate
    raise SoilclayError(f"sql/migrations not found next to the soilclay package ({here.parents[2]})")


def alembic_config() -> Config:
    folder = sql_dir()
    cfg = Config(str(folder / "alembic.ini"))
    cfg.set_main_option("script_location", str(folder / "migrations"))
    cfg.set_main_option("version_locations", str(folder / "migrations" / "versions"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise SoilclayError("no migrations found in sql/migrations/versions")
    return head


def current_revision(conn: Connection) -> str | None:
    exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": f"{SCHEMA}.alembic_version"}).scalar()
    if exists is None:
        return None
    ctx = MigrationContext.configure(conn, opts={"version_table_schema": SCHEMA})
    return ctx.get_current_revision()


@dataclass(frozen=True)
class MigrationResult:
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _migrate(database_url: str, target: str, *, up: bool) -> MigrationResult:
    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    expected = None if target == "base" else script.get_revision(target).revision
    engine = make_engine(database_url)
    try:
        with translated(f"{'upgrading' if up else 'downgrading'} the schema to {target}"), engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            before = current_revision(conn)
            cfg.attributes["connection"] = conn
            try:
                (command.upgrade if up else command.downgrade)(cfg, target)
            except sa_exc.DBAPIError as e:
                if getattr(e.orig, "sqlstate", None) != "P0001":  # only a migration's own RAISE is its answer
                    raise
                raise SoilclayError(f"{'upgrade' if up else 'downgrade'} to {target} refused, nothing changed: "
                                    f"{e.orig.diag.message_primary}") from e
            after = current_revision(conn)
            if after != expected:
                raise SoilclayError(f"migration check failed: expected revision {expected!r}, found {after!r}")
            return MigrationResult(before=before, after=after)
    finally:
        engine.dispose()


def upgrade(database_url: str, target: str = "head") -> MigrationResult:
    """Upgrade to ``target`` (default: the newest revision) in one transaction."""
    return _migrate(database_url, target, up=True)


def downgrade(database_url: str, target: str) -> MigrationResult:
    """Downgrade to ``target`` (a revision id, or ``base`` to remove everything) in one transaction."""
    return _migrate(database_url, target, up=False)
