"""Airflow plugin tests: ``plugins/`` on ``sys.path`` and a throw-away ``AIRFLOW_HOME`` come from
``tests/airflow_env.py`` (root conftest). No metadata database is needed: connections come from
``AIRFLOW_CONN_*`` environment variables and operators/triggers are driven directly. Time is fake:
triggers run on :class:`FakeTime`, the operator's waiting path on a patched ``_sleep``."""

from __future__ import annotations

import asyncio
import json

import pytest

OPERATION = "projects/p1/operations/OP123"
URI = "gs://bucket/composites/demo-s2.tif"
DEST = ["https://console.developers.google.com/storage/browser/bucket/composites/"]


def operation(state: str, *, done: bool = False, error: str | None = None, name: str = OPERATION) -> dict:
    """A Cloud API export operation dict as ``ee.data.getOperation`` returns it."""
    op: dict = {"name": name, "metadata": {"state": state, "destinationUris": DEST if state == "SUCCEEDED" else []}}
    if done:
        op["done"] = True
    if error:
        op["error"] = {"code": 3, "message": error}
    return op


class Script:
    """A scripted ``get_operation``: returns (or raises) the next item, repeating the last one."""

    def __init__(self, *items: dict | BaseException) -> None:
        self.items = list(items)
        self.calls: list[str] = []

    def __call__(self, name: str) -> dict:
        self.calls.append(name)
        item = self.items.pop(0) if len(self.items) > 1 else self.items[0]
        if isinstance(item, BaseException):
            raise item
        return item


class FakeTime:
    """A trigger's clock that only moves when the trigger sleeps; records the sleeps."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def run_trigger(trigger, fake: FakeTime | None = None) -> list[dict]:
    """Every event payload ``trigger.run()`` yields, on fake time (started at ``fake.now`` unless the
    trigger names its own ``started_at``); a looping trigger fails after 10 s of real time."""
    fake = fake or FakeTime(trigger.started_at)
    trigger.clock, trigger.sleep = fake.clock, fake.sleep

    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=10))


@pytest.fixture
def gcp_conn(monkeypatch):
    """Set ``AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT`` with the given extras."""

    def set_conn(**extra) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
                           json.dumps({"conn_type": "google_cloud_platform", "extra": extra}))

    return set_conn


@pytest.fixture
def scripted(monkeypatch):
    """Patch the hook: no Earth Engine initialisation; ``get_operation`` follows a :class:`Script`."""
    from soilclay_airflow.hooks.earthengine import EarthEngineHook

    def install(*items: dict | BaseException) -> Script:
        script = Script(*items)
        monkeypatch.setattr(EarthEngineHook, "initialize", lambda self: None)
        monkeypatch.setattr(EarthEngineHook, "get_operation", lambda self, name: script(name))
        return script

    return install

