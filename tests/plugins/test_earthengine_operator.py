"""EarthEngineExportOperator: deferring, waiting, execute_complete, and one shared decision."""

from __future__ import annotations

from datetime import date

import pytest
from airflow.sdk.exceptions import TaskDeferred
from soilclay_airflow.operators import earthengine as operator_module
from soilclay_airflow.operators.earthengine import EarthEngineExportOperator
from soilclay_airflow.triggers.earthengine import EarthEngineExportTrigger

from soilclay.composites import earthengine
from soilclay.composites.recipe import Recipe
from soilclay.earthengine import operations
from soilclay.earthengine.operations import ExportOutcome
from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError
from tests.plugins.conftest import DEST, OPERATION, URI, operation, run_trigger

RECIPE = {"aoi": "demo", "window": {"years": 3}, "grid": {"crs": "EPSG:32633"}}
AOI = {"type": "Polygon", "coordinates": [[[15.0, 50.0], [15.01, 50.0], [15.01, 50.01], [15.0, 50.0]]]}


@pytest.fixture
def started(monkeypatch) -> list[tuple]:
    """Patch :meth:`EarthEngineBackend.start`: no Earth Engine, records its arguments."""
    calls: list[tuple] = []

    def fake_start(self, recipe, sensor, aoi_geometry, period, name, scene_ids):
        calls.append((self.bucket, self.prefix, recipe, sensor, aoi_geometry, period, name, scene_ids))
        return OPERATION, URI

    monkeypatch.setattr(earthengine.EarthEngineBackend, "start", fake_start)
    return calls


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    sleeps: list[float] = []
    monkeypatch.setattr(operator_module, "_sleep", sleeps.append)
    return sleeps


def make(**kwargs) -> EarthEngineExportOperator:
    return EarthEngineExportOperator(**{
        "task_id": "export_s2", "recipe": RECIPE, "sensor": "sentinel-2", "aoi_geometry": AOI,
        "period": ["2023-01-01", "2025-12-31"], "name": "demo-s2", "scene_ids": ["S2A_1", "S2B_2"],
        "bucket": "gs://bucket", "prefix": "composites",
        "conn_id": "ee_conn", "poll_interval": 7.0, "timeout": 900.0, **kwargs})


def test_init_only_stores_arguments_and_uses_the_earthengine_pool(scripted, started) -> None:
    op = make()
    assert op.pool == "earthengine" and op.deferrable is True and op.period == ["2023-01-01", "2025-12-31"]
    assert make(pool="other").pool == "other"
    assert started == []


def test_deferrable_execute_defers_to_the_trigger(scripted, started) -> None:
    script = scripted(operation("RUNNING"))
    with pytest.raises(TaskDeferred) as info:
        make().execute(context={})
    deferred = info.value
    assert isinstance(deferred.trigger, EarthEngineExportTrigger)
    assert deferred.method_name == "execute_complete" and deferred.kwargs == {"uri": URI}
    _, kwargs = deferred.trigger.serialize()
    assert kwargs["operation_name"] == OPERATION and kwargs["conn_id"] == "ee_conn" and kwargs["uri"] == URI
    assert (kwargs["poll_interval"], kwargs["timeout"], kwargs["poll_error_budget"]) == (7.0, 900.0, 5)
    [(bucket, prefix, recipe, sensor, aoi, period, name, scene_ids)] = started
    assert (bucket, prefix, sensor, aoi, name) == ("bucket", "composites", "sentinel-2", AOI, "demo-s2")
    assert scene_ids == ["S2A_1", "S2B_2"], "the export is made of exactly the planned scenes"
    assert recipe == Recipe.parse(RECIPE) and period == (date(2023, 1, 1), date(2025, 12, 31))
    assert script.calls == []  # the worker does not poll: the triggerer does


def test_waiting_execute_polls_and_returns_the_uri(scripted, started, no_sleep) -> None:
    script = scripted(operation("PENDING"), operation("RUNNING"), operation("SUCCEEDED", done=True))
    assert make(deferrable=False).execute(context={}) == URI
    assert script.calls == [OPERATION] * 3 and no_sleep == [7.0, 7.0]


def test_waiting_execute_raises_with_the_export_message(scripted, started, no_sleep) -> None:
    scripted(operation("RUNNING"), operation("FAILED", done=True, error="User memory limit exceeded"))
    with pytest.raises(FinalExternalError, match="User memory limit exceeded"):
        make(deferrable=False).execute(context={})


def test_bad_period_is_refused_before_anything_starts(scripted, started) -> None:
    with pytest.raises(BadInputError, match="period"):
        make(period=["2023-01-01"]).execute(context={})
    for bad in ([], "S2A_1"):
        with pytest.raises(BadInputError, match="scene_ids must be a non-empty list"):
            make(scene_ids=bad).execute(context={})
    assert started == []


def test_execute_complete_returns_the_uri_on_success() -> None:
    event = {"status": "success", "operation": OPERATION, "message": "ok", "destination_uris": DEST}
    assert make().execute_complete({}, event, uri=URI) == URI
    # Resumed without the kwargs (as dag.test() does): the URI the trigger carried in its event.
    assert make().execute_complete({}, {**event, "uri": URI}) == URI
    with pytest.raises(FinalExternalError, match="no destination"):  # never a console link as the COG
        make().execute_complete({}, event)


@pytest.mark.parametrize(("status", "kind", "error"), [
    ("failed", "final", FinalExternalError), ("timeout", "transient", TransientExternalError),
    ("error", "transient", TransientExternalError), ("error", "bad_input", BadInputError),
    ("error", "final", FinalExternalError),
    ("failed", None, FinalExternalError), ("timeout", None, TransientExternalError),  # events without error_kind
])
def test_execute_complete_raises_the_error_the_event_names(status, kind, error) -> None:
    event = {"status": status, "operation": OPERATION, "message": f"export {OPERATION} went {status}: why",
             "destination_uris": []}
    if kind is not None:
        event["error_kind"] = kind
    with pytest.raises(error, match=f"went {status}: why") as info:
        make().execute_complete({}, event, uri=URI)
    assert type(info.value) is error


def test_waiting_and_deferrable_paths_share_export_outcome(scripted, started, no_sleep, monkeypatch) -> None:
    """Both paths follow ``operations.export_outcome``: replaced by a spy that calls a SUCCEEDED
    operation failed, both must report that failure with the spy's message."""
    seen: list[dict] = []

    def decide(op):
        seen.append(op)
        return ExportOutcome("failed", "decided by the shared export_outcome")

    monkeypatch.setattr(operations, "export_outcome", decide)
    scripted(operation("SUCCEEDED", done=True))

    with pytest.raises(FinalExternalError, match="decided by the shared export_outcome"):
        make(deferrable=False).execute(context={})
    assert len(seen) == 1

    with pytest.raises(TaskDeferred) as info:
        make().execute(context={})
    [event] = run_trigger(info.value.trigger)
    assert event["status"] == "failed" and event["message"] == "decided by the shared export_outcome"
    assert len(seen) == 2
    with pytest.raises(FinalExternalError, match="decided by the shared export_outcome"):
        make().execute_complete({}, event, **info.value.kwargs)
