"""Operations without a server: the export-state decision, the poll-error decision, and the blocking
wait driven by a scripted ``get_operation`` and a fake clock (no real time passes)."""

from __future__ import annotations

import json
import subprocess
import sys

import ee
import pytest

from soilclay.earthengine import operations as ops
from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError


def operation(state: str | None, *, done: bool = False, error: dict | None = None, uris=None, progress=None) -> dict:
    op: dict = {"name": "projects/p/operations/OP1", "done": done}
    if state is not None:
        op["metadata"] = {"state": state, "type": "EXPORT_IMAGE"}
        if uris is not None:
            op["metadata"]["destinationUris"] = uris
        if progress is not None:
            op["metadata"]["progress"] = progress
    if error is not None:
        op["error"] = error
    return op


# --------------------------------------------------------------------------- export state


def test_export_outcome_states():
    assert ops.export_outcome(operation("PENDING")).state == "running"
    running = ops.export_outcome(operation("RUNNING", progress=0.42))
    assert running.state == "running" and "42%" in running.message
    assert ops.export_outcome(operation("CANCELLING")).state == "running"
    uris = ["https://console.developers.google.com/storage/browser/b/p/"]
    # Earth Engine may report SUCCEEDED before done is set
    succeeded = ops.export_outcome(operation("SUCCEEDED", uris=uris))
    assert succeeded == ops.ExportOutcome("succeeded", "export projects/p/operations/OP1 succeeded", tuple(uris))
    failed = ops.export_outcome(operation("FAILED", done=True, error={"code": 3, "message": "Too many pixels"}))
    assert failed.state == "failed" and "Too many pixels" in failed.message
    cancelled = ops.export_outcome(operation("CANCELLED", done=True, error={"code": 1, "message": "Cancelled."}))
    assert cancelled.state == "failed" and "cancelled" in cancelled.message
    assert ops.export_outcome(operation(None, done=True)).state == "succeeded"
    assert ops.export_outcome(operation(None, done=True, error={"code": 13})).message.endswith("error code 13")
    assert ops.export_outcome(operation("UNKNOWN", done=True)).state == "failed"
    assert ops.export_outcome(operation(None)).state == "running"
    with pytest.raises(FinalExternalError, match="operation dict"):  # an unusable answer from Google
        ops.export_outcome(["not", "a", "dict"])  # type: ignore[arg-type]


URI = "gs://soil-bucket/composites/demo/sentinel-2/demo-sentinel-2-0123456789ab-aaaaaaaaaaaa.tif"
#: How Earth Engine reports a Cloud Storage export's destination: a console link to its folder.
HERE = "https://console.developers.google.com/storage/browser/soil-bucket/composites/demo/sentinel-2/"
ELSEWHERE = "https://console.developers.google.com/storage/browser/soil-bucket/staging/demo/sentinel-2/"


def listed_op(name: str, description: str, state: str, uris=None) -> dict:
    metadata: dict = {"description": description, "state": state, "type": "EXPORT_IMAGE"}
    if uris is not None:
        metadata["destinationUris"] = uris
    return {"name": name, "metadata": metadata}


def test_active_operation_picks_a_pending_or_running_one_of_that_description():
    listed = [listed_op("OLD", "d", "SUCCEEDED", [HERE]),
              listed_op("OTHER", "e", "RUNNING", [HERE]),
              listed_op("GOING", "d", "CANCELLING", [HERE]),
              listed_op("LIVE", "d", "pending", [HERE]),
              {"name": "NOMETA"}]
    assert ops.active_operation(listed, "d", URI) == "LIVE"
    assert ops.active_operation(listed, "x", URI) is None
    assert ops.active_operation([], "d", URI) is None


def test_an_operation_of_that_description_writing_elsewhere_is_not_adopted(caplog):
    listed = [listed_op("STAGING", "d", "RUNNING", [ELSEWHERE])]
    with caplog.at_level("WARNING", logger="soilclay.earthengine.operations"):
        assert ops.active_operation(listed, "d", URI) is None
    [record] = caplog.records
    assert "STAGING" in record.getMessage() and ELSEWHERE in record.getMessage() and URI in record.getMessage()
    # the one writing here is adopted even when listed after the other
    listed.append(listed_op("LIVE", "d", "RUNNING", [HERE]))
    assert ops.active_operation(listed, "d", URI) == "LIVE"
    # another bucket, same folder: not the same destination
    other_bucket = HERE.replace("/soil-bucket/", "/other-bucket/")
    assert ops.active_operation([listed_op("OB", "d", "RUNNING", [other_bucket])], "d", URI) is None


