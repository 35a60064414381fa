"""The writer's database connection terminated mid-write (``pg_terminate_backend`` from another session,
as a failover or an operator would): one clear error line, nothing of the write visible, the run
recorded 'failed' with the reason, and the rerun completes with exact counts."""

from __future__ import annotations

import subprocess

import pytest

from tests.faults.conftest import (
    assert_one_clear_error,
    blocked_writes,
    check_count,
    cli_for,
    no_run_left_running,
    runs,
    scalar,
    terminate,
    wait_for,
)

LOADS = [
    # stage, the table its write goes to, the command line (given the world's files), rows a clean run adds
    pytest.param("parcel_load", "soilclay.parcels",
                 lambda src: ["parcels", "load", str(src / "parcels.gpkg"), "--id-prefix", "conn:"], 48,
                 "loading parcels from", id="parcels-load"),
    pytest.param("sample_load", "soilclay.samples",
                 lambda src: ["samples", "load", str(src / "samples.csv"), "--source", "conn"], 120,
                 "samples", id="samples-load"),
]


@pytest.mark.parametrize(("stage", "table", "args", "adds", "what"), LOADS)
def test_a_load_whose_connection_is_terminated_mid_write_fails_cleanly_and_reruns(
        world_states, tmp_path, tally, stage, table, args, adds, what):
    world = world_states.fresh("loaded", tmp_path / "root")
    cli = cli_for(world.url, world.root, world.source)
    before = scalar(world.engine, f"SELECT count(*) FROM {table}")
    with tally.fault(f"{stage}: the writer's connection terminated mid-write"):
        with blocked_writes(world.engine, table) as waiting:
            proc = cli.start(*args(world.source))
            try:
                pid = wait_for(waiting, "the write to wait on the table lock", proc=proc)
                terminate(world.engine, pid)
                out, err = proc.communicate(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        line = assert_one_clear_error(result, "database connection lost during", what, "nothing was written, rerun")
        assert scalar(world.engine, f"SELECT count(*) FROM {table}") == before  # nothing partial visible
        (run,) = runs(world.engine, stage)
        assert run.status == "failed" and "database connection lost during" in run.error, run
        assert line.removeprefix("Error: ").split(" (")[0] in run.error
    with tally.fault(f"{stage}: rerun after the lost connection"):
        rerun = cli.run(*args(world.source))
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        check_count(tally, scalar(world.engine, f"SELECT count(*) FROM {table}"), before + adds, table)
        assert [r.status for r in runs(world.engine, stage)] == ["failed", "success"]
        no_run_left_running(world.engine)
