"""Initialising Earth Engine: explicit project, credentials, and the error rule for configuration
mistakes (bad input) versus Google's refusals (final or transient). ``ee.Initialize`` is faked."""

from __future__ import annotations

import json
import os

import ee
import pytest

from soilclay.earthengine import session
from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError

SECRET = "TOPSECRETKEYMATERIAL"
KEY = {"type": "service_account", "client_email": "etl@p1.iam.gserviceaccount.com", "private_key": SECRET}


@pytest.fixture
def fake_initialize(monkeypatch) -> list[tuple]:
    seen: list[tuple] = []
    monkeypatch.setattr(ee, "Initialize", lambda credentials=None, **kw: seen.append((credentials, kw)))
    monkeypatch.setattr(ee, "ServiceAccountCredentials", lambda email, key_file: ("sa-credentials", email, key_file))
    return seen


@pytest.mark.parametrize("project", ["", "   ", None])
def test_a_missing_project_is_bad_input(fake_initialize, project):
    with pytest.raises(BadInputError, match="explicit Google Cloud project"):
        session.initialize(project)  # type: ignore[arg-type]
    assert fake_initialize == []


def test_initialize_passes_project_and_credentials(fake_initialize):
    session.initialize(" soil-project ")
    session.initialize("soil-project", service_account="sa@p.iam.gserviceaccount.com", key_file="/keys/sa.json")
    assert fake_initialize == [
        ("persistent", {"project": "soil-project"}),
        (("sa-credentials", "sa@p.iam.gserviceaccount.com", "/keys/sa.json"), {"project": "soil-project"}),
    ]
    with pytest.raises(BadInputError, match="both service_account and key_file"):
        session.initialize("soil-project", service_account="sa@p.iam.gserviceaccount.com")
    with pytest.raises(BadInputError, match="both service_account and key_file"):
        session.initialize("soil-project", key_file="/keys/sa.json")


def test_unreadable_or_malformed_key_files_are_bad_input_and_never_quoted(monkeypatch, tmp_path):
    monkeypatch.setattr(ee, "Initialize", lambda *a, **k: pytest.fail("must not initialise"))
    with pytest.raises(BadInputError, match="cannot read .*missing.json"):
        session.initialize("p1", "sa@p1", str(tmp_path / "missing.json"))
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"private_key": "' + SECRET + '", oops')
    with pytest.raises(BadInputError, match="not a usable key") as info:
        session.initialize("p1", "sa@p1", str(garbled))
    assert SECRET not in str(info.value) and info.value.__cause__ is None


@pytest.mark.parametrize(("message", "expected"), [
    ("Permission denied: project soil-project is not registered", FinalExternalError),
    ("Too many requests (429)", TransientExternalError),
    ("Please authorize access to your Earth Engine account by running\n\nearthengine authenticate\n\n"
     "in your command line, or ee.Authenticate() in Python, and then retry.", BadInputError),
])
def test_google_answers_are_translated(monkeypatch, message, expected):
    def refuse(credentials=None, **kw):
        raise ee.EEException(message)

    monkeypatch.setattr(ee, "Initialize", refuse)
    with pytest.raises(expected, match="soil-project"):
        session.initialize("soil-project")


def test_initialize_with_key_uses_a_private_temporary_file(monkeypatch):
    seen: list[tuple] = []

    def fake(project, service_account=None, key_file=None):
        seen.append((project, service_account, json.loads(open(key_file).read()), os.stat(key_file).st_mode & 0o777,
                     key_file))

    monkeypatch.setattr(session, "initialize", fake)
    session.initialize_with_key("p1", KEY)
    [(project, account, content, mode, path)] = seen
    assert (project, account, content, mode) == ("p1", KEY["client_email"], KEY, 0o600)
    assert not os.path.exists(path)
    session.initialize_with_key("p1", KEY, "other@p1.iam.gserviceaccount.com")
    assert seen[-1][1] == "other@p1.iam.gserviceaccount.com"
    with pytest.raises(BadInputError, match="client_email"):
        session.initialize_with_key("p1", {"private_key": SECRET})


def test_read_key_file(tmp_path):
    path = tmp_path / "key.json"
    path.write_text(json.dumps(KEY))
    assert session.read_key_file(str(path)) == KEY
    path.write_text("[1, 2]")
    with pytest.raises(BadInputError, match="not a JSON object"):
        session.read_key_file(str(path))
    path.write_text(SECRET + "{")
    with pytest.raises(BadInputError, match="not valid JSON") as info:
        session.read_key_file(str(path))
    assert SECRET not in str(info.value)
    with pytest.raises(BadInputError, match="cannot read"):
        session.read_key_file(str(tmp_path / "nope.json"))