def test_an_operation_reporting_no_destination_yet_is_adopted_on_its_description():
    for uris in (None, [], [""]):
        assert ops.active_operation([listed_op("NEW", "d", "PENDING", uris)], "d", URI) == "NEW"


@pytest.mark.parametrize(("reported", "expected"), [
    ([], None),
    ([HERE], True),
    ([HERE.rstrip("/") + "/"], True),
    ([HERE + "?project=p"], True),
    (["https://console.cloud.google.com/storage/browser/soil-bucket/composites/demo/sentinel-2/"], True),
    ([URI], True),
    ([URI.removesuffix(".tif")], True),
    ([URI.removesuffix(".tif") + "-0000000000-0000008192.tif"], True),
    (["https://storage.googleapis.com/soil-bucket/composites/demo/sentinel-2/"
      "demo-sentinel-2-0123456789ab-aaaaaaaaaaaa.tif"], True),
    ([ELSEWHERE, HERE], True),
    ([ELSEWHERE], False),
    (["https://console.developers.google.com/storage/browser/soil-bucket/composites/demo/"], False),
    (["https://console.developers.google.com/storage/browser/soil-bucket/"], False),
    ([URI.replace("aaaaaaaaaaaa", "aaaaaaaaaaab")], False),
    ([URI.removesuffix(".tif") + "-x.tif"], False),
    (["gs://other-bucket/composites/demo/sentinel-2/demo-sentinel-2-0123456789ab-aaaaaaaaaaaa.tif"], False),
    (["https://test.com"], False),  # a form not understood is not taken for a match
])
def test_destination_matches(reported, expected):
    assert ops.destination_matches(reported, URI) is expected


def test_destination_at_the_bucket_root():
    root = "gs://soil-bucket/s1.tif"
    assert ops.destination_matches(["https://console.developers.google.com/storage/browser/soil-bucket/"], root)
    assert not ops.destination_matches([HERE], root)
    with pytest.raises(BadInputError, match="gs:// URI"):
        ops.destination_matches([HERE], "https://soil-bucket/x/")
    with pytest.raises(BadInputError, match="gs:// URI"):
        ops.destination_matches([], "gs://soil-bucket/")


# --------------------------------------------------------------------------- poll-error decision

TRANSIENT = ee.EEException("Service unavailable (503)")
FINAL = ee.EEException("Permission denied on project p1")


def test_transient_errors_are_retried_within_the_budget_then_fail_retryably():
    first = ops.decide_poll_error(TRANSIENT, "OP1", 0, budget=2)
    assert first.retry and first.consecutive == 1 and isinstance(first.error, TransientExternalError)
    assert first.message == "cannot read Earth Engine operation OP1: Service unavailable (503)"
    second = ops.decide_poll_error(TRANSIENT, "OP1", first.consecutive, budget=2)
    assert second.retry and second.consecutive == 2
    third = ops.decide_poll_error(TRANSIENT, "OP1", second.consecutive, budget=2)
    assert not third.retry and isinstance(third.error, TransientExternalError)
    assert "3 transient errors in a row" in third.message and "budget 2" in third.message
    assert third.error.__cause__ is TRANSIENT
    assert not ops.decide_poll_error(ConnectionResetError("reset"), "OP1", 0, budget=0).retry


@pytest.mark.parametrize(("exc", "expected"), [
    (FINAL, FinalExternalError),
    (BadInputError("Airflow connection 'x' has no 'project' extra"), BadInputError),
    (FinalExternalError("already translated"), FinalExternalError),
])
def test_final_and_configuration_errors_fail_at_once(exc, expected):
    decision = ops.decide_poll_error(exc, "OP1", 3, budget=5)
    assert not decision.retry and type(decision.error) is expected and decision.consecutive == 0
    if isinstance(exc, expected):
        assert decision.error is exc  # soilclay's own errors are not wrapped again


