"""EarthEngineHook: credentials from an Airflow connection (env var), never logged."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from types import SimpleNamespace

import pytest
from soilclay_airflow.hooks.earthengine import EarthEngineHook

from soilclay.earthengine import session
from soilclay.errors import BadInputError

SECRET = "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL0123456789\n-----END PRIVATE KEY-----\n"
KEY = {"type": "service_account", "project_id": "other-project", "client_email": "etl@p1.iam.gserviceaccount.com",
       "private_key_id": "abc123def456", "private_key": SECRET}


@pytest.fixture
def init_calls(monkeypatch) -> list[tuple]:
    """Record :func:`soilclay.earthengine.session.initialize` calls (and the key file's content and
    mode at call time)."""
    calls: list[tuple] = []

    def fake(project, service_account=None, key_file=None):
        content = json.loads(open(key_file, encoding="utf-8").read()) if key_file else None
        mode = os.stat(key_file).st_mode & 0o777 if key_file else None
        calls.append((project, service_account, key_file, content, mode))

    monkeypatch.setattr(session, "initialize", fake)
    return calls


def assert_not_leaked(capsys, caplog) -> None:
    out, err = capsys.readouterr()
    for text in (out, err, caplog.text):
        assert "TOPSECRETKEYMATERIAL" not in text and "PRIVATE KEY" not in text


def test_key_path_and_project_from_the_connection(gcp_conn, init_calls, tmp_path, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    key = tmp_path / "key.json"
    key.write_text(json.dumps(KEY))
    gcp_conn(project="p1", key_path=str(key))
    hook = EarthEngineHook()
    hook.initialize()
    hook.initialize()  # once per hook
    assert [c[:3] for c in init_calls] == [("p1", "etl@p1.iam.gserviceaccount.com", str(key))]
    assert_not_leaked(capsys, caplog)


def test_keyfile_dict_goes_through_a_private_temporary_file(gcp_conn, init_calls, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    gcp_conn(extra__google_cloud_platform__project="p1", keyfile_dict=json.dumps(KEY))
    EarthEngineHook("google_cloud_default").initialize()
    [(project, account, key_file, content, mode)] = init_calls
    assert (project, account, content, mode) == ("p1", KEY["client_email"], KEY, 0o600)
    assert not os.path.exists(key_file)  # removed once Earth Engine has read it
    assert_not_leaked(capsys, caplog)


def test_explicit_service_account_and_default_credentials(gcp_conn, init_calls) -> None:
    gcp_conn(project="p1")
    EarthEngineHook().initialize()
    assert [c[:3] for c in init_calls] == [("p1", None, None)]


def test_missing_project_is_bad_input_not_guessed_from_the_key(gcp_conn, init_calls) -> None:
    gcp_conn(keyfile_dict=KEY)
    with pytest.raises(BadInputError, match="no 'project' extra"):
        EarthEngineHook().initialize()
    assert init_calls == []


def test_unreadable_or_accountless_keys_are_bad_input(gcp_conn, init_calls, tmp_path) -> None:
    gcp_conn(project="p1", key_path=str(tmp_path / "missing.json"))
    with pytest.raises(BadInputError, match="cannot read service-account key"):
        EarthEngineHook().initialize()
    gcp_conn(project="p1", keyfile_dict={"private_key": SECRET})
    with pytest.raises(BadInputError, match="'google_cloud_default'.*client_email") as info:
        EarthEngineHook().initialize()
    assert "TOPSECRETKEYMATERIAL" not in str(info.value)
    gcp_conn(project="p1", key_path="/k.json", keyfile_dict=KEY)
    with pytest.raises(BadInputError, match="both 'key_path' and 'keyfile_dict'"):
        EarthEngineHook().initialize()
    assert init_calls == []


def test_malformed_keyfile_dict_error_does_not_quote_it(gcp_conn, init_calls) -> None:
    gcp_conn(project="p1", keyfile_dict='{"private_key": "TOPSECRETKEYMATERIAL", oops')
    with pytest.raises(BadInputError) as info:
        EarthEngineHook().initialize()
    assert "TOPSECRETKEYMATERIAL" not in str(info.value) and info.value.__cause__ is None


def test_get_operation_and_its_async_variant(gcp_conn, init_calls, monkeypatch) -> None:
    gcp_conn(project="p1")
    seen: list[str] = []
    fake_data = SimpleNamespace(getOperation=lambda name: seen.append(name) or {"name": name, "done": True})
    monkeypatch.setattr(session.ee, "data", fake_data)
    hook = EarthEngineHook()
    assert hook.get_operation("projects/p1/operations/A") == {"name": "projects/p1/operations/A", "done": True}
    assert asyncio.run(hook.aget_operation("projects/p1/operations/B"))["name"] == "projects/p1/operations/B"
    assert seen == ["projects/p1/operations/A", "projects/p1/operations/B"]
    assert len(init_calls) == 1  # initialised lazily, once
