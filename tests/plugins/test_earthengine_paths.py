"""The two waiting paths of :class:`EarthEngineExportOperator` agree on poll errors: the same scripted
Earth Engine answers, run through the blocking path (``deferrable=False``, ``wait_for_export``) and
through the deferrable path (trigger ``run()`` then ``execute_complete``), give the same result, the
same error class and message, and the same number of polls. Time is fake on both."""

from __future__ import annotations

import ee
import pytest
from airflow.sdk.exceptions import TaskDeferred
from soilclay_airflow.operators import earthengine as operator_module

from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError
from tests.plugins.conftest import URI, operation, run_trigger
from tests.plugins.test_earthengine_operator import make

UNAVAILABLE = ee.EEException("Service unavailable (503)")
RESET = ConnectionResetError("connection reset by peer")
DENIED = ee.EEException("Permission denied on project p1")
SUCCEEDED = operation("SUCCEEDED", done=True)
RUNNING = operation("RUNNING")
BUDGET = 2

SCENARIOS = {
    "one transient error then success": ([UNAVAILABLE, SUCCEEDED], URI, 2),
    "budget's worth of transient errors then success": ([RUNNING, UNAVAILABLE, RESET, SUCCEEDED], URI, 4),
    "errors separated by good reads never exhaust the budget": (
        [UNAVAILABLE, UNAVAILABLE, RUNNING, UNAVAILABLE, UNAVAILABLE, RUNNING, SUCCEEDED], URI, 7),
    "one transient error too many": ([UNAVAILABLE, RESET, UNAVAILABLE, SUCCEEDED], TransientExternalError, 3),
    "a final error fails at once": ([DENIED, SUCCEEDED], FinalExternalError, 1),
    "a final error after transient ones": ([UNAVAILABLE, DENIED, SUCCEEDED], FinalExternalError, 2),
    "a broken connection is bad input": ([BadInputError("connection 'ee_conn' has no 'project' extra")],
                                         BadInputError, 1),
    "a failed export": ([UNAVAILABLE, operation("FAILED", done=True, error="User memory limit exceeded")],
                        FinalExternalError, 2),
}


def outcome(call) -> tuple:
    """(URI) or (error class, message) of ``call()``."""
    try:
        return (call(),)
    except (BadInputError, FinalExternalError, TransientExternalError) as exc:
        return type(exc), str(exc)


@pytest.fixture
def paths(scripted, started, monkeypatch):
    """Run a script through both paths; return ((outcome, polls) waiting, (outcome, polls) deferrable)."""
    monkeypatch.setattr(operator_module, "_sleep", lambda seconds: None)

    def run(items: list) -> tuple[tuple, tuple]:
        script = scripted(*items)
        waiting = outcome(lambda: make(deferrable=False, poll_error_budget=BUDGET).execute(context={}))
        waiting_polls = len(script.calls)

        script = scripted(*items)
        with pytest.raises(TaskDeferred) as info:
            make(poll_error_budget=BUDGET).execute(context={})
        [event] = run_trigger(info.value.trigger)
        deferrable = outcome(lambda: make().execute_complete({}, event, **info.value.kwargs))
        return (waiting, waiting_polls), (deferrable, len(script.calls))

    return run


@pytest.fixture
def started(monkeypatch):
    from soilclay.composites import earthengine

    monkeypatch.setattr(earthengine.EarthEngineBackend, "start",
                        lambda self, *args: ("projects/p1/operations/OP123", URI))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_paths_make_the_same_poll_error_decision(paths, scenario) -> None:
    items, expected, polls = SCENARIOS[scenario]
    waiting, deferrable = paths(items)
    assert waiting == deferrable
    result, count = waiting
    assert count == polls
    if expected == URI:
        assert result == (URI,)
    else:
        assert result[0] is expected


def test_the_budget_error_names_the_count_on_both_paths(paths) -> None:
    (waiting, _), (deferrable, _) = paths([UNAVAILABLE] * 5)
    assert waiting == deferrable
    assert waiting[0] is TransientExternalError and "3 transient errors in a row" in waiting[1]
    assert "budget 2" in waiting[1] and "503" in waiting[1]
