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
