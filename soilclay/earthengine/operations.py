"""Earth Engine long-running operations (exports), decided without the Earth Engine client.

Two pure decisions are shared by every waiting path (the CLI's :func:`wait_for_export`, the Airflow
operator's waiting mode, and the deferrable trigger), so all agree on what they mean:

- :func:`export_outcome`: from an operation dict, is the export running, succeeded or failed?
- :func:`decide_poll_error`: reading the operation failed; retry or fail? Transient errors are
  retried while fewer than ``budget + 1`` come in a row (a good read resets the count); a final
  error, a configuration error or a bug fails at once. Classes follow
  :mod:`soilclay.earthengine.errors`.

A third, :func:`active_operation`, decides whether a listed operation is the export a retry would
start anyway (same description, same destination), so that it can be adopted instead.

This module does not import ``ee`` at module level: Airflow DAG files and the triggerer import it.
"""

from __future__ import annotations

import logging
import posixpath
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from soilclay.earthengine.errors import translate
from soilclay.errors import BadInputError, FinalExternalError, SoilclayError, TransientExternalError

DEFAULT_WAIT_TIMEOUT_S = 6 * 3600
DEFAULT_POLL_INTERVAL_S = 30.0
#: Consecutive transient poll errors retried; one more fails the wait (with a retryable error).
DEFAULT_POLL_ERROR_BUDGET = 5

ExportState = Literal["running", "succeeded", "failed"]
_ACTIVE = ("PENDING", "RUNNING", "CANCELLING")
#: States of an export that may be adopted by a retry (a cancelling one will not write its file).
_ADOPTABLE = ("PENDING", "RUNNING")
#: Hosts and path heads under which a ``destinationUris`` entry names ``bucket/path``: Earth Engine
#: reports Cloud Storage destinations as console links (``https://console.developers.google.com/
#: storage/browser/<bucket>/<folder>/``); gs:// URIs and storage.googleapis.com links are read too.
_CONSOLE_HOSTS = ("console.developers.google.com", "console.cloud.google.com")
_STORAGE_HOSTS = ("storage.googleapis.com", "storage.cloud.google.com")

log = logging.getLogger(__name__)


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
    done without = succeeded. Anything but a dict is an unusable answer: :class:`FinalExternalError`.
    """
    if not isinstance(operation, Mapping):
        raise FinalExternalError(f"expected an Earth Engine operation dict, found {type(operation).__name__}")
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


@dataclass(frozen=True)
class PollErrorDecision:
    """What a failed read of an operation means: ``retry`` (poll again after the interval) or stop
    with ``error`` (a soilclay error; the original exception when it is a bug). ``consecutive``
    counts the transient errors in a row, this one included; pass it to the next decision."""

    retry: bool
    error: BaseException
    consecutive: int

    @property
    def message(self) -> str:
        """The error's text; a bug's with its type (``KeyError: 'metadata'``)."""
        if isinstance(self.error, SoilclayError):
            return str(self.error)
        return f"{type(self.error).__name__}: {self.error}"


def decide_poll_error(exc: BaseException, operation_name: str, consecutive: int = 0,
                      budget: int = DEFAULT_POLL_ERROR_BUDGET) -> PollErrorDecision:
    """Decide on ``exc``, raised while reading ``operation_name`` after ``consecutive`` transient
    errors in a row: retry a transient error while the count stays within ``budget``; fail at once
    on anything else. Exhausting the budget fails with a :class:`TransientExternalError` (the
    export itself may be fine: a retried task finds it running and waits again)."""
    error = translate(exc, f"cannot read Earth Engine operation {operation_name}")
    if not isinstance(error, TransientExternalError):
        return PollErrorDecision(False, error, 0)
    count = consecutive + 1
    if count <= budget:
        return PollErrorDecision(True, error, count)
    exhausted = TransientExternalError(f"{count} transient errors in a row reading Earth Engine operation "
                                       f"{operation_name} (budget {budget}); last: {exc}")
    exhausted.__cause__ = exc
    return PollErrorDecision(False, exhausted, count)


def _gcs_location(uri: str) -> tuple[str, str] | None:
    """``(bucket, path)`` named by a gs:// URI or a Cloud Storage console/storage link, else None.
    A path ending in ``/`` (or empty) names a folder."""
    parts = urlsplit(uri.strip())
    if parts.scheme == "gs":
        bucket, path = parts.netloc, parts.path.lstrip("/")
    elif parts.scheme in ("http", "https") and parts.netloc in _CONSOLE_HOSTS:
        rest = unquote(parts.path).lstrip("/")
        if not rest.startswith("storage/browser/"):
            return None
        rest = rest.removeprefix("storage/browser/").removeprefix("_details/")
        bucket, _, path = rest.partition("/")
    elif parts.scheme in ("http", "https") and parts.netloc in _STORAGE_HOSTS:
        bucket, _, path = unquote(parts.path).lstrip("/").partition("/")
    else:
        return None
    return (bucket, path) if bucket else None


def destination_matches(reported: Iterable[str], expected_uri: str) -> bool | None:
    """Does an operation whose ``metadata.destinationUris`` is ``reported`` write ``expected_uri``
    (``gs://bucket/path/name.tif``, see :func:`soilclay.earthengine.assets.cog_uri`)?

    None when nothing is reported (unknown); True when one entry names the expected file, its
    folder (how Earth Engine reports Cloud Storage exports), its prefix without ``.tif`` or one of
    its mosaic tiles (``<prefix>-<row>-<col>.tif``); False otherwise, also for entries in a form
    not understood (adopting the wrong export is worse than starting a second one).
    """
    expected = _gcs_location(expected_uri)
    if expected is None or not expected[1] or expected[1].endswith("/"):
        raise BadInputError(f"expected the gs:// URI of an export's file, found {expected_uri!r}")
    reported = [uri for uri in reported if isinstance(uri, str) and uri.strip()]
    if not reported:
        return None
    bucket, path = expected
    stem = path.removesuffix(".tif")
    folder = posixpath.dirname(path)
    tile = re.compile(re.escape(stem) + r"-\d+-\d+\.tif")
    for uri in reported:
        location = _gcs_location(uri)
        if location is None or location[0] != bucket:
            continue
        other = location[1]
        if not other or other.endswith("/"):
            if other.rstrip("/") == folder:
                return True
        elif other in (path, stem) or tile.fullmatch(other):
            return True
    return False


def active_operation(operations: Iterable[Mapping], description: str, destination: str) -> str | None:
    """The name of the first pending or running operation of a ``listOperations`` answer that is the
    export of ``description`` to ``destination`` (the gs:// URI of its file), else None.

    The rule (see :func:`destination_matches`): the description must match, and the operation's
    ``metadata.destinationUris`` must name the same destination or name none. Earth Engine's
    OperationMetadata carries ``description``, ``state``, ``type`` and ``destinationUris``; nothing
    guarantees the URIs are filled in while an export is still pending, and a description from
    :func:`soilclay.earthengine.assets.export_description` already carries a digest of the full
    export name, so a description match with no destination reported is adopted. An operation of
    the same description that reports another destination is not (a warning names both).
    """
    for op in operations:
        metadata = op.get("metadata") or {}
        if metadata.get("description") != description:
            continue
        if str(metadata.get("state", "")).upper() not in _ADOPTABLE:
            continue
        uris = metadata.get("destinationUris") or ()
        if isinstance(uris, str):
            uris = (uris,)
        if destination_matches(uris, destination) is False:
            log.warning("Earth Engine export %s (description %s) writes to %s, not to %s: not adopting it",
                        op.get("name"), description, ", ".join(map(str, uris)), destination)
            continue
        return op.get("name")
    return None


def wait_for_export(operation_name: str, *, get_operation: Callable[[str], Mapping] | None = None,
                    poll_seconds: float = DEFAULT_POLL_INTERVAL_S, timeout_seconds: float = DEFAULT_WAIT_TIMEOUT_S,
                    poll_error_budget: int = DEFAULT_POLL_ERROR_BUDGET,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> ExportOutcome:
    """Poll the export until it is no longer running; return the success outcome.

    ``get_operation`` defaults to ``ee.data.getOperation``; ``sleep`` and ``clock`` are injectable.
    Raises :class:`FinalExternalError` when the export failed or was cancelled (with Earth Engine's
    message), the error of :func:`decide_poll_error` when reading it fails for good, and
    :class:`TransientExternalError` when it is still running after ``timeout_seconds`` (the export
    goes on; waiting again by name is safe).
    """
    if get_operation is None:
        import ee

        get_operation = ee.data.getOperation
    deadline = clock() + timeout_seconds
    consecutive = 0
    while True:
        try:
            operation = get_operation(operation_name)
        except Exception as exc:
            decision = decide_poll_error(exc, operation_name, consecutive, poll_error_budget)
            if not decision.retry:
                if decision.error is exc:
                    raise
                raise decision.error from exc
            consecutive, last = decision.consecutive, decision.message
        else:
            outcome = export_outcome(operation)
            if outcome.state == "succeeded":
                return outcome
            if outcome.state == "failed":
                raise FinalExternalError(outcome.message)
            consecutive, last = 0, outcome.message
        remaining = deadline - clock()
        if remaining <= 0:
            raise TransientExternalError(f"Earth Engine export {operation_name} still running after "
                                         f"{timeout_seconds:.0f} s: {last}")
        sleep(min(poll_seconds, remaining))
