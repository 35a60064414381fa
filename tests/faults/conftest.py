"""The fault suite: an operator breaks the running system through its real entry points (the ``soilclay``
CLI in subprocesses, the library functions the DAGs call) and every test checks the same four things:
no row lost or duplicated, the rerun completes, no orphan run or staging file, the message names the problem.

What the suite did is counted in :data:`TALLY` (faults injected and survived, bad inputs tried and refused,
rows lost and duplicated) and printed at the end of the session (``pytest_terminal_summary``), and written
as JSON to ``fault-tally.json`` in the session's base temporary directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

#: The console script, as installed in the environment running the tests.
SOILCLAY = str(Path(sys.executable).with_name("soilclay"))


# --- the figures ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    faults_injected: int = 0
    faults_survived: int = 0
    bad_inputs_tried: int = 0
    bad_inputs_refused: int = 0
    rows_lost: int = 0
    rows_duplicated: int = 0
    failed: list[str] = field(default_factory=list)

    @contextmanager
    def fault(self, what: str) -> Iterator[None]:
        """Count a fault injected; survived when the block (the checks after it) passes."""
        self.faults_injected += 1
        try:
            yield
        except BaseException:
            self.failed.append(f"fault: {what}")
            raise
        self.faults_survived += 1

    @contextmanager
    def bad_input(self, what: str) -> Iterator[None]:
        """Count a bad input tried; refused when the block (the checks of the refusal) passes."""
        self.bad_inputs_tried += 1
        try:
            yield
        except BaseException:
            self.failed.append(f"bad input: {what}")
            raise
        self.bad_inputs_refused += 1

    def rows(self, *, lost: int, duplicated: int) -> None:
        """Add what a check found (before asserting it is zero, so the figures say what was seen)."""
        self.rows_lost += max(lost, 0)
        self.rows_duplicated += max(duplicated, 0)

    def lines(self) -> list[str]:
        return [f"faults injected {self.faults_injected}, survived {self.faults_survived}",
                f"bad inputs tried {self.bad_inputs_tried}, refused {self.bad_inputs_refused}",
                f"rows lost {self.rows_lost}, rows duplicated {self.rows_duplicated}",
                *(f"not survived / not refused: {f}" for f in self.failed)]


TALLY = Tally()


@pytest.fixture
def tally() -> Tally:
    return TALLY


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not (TALLY.faults_injected or TALLY.bad_inputs_tried):
        return
    terminalreporter.section("fault suite figures")
    for line in TALLY.lines():
        terminalreporter.write_line(line)
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        out = factory.getbasetemp() / "fault-tally.json"
        out.write_text(json.dumps(asdict(TALLY), indent=2))
        terminalreporter.write_line(f"(written to {out})")


# --- the system under test: a world of one's own, the CLI against it ---------------------------------


@dataclass
class Cli:
    """The ``soilclay`` console script against one database, store, work and model directory."""

    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([SOILCLAY, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([SOILCLAY, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)


def cli_for(url: str, root: Path, source: Path | None = None) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOILCLAY_")}
    env.update({
        "SOILCLAY_DATABASE_URL": url,
        "SOILCLAY_STORE_URL": str(root / "store"),
        "SOILCLAY_WORK_DIR": str(root / "work"),
        "SOILCLAY_MODEL_BASE_PATH": str(root / "models"),
        "SOILCLAY_TF_SERVING_CONFIG_DIR": str(root / "tf-serving"),
        "SOILCLAY_LOG_LEVEL": "WARNING",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    })
    if source is not None:
        env["SOILCLAY_SCENE_ARCHIVE"] = str(source / "scenes")
    return Cli(env)


# --- observing the database ----------------------------------------------------------------------------


def scalar(engine: Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def runs(engine: Engine, stage: str) -> list:
    with engine.connect() as conn:
        return conn.execute(text("SELECT run_id, status, error FROM soilclay.pipeline_runs WHERE stage = :s "
                                 "ORDER BY started_at"), {"s": stage}).all()


def prediction_counts(engine: Engine) -> tuple[int, int]:
    """(rows, distinct natural keys) of the estimates: a duplicate is a second row of one parcel geometry,
    model version and composite versions."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM soilclay.parcel_predictions")).scalar()
        keys = conn.execute(text(
            "SELECT count(*) FROM (SELECT DISTINCT source, parcel_id, geom_hash, model_version, s2_composite_version, "
            "s1_composite_id FROM soilclay.parcel_clay_history) k")).scalar()
    return rows, keys


def check_predictions(tally: Tally, engine: Engine, expected: int) -> None:
    """Exactly ``expected`` estimates, one per natural key; what differs is counted lost or duplicated."""
    rows, keys = prediction_counts(engine)
    tally.rows(lost=expected - keys, duplicated=rows - keys)
    assert (rows, keys) == (expected, expected), f"{rows} estimate rows, {keys} distinct, expected {expected}"


def check_count(tally: Tally, found: int, expected: int, what: str) -> None:
    """A count against a clean run's: fewer rows are lost ones, more are duplicates."""
    tally.rows(lost=expected - found, duplicated=found - expected)
    assert found == expected, f"{what}: {found} rows, a clean run has {expected}"


def no_run_left_running(engine: Engine) -> None:
    with engine.connect() as conn:
        left = conn.execute(text("SELECT run_id, stage FROM soilclay.pipeline_runs WHERE status = 'running'")).all()
    assert not left, f"runs left 'running': {left}"


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120, proc=None) -> object:
    """Poll ``condition`` until it is truthy; fail early when ``proc`` ended first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    proc.communicate()


def database_name(url: str) -> str:
    return make_url(url).database


@contextmanager
def blocked_writes(engine: Engine, table: str) -> Iterator[Callable[[], int | None]]:
    """Hold ``table`` in EXCLUSIVE mode (reads pass, writes wait) from a connection of our own; yields a
    function returning the pid of a backend of the same database waiting on a lock (the writer)."""
    with engine.connect() as holder:
        tx = holder.begin()
        holder.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
        own = holder.execute(text("SELECT pg_backend_pid()")).scalar()

        def waiting() -> int | None:
            with engine.connect() as conn:
                return conn.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> :own "
                    "AND wait_event_type = 'Lock' LIMIT 1"), {"own": own}).scalar()

        try:
            yield waiting
        finally:
            tx.rollback()


def terminate(engine: Engine, pid: int) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error:")]


def assert_one_clear_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 1, no traceback, exactly one ``Error:`` line, and it names every needle."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"rc {result.returncode}:\n{output}"
    assert "Traceback" not in output, output
    lines = error_lines(result)
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def staging_debris(*dirs: Path) -> list[Path]:
    """What a killed run may leave behind: composite staging files, predict download directories, the
    stores' hidden temporaries (``.{name}.tmp-{uuid}``) and ``_staging`` trees."""
    found: list[Path] = []
    for d in dirs:
        if not d.exists():
            continue
        for path in d.rglob("*"):
            name = path.name
            if (name.endswith(".staging.tif") or name.startswith(("soilclay-predict-", "soilclay-composite-",
                                                                  "soilclay-share-")) or ".tmp-" in name
                    or ".old-" in name or name == "_staging"):
                found.append(path)
    return sorted(found)
