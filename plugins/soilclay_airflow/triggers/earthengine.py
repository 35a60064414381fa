"""Trigger that waits, in the triggerer, for an Earth Engine export to finish.

``run()`` polls the operation through :class:`EarthEngineHook` and decides with the same pure
functions as the blocking :func:`soilclay.earthengine.operations.wait_for_export`:
:func:`~soilclay.earthengine.operations.export_outcome` for the export's state and
:func:`~soilclay.earthengine.operations.decide_poll_error` for a failed read (transient errors are
retried up to a budget of consecutive ones). It yields exactly one event and never raises for a
failed export: the operator's ``execute_complete`` raises the error the event names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from soilclay.earthengine import operations
from soilclay.earthengine.errors import kind_of
from soilclay_airflow.hooks.earthengine import EarthEngineHook

DEFAULT_POLL_INTERVAL_S = operations.DEFAULT_POLL_INTERVAL_S


class EarthEngineExportTrigger(BaseTrigger):
    """Poll export ``operation_name`` every ``poll_interval`` s until it ends or ``timeout`` s after
    ``started_at`` (epoch seconds, kept across triggerer restarts; default: now).

    Event payload: ``status`` (``success``, ``failed``, ``timeout`` or ``error`` when reading the
    operation failed for good), ``error_kind`` (the soilclay error the operator raises: ``final``,
    ``transient`` or ``bad_input``; absent on success), ``operation``, ``message``,
    ``destination_uris`` (as Earth Engine reports them: console links) and ``uri`` (the COG the
    export writes, carried through the trigger so the result never depends on the resume kwargs).
    """

    #: Time, injectable per instance (tests use a fake clock); not serialised.
    clock: Callable[[], float] = staticmethod(time.time)
    sleep: Callable[[float], Awaitable[Any]] = staticmethod(asyncio.sleep)

    def __init__(self, operation_name: str, conn_id: str = EarthEngineHook.default_conn_name,
                 poll_interval: float = DEFAULT_POLL_INTERVAL_S, timeout: float = operations.DEFAULT_WAIT_TIMEOUT_S,
                 started_at: float | None = None, uri: str | None = None,
                 poll_error_budget: int = operations.DEFAULT_POLL_ERROR_BUDGET) -> None:
        super().__init__()
        self.operation_name = operation_name
        self.uri = uri
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.started_at = float(started_at) if started_at is not None else self.clock()
        self.poll_error_budget = int(poll_error_budget)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "operation_name": self.operation_name, "conn_id": self.conn_id, "poll_interval": self.poll_interval,
            "timeout": self.timeout, "started_at": self.started_at, "uri": self.uri,
            "poll_error_budget": self.poll_error_budget})

    def _hook(self) -> EarthEngineHook:
        return EarthEngineHook(conn_id=self.conn_id)

    def _event(self, status: str, message: str, uris: tuple[str, ...] | list[str] = (),
               kind: str | None = None) -> TriggerEvent:
        payload = {"status": status, "operation": self.operation_name, "message": message,
                   "destination_uris": list(uris), "uri": self.uri}
        if kind is not None:
            payload["error_kind"] = kind
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        deadline = self.started_at + self.timeout
        consecutive = 0
        last = f"export {self.operation_name} not read yet"
        while True:
            try:
                operation = await hook.aget_operation(self.operation_name)
            except Exception as exc:  # noqa: BLE001 - decided by the shared decision, never fatal to the triggerer
                decision = operations.decide_poll_error(exc, self.operation_name, consecutive,
                                                        self.poll_error_budget)
                if not decision.retry:
                    yield self._event("error", decision.message, kind=kind_of(decision.error))
                    return
                consecutive, last = decision.consecutive, decision.message
                self.log.warning("%s; retrying (%d in a row)", last, consecutive)
            else:
                try:
                    outcome = operations.export_outcome(operation)
                except Exception as exc:  # noqa: BLE001 - a malformed operation is a failed export, not a crash
                    yield self._event("failed", f"unreadable Earth Engine operation {self.operation_name}: {exc}",
                                      kind="final")
                    return
                if outcome.state == "succeeded":
                    yield self._event("success", outcome.message, outcome.destination_uris)
                    return
                if outcome.state == "failed":
                    yield self._event("failed", outcome.message, outcome.destination_uris, kind="final")
                    return
                consecutive, last = 0, outcome.message
                self.log.info("%s", last)
            remaining = deadline - self.clock()
            if remaining <= 0:
                yield self._event("timeout", f"Earth Engine export {self.operation_name} still running after "
                                             f"{self.timeout:.0f} s: {last}", kind="transient")
                return
            await self.sleep(min(self.poll_interval, remaining))
