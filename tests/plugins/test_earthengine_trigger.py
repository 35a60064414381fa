"""EarthEngineExportTrigger: serialisation and run() through scripted operation sequences."""

from __future__ import annotations

import asyncio
import importlib

import ee
import pytest
from soilclay_airflow.triggers.earthengine import EarthEngineExportTrigger

from tests.plugins.conftest import DEST, OPERATION, URI, operation


def events(trigger: EarthEngineExportTrigger) -> list[dict]:
    """Every event payload ``run()`` yields (bounded in time so a looping trigger fails the test)."""

    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=10))


def fast(**kwargs) -> EarthEngineExportTrigger:
    return EarthEngineExportTrigger(operation_name=OPERATION, conn_id="ee_conn",
                                    **{"poll_interval": 0.001, "timeout": 5.0, **kwargs})


def test_serialize_round_trips() -> None:
    trigger = EarthEngineExportTrigger(OPERATION, "ee_conn", poll_interval=12.5, timeout=600,
                                       started_at=1_700_000_000.0, uri=URI)
    classpath, kwargs = trigger.serialize()
    assert classpath == "soilclay_airflow.triggers.earthengine.EarthEngineExportTrigger"
    assert kwargs == {"operation_name": OPERATION, "conn_id": "ee_conn", "poll_interval": 12.5, "timeout": 600.0,
                      "started_at": 1_700_000_000.0, "uri": URI}
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert isinstance(rebuilt, EarthEngineExportTrigger)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_started_at_defaults_to_now_and_is_kept() -> None:
    trigger = EarthEngineExportTrigger(OPERATION)
    _, kwargs = trigger.serialize()
    assert kwargs["conn_id"] == "google_cloud_default" and kwargs["started_at"] > 1_700_000_000
    assert EarthEngineExportTrigger(**kwargs).started_at == kwargs["started_at"]


def test_running_then_succeeded_yields_one_success_event(scripted) -> None:
    script = scripted(operation("PENDING"), operation("RUNNING"), operation("SUCCEEDED", done=True))
    assert events(fast()) == [{"status": "success", "operation": OPERATION,
                               "message": f"export {OPERATION} succeeded", "destination_uris": DEST,
                               "uri": None}]
    assert script.calls == [OPERATION] * 3


def test_running_then_failed_yields_one_failed_event_with_the_message(scripted) -> None:
    scripted(operation("RUNNING"), operation("FAILED", done=True, error="Too many pixels in the region"))
    [event] = events(fast())
    assert event["status"] == "failed" and event["operation"] == OPERATION
    assert "Too many pixels in the region" in event["message"]


def test_cancelled_export_is_failed(scripted) -> None:
    scripted(operation("CANCELLED", done=True))
    [event] = events(fast())
    assert event["status"] == "failed" and "cancelled" in event["message"]


def test_never_finishing_yields_a_timeout_event(scripted) -> None:
    script = scripted(operation("RUNNING"))
    [event] = events(fast(poll_interval=0.01, timeout=0.05))
    assert event["status"] == "timeout" and event["operation"] == OPERATION
    assert "still running" in event["message"] and event["destination_uris"] == []
    assert len(script.calls) >= 2  # it polled more than once before giving up


def test_timeout_counts_from_started_at(scripted) -> None:
    script = scripted(operation("RUNNING"))
    [event] = events(fast(timeout=60, started_at=0.0))  # started long ago: one poll, then timeout
    assert event["status"] == "timeout" and script.calls == [OPERATION]


@pytest.mark.parametrize("error", [ee.EEException("Too many concurrent requests (429)"),
                                   ConnectionError("connection reset by peer")])
def test_transient_polling_error_then_success_still_succeeds(scripted, error) -> None:
    script = scripted(operation("RUNNING"), error, error, operation("SUCCEEDED", done=True))
    [event] = events(fast())
    assert event["status"] == "success" and event["destination_uris"] == DEST
    assert len(script.calls) == 4


def test_transient_polling_errors_until_timeout_yield_timeout(scripted) -> None:
    scripted(ee.EEException("Service unavailable (503)"))
    [event] = events(fast(poll_interval=0.01, timeout=0.05))
    assert event["status"] == "timeout" and "503" in event["message"]


def test_final_polling_error_yields_failed_without_retrying(scripted) -> None:
    script = scripted(ee.EEException("Permission denied on project p1"), operation("SUCCEEDED", done=True))
    [event] = events(fast())
    assert event["status"] == "failed" and "Permission denied" in event["message"]
    assert script.calls == [OPERATION]
