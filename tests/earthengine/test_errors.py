"""The error rule of :mod:`soilclay.earthengine.errors`: which soilclay error every kind of Earth
Engine, HTTP, auth and network failure becomes, and that bugs are never disguised."""

from __future__ import annotations

import socket

import ee
import httplib2
import pytest
from google.auth import exceptions as auth
from googleapiclient.errors import HttpError

from soilclay.earthengine import errors
from soilclay.errors import BadInputError, FinalExternalError, NotReadyError, TransientExternalError


@pytest.mark.parametrize(("message", "expected"), [
    ("Quota exceeded for quota metric 'Concurrent exports'", TransientExternalError),
    ("Too many tasks already in the queue (3000). Please wait for some of them to complete.", TransientExternalError),
    ("Internal error.", TransientExternalError),
    ("Computation timed out.", TransientExternalError),
    ("<HttpError 503 when requesting ... returned 'The service is currently unavailable.'>", TransientExternalError),
    ("Request Timeout (408)", TransientExternalError),
    ("Permission denied on resource project foo.", FinalExternalError),
    ("Caller does not have required permission to use project x", FinalExternalError),
    ("Invalid argument: maxPixels", FinalExternalError),
    ("Image.load: Image asset 'COPERNICUS/NOPE' not found.", FinalExternalError),
    ("Export too large: specified 2000000000 pixels (max: 100000000). Too many pixels", FinalExternalError),
    ("User memory limit exceeded.", FinalExternalError),
    ("Permission denied; try again later", FinalExternalError),
    ("Project soil-project is not registered to use Earth Engine", FinalExternalError),
    ("something nobody has seen before", FinalExternalError),
])
def test_classify_message(message, expected):
    assert errors.classify_message(message) is expected
    assert errors.error_class(ee.EEException(message)) is expected


def http_error(status: int) -> HttpError:
    return HttpError(httplib2.Response({"status": status}), b'{"error": {"message": "boom"}}', uri="https://x")


@pytest.mark.parametrize(("exc", "expected"), [
    (http_error(503), TransientExternalError),
    (http_error(429), TransientExternalError),
    (http_error(403), FinalExternalError),
    (http_error(400), FinalExternalError),
    (auth.TransportError("connection aborted"), TransientExternalError),
    (auth.RefreshError("temporarily unavailable", retryable=True), TransientExternalError),
    (auth.RefreshError("invalid_grant: account deleted"), FinalExternalError),
    (auth.DefaultCredentialsError("no default credentials"), BadInputError),
    (ConnectionResetError("reset by peer"), TransientExternalError),
    (TimeoutError("timed out"), TransientExternalError),
    (socket.gaierror("name resolution"), TransientExternalError),
    (httplib2.ServerNotFoundError("Unable to find the server"), TransientExternalError),
    (BadInputError("no project"), BadInputError),
    (NotReadyError("no champion"), NotReadyError),
    (KeyError("metadata"), None),
    (TypeError("bug"), None),
])
def test_error_class_of_every_kind_of_failure(exc, expected):
    assert errors.error_class(exc) is expected


def test_translate_names_what_failed_and_keeps_the_cause():
    cause = ee.EEException("Service unavailable (503)")
    error = errors.translate(cause, "listing scenes")
    assert isinstance(error, TransientExternalError) and str(error) == "listing scenes: Service unavailable (503)"
    assert error.__cause__ is cause
    own, bug = FinalExternalError("already translated"), KeyError("x")
    assert errors.translate(own, "again") is own and errors.translate(bug, "reading") is bug


def test_translated_raises_soilclay_errors_and_lets_bugs_through():
    with pytest.raises(FinalExternalError, match="^starting: Permission denied$") as info:
        with errors.translated("starting"):
            raise ee.EEException("Permission denied")
    assert isinstance(info.value.__cause__, ee.EEException)
    with pytest.raises(KeyError):
        with errors.translated("starting"):
            raise KeyError("a bug stays a bug")
    own = BadInputError("mine")
    with pytest.raises(BadInputError) as info:
        with errors.translated("starting"):
            raise own
    assert info.value is own


def test_kinds_round_trip_through_json_names():
    for name, cls in errors.KINDS.items():
        assert errors.kind_of(cls("x")) == name
        again = errors.error_of_kind(name, "message")
        assert type(again) is cls and str(again) == "message"
    assert errors.kind_of(NotReadyError("x")) == "bad_input"
    assert errors.kind_of(KeyError("bug")) == "final"
    assert type(errors.error_of_kind(None, "m")) is FinalExternalError
    assert type(errors.error_of_kind("nonsense", "m")) is FinalExternalError
