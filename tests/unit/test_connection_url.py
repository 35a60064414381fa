"""An Airflow Postgres connection's fields as soilclay's database URL (the tasks' and the plugin's)."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from soilclay.db.engine import url_from_connection


def test_tcp_connection_with_libpq_extras_only():
    url = make_url(url_from_connection(login="clay", password="s3cret", host="db.internal", port=5433,
                                       schema="soilclay", extra={"sslmode": "require", "unrelated": "x"}))
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql+psycopg", "clay", "s3cret", "db.internal", 5433, "soilclay")
    assert dict(url.query) == {"sslmode": "require"}


def test_a_socket_directory_host_becomes_libpq_host_and_empty_fields_are_left_out():
    url = make_url(url_from_connection(login="", password=None, host="/var/run/postgresql", port=None,
                                       schema="soilclay", extra={}))
    assert url.host is None and url.username is None and url.port is None
    assert dict(url.query) == {"host": "/var/run/postgresql"} and url.database == "soilclay"
