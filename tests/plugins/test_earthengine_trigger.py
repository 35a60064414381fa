"""EarthEngineExportTrigger: serialisation and run() through scripted operation sequences, on fake
time (the trigger's clock and sleep are injected: no test waits or depends on the machine's speed)."""

from __future__ import annotations

import importlib

import ee
import pytest
from soilclay_airflow.triggers.earthengine import EarthEngineExportTrigger

from soilclay.errors import BadInputError
from tests.plugins.conftest import DEST, OPERATION, URI, FakeTime, operation, run_trigger

START = 1_700_000_000.0


def trigger(**kwargs) -> EarthEngineExportTrigger:
    return EarthEngineExportTrigger(operation_name=OPERATION, conn_id="ee_conn",
                                    **{"poll_interval": 30.0, "timeout": 600.0, "started_at": START, **kwargs})


def test_serialize_round_trips() -> None:
    made = EarthEngineExportTrigger(OPERATION, "ee_conn", poll_interval=12.5, timeout=600,
                                    started_at=1_700_000_000.0, uri=URI, poll_error_budget=2)
    classpath, kwargs = made.serialize()
    assert classpath == "soilclay_airflow.triggers.earthengine.EarthEngineExportTrigger"
    assert kwargs == {"operation_name": OPERATION, "conn_id": "ee_conn", "poll_interval": 12.5, "timeout": 600.0,
                      "started_at": 1_700_000_000.0, "uri": URI, "poll_error_budget": 2}
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert isinstance(rebuilt, EarthEngineExportTrigger)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_started_at_defaults_to_now_and_is_kept() -> None:
    made = EarthEngineExportTrigger(OPERATION)
    _, kwargs = made.serialize()
    assert kwargs["conn_id"] == "google_cloud_default" and kwargs["started_at"] > 1_700_000_000
    assert EarthEngineExportTrigger(**kwargs).started_at == kwargs["started_at"]


def test_running_then_succeeded_yields_one_success_event(scripted) -> None:
    script = scripted(operation("PENDING"), operation("RUNNING"), operation("SUCCEEDED", done=True))
    fake = FakeTime(START)
    assert run_trigger(trigger(), fake) == [{"status": "success", "operation": OPERATION,
                                             "message": f"export {OPERATION} succeeded", "destination_uris": DEST,
                                             "uri": None}]
    assert script.calls == [OPERATION] * 3 and fake.sleeps == [30.0, 30.0]


def test_running_then_failed_yields_one_failed_event_with_the_message(scripted) -> None:
    scripted(operation("RUNNING"), operation("FAILED", done=True, error="Too many pixels in the region"))
    [event] = run_trigger(trigger())
    assert event["status"] == "failed" and event["operation"] == OPERATION and event["error_kind"] == "final"
    assert "Too many pixels in the region" in event["message"]


def test_cancelled_export_is_failed(scripted) -> None:
    scripted(operation("CANCELLED", done=True))
    [event] = run_trigger(trigger())
    assert event["status"] == "failed" and "cancelled" in event["message"]


def test_malformed_operation_is_a_failed_export(scripted) -> None:
    scripted(["not", "a", "dict"])  # type: ignore[arg-type]
    [event] = run_trigger(trigger())
    assert (event["status"], event["error_kind"]) == ("failed", "final") and "operation dict" in event["message"]


def test_never_finishing_yields_a_timeout_event_at_the_deadline(scripted) -> None:
    script = scripted(operation("RUNNING"))
    fake = FakeTime(START)
    [event] = run_trigger(trigger(poll_interval=30, timeout=100), fake)
    assert event["status"] == "timeout" and event["operation"] == OPERATION and event["error_kind"] == "transient"
    assert "still running after 100 s" in event["message"] and event["destination_uris"] == []
    # polled at 0, 30, 60, 90 and 100 s: the last sleep is cut to the deadline, then it gives up
    assert fake.sleeps == [30, 30, 30, 10] and len(script.calls) == 5 and fake.now == START + 100


def test_timeout_counts_from_started_at(scripted) -> None:
    script = scripted(operation("RUNNING"))
    fake = FakeTime(START + 3600)  # started an hour ago with a 60 s timeout: one poll, then timeout
    [event] = run_trigger(trigger(timeout=60), fake)
    assert event["status"] == "timeout" and script.calls == [OPERATION] and fake.sleeps == []


@pytest.mark.parametrize("error", [ee.EEException("Too many concurrent requests (429)"),
                                   ConnectionError("connection reset by peer")])
def test_transient_polling_error_then_success_still_succeeds(scripted, error) -> None:
    script = scripted(operation("RUNNING"), error, error, operation("SUCCEEDED", done=True))
    [event] = run_trigger(trigger(poll_error_budget=2))
    assert event["status"] == "success" and event["destination_uris"] == DEST
    assert len(script.calls) == 4


def test_transient_polling_errors_beyond_the_budget_yield_a_transient_error(scripted) -> None:
    script = scripted(ee.EEException("Service unavailable (503)"))
    [event] = run_trigger(trigger(poll_error_budget=3))
    assert (event["status"], event["error_kind"]) == ("error", "transient")
    assert "4 transient errors in a row" in event["message"] and "503" in event["message"]
    assert len(script.calls) == 4


def test_transient_polling_errors_until_the_deadline_yield_timeout(scripted) -> None:
    scripted(ee.EEException("Service unavailable (503)"))
    [event] = run_trigger(trigger(poll_interval=30, timeout=50, poll_error_budget=10))
    assert event["status"] == "timeout" and "503" in event["message"]


def test_final_polling_error_yields_an_error_without_retrying(scripted) -> None:
    script = scripted(ee.EEException("Permission denied on project p1"), operation("SUCCEEDED", done=True))
    fake = FakeTime(START)
    [event] = run_trigger(trigger(), fake)
    assert (event["status"], event["error_kind"]) == ("error", "final")
    assert "Permission denied" in event["message"]
    assert script.calls == [OPERATION] and fake.sleeps == []


def test_a_broken_connection_is_bad_input(scripted) -> None:
    script = scripted(BadInputError("Airflow connection 'ee_conn' has no 'project' extra"))
    [event] = run_trigger(trigger())
    assert (event["status"], event["error_kind"]) == ("error", "bad_input") and "project" in event["message"]
    assert len(script.calls) == 1
