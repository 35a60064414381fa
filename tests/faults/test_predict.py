"""``soilclay predict`` under faults, in one world (each predict pays a TensorFlow start): SIGKILLed once
its run is recorded; two concurrent predicts stopped at their write, one SIGKILLed and the other's
connection terminated; then two concurrent reruns. Every parcel ends with exactly one estimate."""

from __future__ import annotations

import subprocess

from sqlalchemy.engine import make_url

from tests.faults.conftest import (
    Cli,
    assert_one_clear_error,
    blocked_writes,
    check_predictions,
    cli_for,
    no_run_left_running,
    prediction_counts,
    runs,
    scalar,
    sigkill,
    staging_debris,
    terminate,
    wait_for,
)

ARGS = ("predict", "--aoi", "demo-small")


def _named(cli: Cli, name: str) -> Cli:
    """The same CLI whose database sessions carry ``application_name`` ``name`` (to find them)."""
    url = make_url(cli.env["SOILCLAY_DATABASE_URL"]).update_query_dict({"application_name": name})
    return Cli({**cli.env, "SOILCLAY_DATABASE_URL": url.render_as_string(hide_password=False)})


def _waiting(engine, name: str):
    return scalar(engine, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                          "AND application_name = :n AND wait_event_type = 'Lock'", n=name)


def _sessions(engine, name: str) -> int:
    return scalar(engine, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                          "AND application_name = :n", n=name)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_predict_killed_cut_off_and_run_twice_at_once_estimates_every_parcel_once(world_states, tmp_path, tally):
    world = world_states.fresh("champion", tmp_path / "root")
    cli = cli_for(world.url, world.root, world.source)
    parcels = scalar(world.engine, "SELECT count(*) FROM soilclay.parcels")
    assert parcels > 0
    work = world.root / "work"

    with tally.fault("SIGKILL predict once its run is recorded"):
        proc = cli.start(*ARGS)
        early = wait_for(lambda: next((r.run_id for r in runs(world.engine, "predict") if r.status == "running"),
                                      None), "the run row", proc=proc)
        sigkill(proc)
        assert prediction_counts(world.engine) == (0, 0)

    with tally.fault("SIGKILL predict while its write waits inside the transaction"), \
            tally.fault("predict's connection terminated while its write waits inside the transaction"):
        with blocked_writes(world.engine, "soilclay.parcel_predictions"):
            killed, cut = _named(cli, "fault-killed").start(*ARGS), _named(cli, "fault-cut").start(*ARGS)
            try:
                wait_for(lambda: _waiting(world.engine, "fault-killed"), "the first write to wait", 300, killed)
                pid = wait_for(lambda: _waiting(world.engine, "fault-cut"), "the second write to wait", 300, cut)
                sigkill(killed)
                terminate(world.engine, pid)
                result = _finish(cut)
            finally:
                for proc in (killed, cut):
                    if proc.poll() is None:
                        proc.kill()
                        proc.communicate()
        assert_one_clear_error(result, "database connection lost during writing", "parcel estimates",
                               "nothing was written, rerun")
        wait_for(lambda: _sessions(world.engine, "fault-killed") == 0, "the killed writer's backend to end")
        assert prediction_counts(world.engine) == (0, 0)  # nothing of either write is visible
        lost = [r for r in runs(world.engine, "predict") if "database connection lost" in (r.error or "")]
        assert len(lost) == 1 and lost[0].status == "failed", runs(world.engine, "predict")

    with tally.fault("two concurrent predicts on one AOI after the faults"):
        first, second = cli.start(*ARGS), cli.start(*ARGS)
        done = [_finish(first), _finish(second)]
        for r in done:
            assert r.returncode == 0, r.stdout + r.stderr
            assert "Traceback" not in r.stderr
        check_predictions(tally, world.engine, parcels)
        by_status = sorted((r.status, (r.error or "")[:30]) for r in runs(world.engine, "predict"))
        assert by_status == sorted([("failed", "abandoned: its process is gone"),
                                    ("failed", "abandoned: its process is gone"),
                                    ("failed", "TransientExternalError: databa"),
                                    ("success", ""), ("success", "")]), by_status
        assert early in {r.run_id for r in runs(world.engine, "predict") if r.status == "failed"}
        no_run_left_running(world.engine)
        assert staging_debris(work) == []
