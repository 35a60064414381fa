"""SIGKILL a ``soilclay`` process at several points of its work; the next run of the stage closes the
killed runs as abandoned, removes their staging files, completes, and leaves exactly what a clean run
leaves (counted per natural key: nothing lost, nothing duplicated)."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import text

from tests.faults.conftest import (
    blocked_writes,
    check_count,
    cli_for,
    no_run_left_running,
    runs,
    scalar,
    sigkill,
    staging_debris,
    wait_for,
)

ABANDONED = "abandoned: its process is gone"


def _running(engine, stage: str, known: set[str]):
    """The id of a new 'running' row of ``stage`` (not in ``known``), or None."""
    return next((r.run_id for r in runs(engine, stage) if r.status == "running" and r.run_id not in known), None)


def _killed_runs_are_abandoned(engine, stage: str, killed: list[str]) -> None:
    by_id = {r.run_id: r for r in runs(engine, stage)}
    for run_id in killed:
        assert by_id[run_id].status == "failed" and by_id[run_id].error.startswith(ABANDONED), by_id[run_id]
    no_run_left_running(engine)


def _corrupt_scene(world_dir: Path) -> str:
    """Truncate every band of one Sentinel-2 scene inside the window (a download cut off); its id."""
    item = sorted((world_dir / "scenes" / "sentinel-2-l2a").glob("S2B_MSIL2A_2023*/*.json"))[0]
    for band in item.parent.glob("*.tif"):
        band.write_bytes(band.read_bytes()[:100])
    return item.stem


def test_a_composite_build_killed_at_three_points_is_finished_by_the_next_build(world_states, tmp_path, tally):
    world = world_states.fresh("loaded", tmp_path / "root")
    own = tmp_path / "world"  # scenes of our own, one of them corrupt
    shutil.copytree(world.source, own)
    cli = cli_for(world.url, world.root, own)
    synced = cli.run("scenes", "sync", "--aoi", "demo-small")
    assert synced.returncode == 0, synced.stderr
    corrupt = _corrupt_scene(own)
    work, store = world.root / "work", world.root / "store"
    killed: list[str] = []

    def kill_when(what: str, condition) -> None:
        proc = cli.start("composites", "build", "--aoi", "demo-small")
        try:
            wait_for(condition, what, proc=proc)
            run_id = wait_for(lambda: _running(world.engine, "composite", set(killed)), "its run row", proc=proc)
            sigkill(proc)
            killed.append(run_id)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    with tally.fault("SIGKILL composites build once its run is recorded"):
        kill_when("the run row", lambda: _running(world.engine, "composite", set(killed)))
        assert scalar(world.engine, "SELECT count(*) FROM soilclay.composites") == 0
    with tally.fault("SIGKILL composites build while it writes the Sentinel-2 staging file"):
        kill_when("a Sentinel-2 staging file", lambda: list(work.rglob(".*sentinel-2*.staging.tif")))
        assert scalar(world.engine, "SELECT count(*) FROM soilclay.composites") == 0
        assert list(work.rglob(".*.staging.tif")), "the killed build left no staging file: nothing was tested"
    with tally.fault("SIGKILL composites build while it writes the Sentinel-1 staging file (Sentinel-2 done)"):
        kill_when("a Sentinel-1 staging file", lambda: list(work.rglob(".*sentinel-1*.staging.tif")))
    with tally.fault("rerun after three kills"):
        rerun = cli.run("composites", "build", "--aoi", "demo-small")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "Traceback" not in rerun.stderr
        with tally.fault("a corrupt scene asset during the build"):
            assert corrupt in rerun.stdout  # the unreadable scene is skipped and named
        _killed_runs_are_abandoned(world.engine, "composite", killed)
        with world.engine.connect() as conn:
            rows = conn.execute(text("SELECT sensor, version, uri FROM soilclay.composites ORDER BY sensor")).all()
        check_count(tally, len(rows), 2, "composites (one per sensor)")
        assert [(r.sensor, r.version) for r in rows] == [("sentinel-1", 1), ("sentinel-2", 1)]
        published = sorted(str(p) for p in store.rglob("*.tif"))
        assert published == sorted(r.uri for r in rows)  # no unregistered COG, no registered one missing
        debris = staging_debris(work, store)
        assert not debris, f"left after the rerun: {[str(p.relative_to(world.root)) for p in debris]}"


def test_a_parcel_load_killed_early_and_mid_write_is_finished_by_the_next_load(world_states, tmp_path, tally):
    world = world_states.fresh("loaded", tmp_path / "root")
    cli = cli_for(world.url, world.root, world.source)
    parcels = str(world.source / "parcels.gpkg")
    args = ("parcels", "load", parcels, "--id-prefix", "kill:")  # new ids: 48 new parcels
    before = scalar(world.engine, "SELECT count(*) FROM soilclay.parcels")
    killed: list[str] = []

    with tally.fault("SIGKILL parcels load once its run is recorded"):
        proc = cli.start(*args)
        killed.append(wait_for(lambda: _running(world.engine, "parcel_load", set(killed)), "the run row", proc=proc))
        sigkill(proc)
        assert scalar(world.engine, "SELECT count(*) FROM soilclay.parcels") == before

    with tally.fault("SIGKILL parcels load while its upsert waits inside the transaction"):
        with blocked_writes(world.engine, "soilclay.parcels") as waiting:
            proc = cli.start(*args)
            try:
                wait_for(waiting, "the upsert to wait on the table lock", proc=proc)
                killed.append(_running(world.engine, "parcel_load", set(killed)))
                sigkill(proc)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        wait_for(lambda: not waiting(), "the killed writer's backend to end")
        assert scalar(world.engine, "SELECT count(*) FROM soilclay.parcels") == before  # nothing partial

    with tally.fault("rerun of parcels load after two kills"):
        rerun = cli.run(*args)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "inserted 48" in rerun.stdout, rerun.stdout
        _killed_runs_are_abandoned(world.engine, "parcel_load", killed)
        check_count(tally, scalar(world.engine, "SELECT count(*) FROM soilclay.parcels"), before + 48, "parcels")
        again = cli.run(*args)  # and a load of the same file changes nothing
        assert again.returncode == 0 and "inserted 0" in again.stdout, again.stdout
        check_count(tally, scalar(world.engine, "SELECT count(*) FROM soilclay.parcels"), before + 48, "parcels")
