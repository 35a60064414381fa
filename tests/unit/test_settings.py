import pytest
from pydantic import ValidationError

from soilclay.settings import DEFAULT_DATABASE_URL, Settings


def test_defaults_point_at_the_local_socket_database(monkeypatch):
    monkeypatch.delenv("SOILCLAY_DATABASE_URL", raising=False)
    s = Settings()
    assert s.database_url == DEFAULT_DATABASE_URL
    assert "/soilclay" in s.database_url


def test_environment_overrides_and_password_is_masked(monkeypatch):
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", "postgresql://pipeline:s3cret@db.example:5432/clay")
    monkeypatch.setenv("SOILCLAY_STORE_URL", "gs://bucket/soilclay")
    s = Settings()
    assert s.database_url.startswith("postgresql+psycopg://")  # plain URLs get the psycopg 3 driver
    assert s.store_url == "gs://bucket/soilclay"
    assert "s3cret" not in s.safe_database_url and "s3cret" not in repr(s)
    assert "s3cret" not in str(s.describe())


def test_bad_values_are_refused_with_the_variable_named(monkeypatch):
    monkeypatch.setenv("SOILCLAY_DATABASE_URL", "mysql://x@y/z")
    with pytest.raises(ValidationError, match="SOILCLAY_DATABASE_URL must be a postgresql URL"):
        Settings()
    monkeypatch.delenv("SOILCLAY_DATABASE_URL")
    monkeypatch.setenv("SOILCLAY_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="SOILCLAY_LOG_LEVEL must be one of"):
        Settings()
