"""Credentials in URL settings, logs and messages are masked; everything else is left as it was."""

import logging

import pytest
from click.testing import CliRunner

from soilclay import redact
from soilclay.cli import main
from soilclay.settings import Settings


@pytest.mark.parametrize(("clear", "masked"), [
    ("http://svc:RestPW_abc@localhost:8501", "http://svc:***@localhost:8501"),
    ("gs://bucket/prefix?token=abc123&x=1", "gs://bucket/prefix?token=***&x=1"),
    ("https://h/p?X-Amz-Signature=f00&X-Amz-Date=2026", "https://h/p?X-Amz-Signature=***&X-Amz-Date=***"),
    ("https://acct.blob.core.windows.net/c/b.tif?sv=2024&sig=QWE%3D", "https://acct.blob.core.windows.net/c/b.tif?sv=2024&sig=***"),
    ("failed: postgresql+psycopg://u:pw@db/x and http://a:b@c/", "failed: postgresql+psycopg://u:***@db/x and http://a:***@c/"),
])
def test_credentials_in_urls_are_masked(clear, masked):
    assert redact.redact(clear) == masked


@pytest.mark.parametrize("plain", ["var/store", "http://localhost:8501", "localhost:8500", "gs://b/p?page=2",
                                   "a = b", "http://user@host/x"])
def test_text_without_credentials_is_unchanged(plain):
    assert redact.redact(plain) == plain


def test_settings_command_masks_every_url_setting(monkeypatch):
    monkeypatch.setenv("SOILCLAY_TF_SERVING_REST", "http://svc:RestPW_abc@localhost:8501")
    monkeypatch.setenv("SOILCLAY_STORE_URL", "gs://bucket/soilclay?token=T0KEN")
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", "postgresql://pipeline:DbPw@db.example/clay")
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0, result.output
    for secret in ("RestPW_abc", "T0KEN", "DbPw"):
        assert secret not in result.output
    assert "http://svc:***@localhost:8501" in result.output and "token=***" in result.output
    settings = Settings()
    assert "RestPW_abc" not in repr(settings) and "T0KEN" not in repr(settings)
    assert settings.secrets() == ["DbPw", "RestPW_abc", "T0KEN"]


def test_log_records_are_masked_by_the_filter(caplog):
    handler = logging.StreamHandler()
    redact.install([handler])
    redact.install([handler])  # idempotent: one filter
    assert sum(isinstance(f, redact.RedactingFilter) for f in handler.filters) == 1
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling %s", ("http://u:Secr3t@h/",), None)
    assert handler.filters[0].filter(record)
    assert record.getMessage() == "calling http://u:***@h/"