def test_a_bug_is_not_retried_and_not_disguised():
    bug = KeyError("metadata")
    decision = ops.decide_poll_error(bug, "OP1")
    assert not decision.retry and decision.error is bug and decision.message == "KeyError: 'metadata'"


# --------------------------------------------------------------------------- blocking wait


class FakeTime:
    """A clock that only moves when the waiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*items: dict | BaseException):
    """A ``get_operation`` answering (or raising) the items in order."""
    answers = iter(items)
    asked: list[str] = []

    def get_operation(name: str) -> dict:
        asked.append(name)
        item = next(answers)
        if isinstance(item, BaseException):
            raise item
        return item

    get_operation.asked = asked  # type: ignore[attr-defined]
    return get_operation


def wait(get, fake: FakeTime, **kwargs) -> ops.ExportOutcome:
    return ops.wait_for_export("OP1", get_operation=get, sleep=fake.sleep, clock=fake.clock,
                               **{"poll_seconds": 30, **kwargs})


def test_wait_for_export_success():
    fake = FakeTime()
    get = scripted(operation("PENDING"), operation("RUNNING"), operation("SUCCEEDED", done=True, uris=["gs://b/x"]))
    outcome = wait(get, fake)
    assert outcome.state == "succeeded" and outcome.destination_uris == ("gs://b/x",)
    assert fake.sleeps == [30, 30] and get.asked == ["OP1"] * 3


def test_wait_for_export_failure():
    get = scripted(operation("RUNNING"), operation("FAILED", done=True, error={"code": 7, "message": "No access"}))
    with pytest.raises(FinalExternalError, match="No access"):
        wait(get, FakeTime())


def test_wait_for_export_timeout():
    fake = FakeTime()
    with pytest.raises(TransientExternalError, match="still running after 100 s"):
        wait(scripted(*[operation("RUNNING")] * 10), fake, timeout_seconds=100)
    assert fake.sleeps == [30, 30, 30, 10]


def test_wait_for_export_retries_a_transient_poll_error():
    fake = FakeTime()
    get = scripted(operation("RUNNING"), TRANSIENT, operation("SUCCEEDED", done=True))
    assert wait(get, fake).state == "succeeded"
    assert len(get.asked) == 3 and fake.sleeps == [30, 30]


def test_wait_for_export_fails_after_the_budget_of_consecutive_transient_errors():
    fake = FakeTime()
    get = scripted(TRANSIENT, TRANSIENT, TRANSIENT, operation("SUCCEEDED", done=True))
    with pytest.raises(TransientExternalError, match="3 transient errors in a row") as info:
        wait(get, fake, poll_error_budget=2)
    assert len(get.asked) == 3 and info.value.__cause__ is TRANSIENT


def test_a_good_read_resets_the_count_of_consecutive_errors():
    get = scripted(TRANSIENT, operation("RUNNING"), TRANSIENT, operation("RUNNING"), TRANSIENT,
                   operation("SUCCEEDED", done=True))
    assert wait(get, FakeTime(), poll_error_budget=1).state == "succeeded"


def test_wait_for_export_fails_at_once_on_a_final_poll_error():
    fake = FakeTime()
    get = scripted(FINAL, operation("SUCCEEDED", done=True))
    with pytest.raises(FinalExternalError, match="cannot read Earth Engine operation OP1: Permission denied"):
        wait(get, fake)
    assert get.asked == ["OP1"] and fake.sleeps == []


def test_wait_for_export_lets_a_bug_through_unchanged():
    with pytest.raises(KeyError, match="metadata"):
        wait(scripted(KeyError("metadata")), FakeTime())


def test_wait_for_export_defaults_to_ee_data_get_operation(monkeypatch):
    monkeypatch.setattr(ee.data, "getOperation", lambda name: {"name": name, "done": True})
    assert ops.wait_for_export("OP9", sleep=pytest.fail).message == "export OP9 succeeded"


def test_operations_import_without_the_earth_engine_client():
    code = ("import json, sys; import soilclay.earthengine.operations, soilclay.earthengine.errors, "
            "soilclay.earthengine.assets; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('ee', 'googleapiclient', 'httplib2') or m.startswith('google.auth'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == []
