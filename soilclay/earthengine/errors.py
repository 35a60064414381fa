"""Earth Engine failures translated into soilclay's error tree, once, at this boundary.

The rule, applied by every module of :mod:`soilclay.earthengine` and the Earth Engine backends:

- :class:`~soilclay.errors.BadInputError`: soilclay's own configuration or input is wrong, which is
  known without Google's answer: an empty project id (wherever it comes from: settings, an Airflow
  connection), half a service-account login, a missing, unreadable or malformed key, no credentials
  on this machine, a malformed GeoJSON geometry. Fix the configuration; retrying will not help.
- :class:`~soilclay.errors.FinalExternalError`: Google answered and refused for good: permission or
  authentication refused, invalid argument, missing asset or operation, too many pixels, memory
  limit, a project not registered for Earth Engine, an answer of the wrong shape, a failed export,
  and any message not known to be transient (a new kind of error is not retried forever).
- :class:`~soilclay.errors.TransientExternalError`: Google or the network failed in a way that may
  pass: quota and rate limits, internal or backend errors, HTTP 408/429/5xx, timeouts, connection
  trouble. Final message patterns win: "permission denied; try again" stays final.

Exceptions that are no external failure (a ``KeyError``: a bug) are not translated. Nothing here
imports ``ee`` at module level.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from contextlib import contextmanager

from soilclay.errors import BadInputError, FinalExternalError, SoilclayError, TransientExternalError

_FINAL = re.compile(r"permission|denied|forbidden|unauthori[sz]ed|not authorized|invalid|not found|does not exist"
                    r"|not registered|billing|bad request|too many pixels|memory limit|\b(400|401|403|404)\b")
_TRANSIENT = re.compile(r"quota|rate limit|too many (requests|tasks|concurrent)|internal (server )?error|backend error"
                        r"|timed out|timeout|deadline|unavailable|try again|connection|\b(408|429|500|502|503|504)\b")

#: Names of the error classes as they travel in Airflow trigger events (JSON).
KINDS: dict[str, type[SoilclayError]] = {
    "bad_input": BadInputError, "final": FinalExternalError, "transient": TransientExternalError}


def classify_message(message: str) -> type[SoilclayError]:
    """The class of an Earth Engine error message: transient for quota, rate, internal and
    timeout-like failures, else final (permission, invalid argument, missing asset, unknown)."""
    text = message.lower()
    if _FINAL.search(text):
        return FinalExternalError
    if _TRANSIENT.search(text):
        return TransientExternalError
    return FinalExternalError


def _is_ee_exception(exc: BaseException) -> bool:
    try:
        import ee
    except ImportError:  # pragma: no cover - the client is a dependency; without it nothing raises its errors
        return False
    return isinstance(exc, ee.EEException)


def _http_class(exc: BaseException) -> type[SoilclayError] | None:
    """By HTTP status, for ``googleapiclient`` errors that escaped ``ee``'s own translation."""
    from googleapiclient.errors import HttpError

    if not isinstance(exc, HttpError):
        return None
    status = int(getattr(exc, "status_code", None) or getattr(exc.resp, "status", 0) or 0)
    return TransientExternalError if status in (408, 429) or status >= 500 else FinalExternalError


def _auth_class(exc: BaseException) -> type[SoilclayError] | None:
    from google.auth import exceptions as auth

    if isinstance(exc, auth.DefaultCredentialsError | auth.MalformedError):
        return BadInputError  # nothing usable configured on this machine
    if isinstance(exc, auth.TransportError | auth.TimeoutError) or (
            isinstance(exc, auth.GoogleAuthError) and exc.retryable):
        return TransientExternalError
    return FinalExternalError if isinstance(exc, auth.GoogleAuthError) else None


def error_class(exc: BaseException) -> type[SoilclayError] | None:
    """The soilclay error class of ``exc`` (its own class when it already is one), or None when it
    is no external failure and must propagate unchanged."""
    if isinstance(exc, SoilclayError):
        return type(exc)
    if _is_ee_exception(exc):
        return classify_message(str(exc))
    kind = _http_class(exc) or _auth_class(exc)
    if kind is not None:
        return kind
    import httplib2

    if isinstance(exc, OSError | http.client.HTTPException | httplib2.HttpLib2Error):
        return TransientExternalError  # network and I/O trouble: reset, DNS, socket timeout, requests' errors
    return None


def translate(exc: BaseException, doing: str) -> BaseException:
    """The soilclay error for ``exc`` met while ``doing`` (its cause set to ``exc``); ``exc`` itself
    when it already is a soilclay error or is no external failure."""
    kind = error_class(exc)
    if kind is None or isinstance(exc, SoilclayError):
        return exc
    error = kind(f"{doing}: {exc}")
    error.__cause__ = exc
    return error


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Run the block; an external failure inside is raised as its soilclay error (see :func:`translate`)."""
    try:
        yield
    except Exception as exc:
        error = translate(exc, doing)
        if error is exc:
            raise
        raise error from exc


def kind_of(error: BaseException) -> str:
    """The :data:`KINDS` name of ``error``'s class; anything else (a bug) counts as final."""
    for name, cls in KINDS.items():
        if isinstance(error, cls):
            return name
    return "final"


def error_of_kind(kind: str | None, message: str) -> SoilclayError:
    """The error :func:`kind_of` named (final when the name is unknown), with ``message``."""
    return KINDS.get(kind or "", FinalExternalError)(message)
