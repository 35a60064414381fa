"""Benchmark: generating the demo world (target: under 2 minutes with bounded memory on 2 cores).

    .venv/bin/python benchmarks/demo_world.py [--size demo] [--with-baseline]

Prints wall time, scenes per second, peak RSS (this process and its workers) and disk size, next
to the target; --with-baseline also runs the single-process generation as the baseline.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = {"demo": 120.0, "small": 10.0}


def run(size: str, workers: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="soilclay-bench-") as tmp:
        out = Path(tmp) / "world"
        cmd = [sys.executable, "-m", "soilclay.cli", "demo-world", "--out", str(out), "--size", size]
        if workers:
            cmd += ["--workers", str(workers)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        scenes = sum(1 for _ in (out / "scenes").glob("*/*/*.json"))
        size_gb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e9
    return {"seconds": seconds, "scenes": scenes, "peak_mb": peak_mb, "disk_gb": size_gb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="demo", choices=sorted(TARGET_SECONDS))
    parser.add_argument("--with-baseline", action="store_true", help="also run with one worker process")
    args = parser.parse_args()
    target = TARGET_SECONDS[args.size]
    res = run(args.size, None)
    print(f"demo world '{args.size}': {res['seconds']:.1f} s for {res['scenes']} scenes "
          f"({res['scenes'] / res['seconds']:.1f} scenes/s), peak RSS {res['peak_mb']:.0f} MB per process, "
          f"{res['disk_gb']:.2f} GB on disk")
    print(f"target: under {target:.0f} s -> {'MET' if res['seconds'] < target else 'MISSED'}")
    if args.with_baseline:
        base = run(args.size, 1)
        print(f"baseline (1 process): {base['seconds']:.1f} s, peak RSS {base['peak_mb']:.0f} MB; "
              f"speed-up {base['seconds'] / res['seconds']:.2f}x")


if __name__ == "__main__":
    main()
