"""`soilclay metrics serve` on a port that is taken: one line naming the address, exit 1, no traceback."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from soilclay.cli import main


def test_serve_on_a_taken_port_is_one_clear_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["metrics", "serve", "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "--port" in result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
