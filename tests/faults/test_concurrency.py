"""Two operators (or a DAG and an operator) running the same stage at once: no duplicate rows, no
orphan runs or files; each exits cleanly, or the one that lost says what happened in one line."""

from __future__ import annotations

import subprocess

from sqlalchemy import text

from tests.faults.conftest import check_count, cli_for, error_lines, no_run_left_running, scalar, staging_debris


def _both(cli, *args: str) -> list[subprocess.CompletedProcess]:
    procs = [cli.start(*args), cli.start(*args)]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _clean_or_one_line(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 0 or (result.returncode == 1 and len(error_lines(result)) == 1), output


def test_two_concurrent_composite_builds_and_parcel_loads_leave_one_of_each(world_states, tmp_path, tally):
    world = world_states.fresh("scenes", tmp_path / "root")
    cli = cli_for(world.url, world.root, world.source)

    with tally.fault("two concurrent composite builds of one AOI"):
        builds = _both(cli, "composites", "build", "--aoi", "demo-small")
        for r in builds:
            _clean_or_one_line(r)
        assert any(r.returncode == 0 for r in builds), [r.stdout + r.stderr for r in builds]
        with world.engine.connect() as conn:
            rows = conn.execute(text("SELECT sensor, version, uri FROM soilclay.composites ORDER BY sensor")).all()
        check_count(tally, len(rows), 2, "composites (one per sensor)")
        assert [(r.sensor, r.version) for r in rows] == [("sentinel-1", 1), ("sentinel-2", 1)]
        assert sorted(str(p) for p in (world.root / "store").rglob("*.tif")) == sorted(r.uri for r in rows)
        assert staging_debris(world.root / "work", world.root / "store") == []
        no_run_left_running(world.engine)

    with tally.fault("two concurrent loads of one parcel file"):
        before = scalar(world.engine, "SELECT count(*) FROM soilclay.parcels")
        loads = _both(cli, "parcels", "load", str(world.source / "parcels.gpkg"), "--id-prefix", "both:")
        for r in loads:
            _clean_or_one_line(r)
        assert any(r.returncode == 0 for r in loads), [r.stdout + r.stderr for r in loads]
        check_count(tally, scalar(world.engine, "SELECT count(*) FROM soilclay.parcels"), before + 48, "parcels")
        no_run_left_running(world.engine)
