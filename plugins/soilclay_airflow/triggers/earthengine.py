"""Trigger that waits, in the triggerer, for an Earth Engine export to finish.

``run()`` polls the operation through :class:`EarthEngineHook`, decides with the same pure
:func:`soilclay.composites.ee_operations.export_outcome` as the blocking ``wait_for_export``, and yields
exactly one event; it does not raise for a failed export (the operator's ``execute_complete`` does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from soilclay.composites import ee_operations
from soilclay.errors import FinalExternalError
from soilclay_airflow.hooks.earthengine import EarthEngineHook

DEFAULT_POLL_INTERVAL_S = 30.0


class EarthEngineExportTrigger(BaseTrigger):
    """Poll export ``operation_name`` every ``poll_interval`` s until it ends or ``timeout`` s after
    ``started_at`` (epoch seconds, kept across triggerer restarts; default: now).

    Event payload: ``status`` (``success``, ``failed`` or ``timeout``), ``operation``, ``message``,
    ``destination_uris`` (as Earth Engine reports them: console links) and ``uri`` (the COG the export
    writes, carried through the trigger so the result never depends on the resume kwargs). Polling
    errors Earth Engine calls transient (and network errors) are retried
    until the timeout; final ones (permission, missing operation) end the trigger as ``failed``.
    """

    def __init__(self, operation_name: str, conn_id: str = EarthEngineHook.default_conn_name,
                 poll_interval: float = DEFAULT_POLL_INTERVAL_S, timeout: float = ee_operations.DEFAULT_WAIT_TIMEOUT_S,
                 started_at: float | None = None, uri: str | None = None) -> None:
        super().__init__()
        self.operation_name = operation_name
        self.uri = uri
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.started_at = float(started_at) if started_at is not None else time.time()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "operation_name": self.operation_name, "conn_id": self.conn_id, "poll_interval": self.poll_interval,
            "timeout": self.timeout, "started_at": self.started_at, "uri": self.uri})

    def _hook(self) -> EarthEngineHook:
        return EarthEngineHook(conn_id=self.conn_id)

    def _event(self, status: str, message: str, uris: tuple[str, ...] | list[str] = ()) -> TriggerEvent:
        return TriggerEvent({"status": status, "operation": self.operation_name, "message": message,
                             "destination_uris": list(uris), "uri": self.uri})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        deadline = self.started_at + self.timeout
        last = f"export {self.operation_name} not read yet"
        while True:
            try:
                operation = await hook.aget_operation(self.operation_name)
            except Exception as exc:  # noqa: BLE001 - decided below; the trigger must not die on a poll
                import ee

                if isinstance(exc, ee.EEException):
                    kind = ee_operations.classify_ee_error(str(exc))
                elif isinstance(exc, FinalExternalError | ValueError):  # bad connection or key: no retry helps
                    kind = FinalExternalError
                else:  # network and other I/O trouble
                    kind = None
                if kind is FinalExternalError:
                    yield self._event("failed", f"cannot read Earth Engine operation {self.operation_name}: {exc}")
                    return
                last = f"polling export {self.operation_name} failed ({exc}); retrying"
                self.log.warning("%s", last)
            else:
                try:
                    outcome = ee_operations.export_outcome(operation)
                except Exception as exc:  # noqa: BLE001 - a malformed operation is a failed export, not a crash
                    yield self._event("failed", f"unreadable Earth Engine operation {self.operation_name}: {exc}")
                    return
                if outcome.state == "succeeded":
                    yield self._event("success", outcome.message, outcome.destination_uris)
                    return
                if outcome.state == "failed":
                    yield self._event("failed", outcome.message, outcome.destination_uris)
                    return
                last = outcome.message
                self.log.info("%s", last)
            remaining = deadline - time.time()
            if remaining <= 0:
                yield self._event("timeout", f"Earth Engine export {self.operation_name} still running after "
                                             f"{self.timeout:.0f} s: {last}")
                return
            await asyncio.sleep(min(self.poll_interval, remaining))
