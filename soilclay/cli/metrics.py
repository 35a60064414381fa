"""``soilclay metrics``: the Prometheus exporter (``serve``) and one scrape on stdout (``show``)."""

from __future__ import annotations

import signal
import threading

import click

from soilclay.errors import BadInputError
from soilclay.settings import Settings


@click.group()
def metrics() -> None:
    """soilclay's Prometheus metrics, read from PostGIS at every scrape."""


@metrics.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, show_default=True, help="TCP port (0: any free).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.pass_obj
def serve(settings: Settings, port: int, host: str) -> None:
    """Serve /metrics until SIGTERM or SIGINT."""
    from prometheus_client import start_http_server

    from soilclay.monitoring.exporter import exporter_engine, make_registry

    engine = exporter_engine(settings.database_url)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            server, thread = start_http_server(port, addr=host, registry=make_registry(engine))
        except OSError as exc:
            raise BadInputError(f"soilclay metrics: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                                "choose another --port or --host") from None
        bound_host, bound_port = server.server_address[:2]
        click.echo(f"soilclay metrics: serving http://{bound_host}:{bound_port}/metrics "
                   f"(database {settings.safe_database_url})")
        try:
            stop.wait()
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        engine.dispose()
    click.echo("soilclay metrics: stopped")


@metrics.command("show")
@click.pass_obj
def show(settings: Settings) -> None:
    """Print one scrape in Prometheus' text format."""
    from soilclay.monitoring.exporter import exporter_engine, make_registry, scrape

    engine = exporter_engine(settings.database_url)
    try:
        click.echo(scrape(make_registry(engine)), nl=False)
    finally:
        engine.dispose()
