"""Earth Engine export operations, decided without the Earth Engine client: when is an export
done, failed or still running (:func:`export_outcome`), which errors may pass by themselves
(:func:`classify_ee_error`), and the blocking wait (:func:`wait_for_export`).

Shared by the CLI's waiting path and the Airflow operator/trigger. This module does not import
``ee`` at top level, so Airflow DAG files and the triggerer can import it cheaply.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError

DEFAULT_WAIT_TIMEOUT_S = 6 * 3600

ExportState = Literal["running", "succeeded", "failed"]
_ACTIVE = ("PENDING", "RUNNING", "CANCELLING")

_FINAL = re.compile(r"permission|denied|forbidden|unauthori[sz]ed|not authorized|invalid|not found|does not exist"
                    r"|not registered|billing|bad request|too many pixels|memory limit|\b(400|401|403|404)\b")
_TRANSIENT = re.compile(r"quota|rate limit|too many (requests|tasks|concurrent)|internal (server )?error|backend error"
                        r"|timed out|timeout|deadline|unavailable|try again|connection|\b(429|500|502|503|504)\b")


def classify_ee_error(message: str) -> type[Exception]:
    """Which soilclay error an Earth Engine error message is: :class:`TransientExternalError` for
    quota/rate, internal and timeout-like failures (retrying, a bounded number of times, may pass),
    else :class:`FinalExternalError` (permission, invalid argument, missing asset, too many pixels,
    anything unknown). Final patterns win: "permission denied ... try again" stays final."""
    text = message.lower()
    if _FINAL.search(text):
        return FinalExternalError
    if _TRANSIENT.search(text):
        return TransientExternalError
    return FinalExternalError


@dataclass(frozen=True)
class ExportOutcome:
    """Where an export stands: ``running`` (incl. pending and cancelling), ``succeeded`` or
    ``failed`` (incl. cancelled); ``destination_uris`` as Earth Engine reports them."""

    state: ExportState
    message: str
    destination_uris: tuple[str, ...] = ()


def export_outcome(operation: Mapping) -> ExportOutcome:
    """The outcome of an export from its Cloud API operation dict (``ee.data.getOperation``).

    ``metadata.state`` decides when present (Earth Engine may report SUCCEEDED before ``done``);
    otherwise the long-running-operation rule: not done = running, done with ``error`` = failed,
    done without = succeeded.
    """
    if not isinstance(operation, Mapping):
        raise BadInputError(f"expected an Earth Engine operation dict, found {type(operation).__name__}")
    name = operation.get("name", "?")
    metadata = operation.get("metadata") or {}
    state = str(metadata.get("state", "")).upper()
    uris = tuple(metadata.get("destinationUris") or ())
    error = operation.get("error") or {}
    error_text = error.get("message") or (f"error code {error['code']}" if "code" in error else "")
    if state == "SUCCEEDED" and not error:
        return ExportOutcome("succeeded", f"export {name} succeeded", uris)
    if state == "CANCELLED":
        return ExportOutcome("failed", f"export {name} was cancelled" + (f": {error_text}" if error_text else ""), uris)
    if state == "FAILED" or error:
        return ExportOutcome("failed", f"export {name} failed: {error_text or 'no error message'}", uris)
    if operation.get("done") and not state:  # no metadata: done without error is success
        return ExportOutcome("succeeded", f"export {name} succeeded", uris)
    if operation.get("done") and state not in _ACTIVE:
        return ExportOutcome("failed", f"export {name} ended in unexpected state {state}", uris)
    progress = metadata.get("progress")
    detail = f" ({float(progress):.0%})" if isinstance(progress, int | float) else ""
    return ExportOutcome("running", f"export {name} is {state.lower() or 'running'}{detail}", uris)


def wait_for_export(operation_name: str, *, get_operation: Callable[[str], Mapping] | None = None,
                    poll_seconds: float = 30, timeout_seconds: float = DEFAULT_WAIT_TIMEOUT_S,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> ExportOutcome:
    """Poll the export until it is no longer running; return the success outcome.

    Raises :class:`FinalExternalError` when it failed or was cancelled (with Earth Engine's
    message), :class:`TransientExternalError` when it is still running after ``timeout_seconds``
    (the export goes on; waiting again by name is safe).
    """
    import ee

    fetch = get_operation or ee.data.getOperation
    deadline = clock() + timeout_seconds
    while True:
        try:
            outcome = export_outcome(fetch(operation_name))
        except ee.EEException as exc:
            raise classify_ee_error(str(exc))(f"cannot read Earth Engine operation {operation_name}: {exc}") from exc
        if outcome.state == "succeeded":
            return outcome
        if outcome.state == "failed":
            raise FinalExternalError(outcome.message)
        remaining = deadline - clock()
        if remaining <= 0:
            raise TransientExternalError(f"Earth Engine export {operation_name} still running after "
                                         f"{timeout_seconds:.0f} s: {outcome.message}")
        sleep(min(poll_seconds, remaining))
