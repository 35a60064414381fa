"""Staging files of killed runs do not pile up in the work directory."""

import os
import subprocess
import sys

from soilclay.composites.local import remove_stale_staging


def test_staging_files_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        killed = tmp_path / f".demo-s2-abc.{dead.pid}.staging.tif"
        old_style = tmp_path / ".demo-s2-abc.staging.tif"  # a 0-byte leftover of the pid-less naming
        running = tmp_path / f".demo-s2-def.{live.pid}.staging.tif"
        mine = tmp_path / f".demo-s1-x.{os.getpid()}.staging.tif"
        published = tmp_path / "demo-s2-abc.tif"
        for path in (killed, old_style, running, mine, published):
            path.write_bytes(b"")
        assert remove_stale_staging(tmp_path) == sorted([killed, old_style])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (running, mine, published))
    finally:
        live.kill()
        live.wait()


def test_scratch_directories_of_dead_runs_on_this_host_are_removed_by_the_next_run(tmp_path):
    """A SIGKILLed build leaves its whole scratch directory (staging files included); the next run of any
    build on this host removes it, and never one of a live run or of another host."""
    from soilclay.composites.scratch import PREFIX, _host, run_scratch

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        killed = tmp_path / f"{PREFIX}{_host()}-{dead.pid}-abcd1234"
        running = tmp_path / f"{PREFIX}{_host()}-{live.pid}-efgh5678"
        elsewhere = tmp_path / f"{PREFIX}other-host-{dead.pid}-ijkl9012"
        for path in (killed, running, elsewhere):
            path.mkdir()
            (path / f".demo-s2.{dead.pid}.staging.tif").write_bytes(b"")
        with run_scratch(tmp_path) as scratch:
            assert scratch.name.startswith(f"{PREFIX}{_host()}-{os.getpid()}-") and scratch.is_dir()
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, elsewhere.name, scratch.name])
        assert not scratch.exists()
    finally:
        live.kill()
        live.wait()
