"""Detached processes in their own process groups, found again through pid files, and stopped with
everything they started: the process I/O shared by the Airflow components and the monitoring ones.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

#: The parent of kernel threads (whose command line is empty too).
KTHREADD = 2


def read_pid(path: Path, alive: Callable[[psutil.Process], bool]) -> int | None:
    """The pid in ``path`` if that process runs and ``alive`` recognises it (not a recycled pid), else None."""
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if proc.ppid() != KTHREADD and not _settled_cmdline(proc):
            # Launched a moment ago and still in exec: it closed the launcher's pipe (so Popen returned)
            # but has no argument pages yet, so /proc/<pid>/cmdline reads empty. Seen with Prometheus.
            return pid
        return pid if alive(proc) else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _settled_cmdline(proc: psutil.Process, wait: float = 2.0) -> bool:
    """Whether ``proc`` shows a command line, given ``wait`` seconds to finish an exec in progress (an
    exec takes microseconds: asking once would misjudge a process caught in the middle of one)."""
    deadline = time.monotonic() + wait
    while not proc.cmdline():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def describe(path: Path) -> str:
    """What the process named in the pid file ``path`` is now (for a start-up failure's message)."""
    try:
        pid = int(path.read_text())
    except (OSError, ValueError) as exc:
        return f"no pid in {path} ({exc})"
    with contextlib.suppress(ChildProcessError, OSError):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.WEXITSTATUS(status)}"
            return f"pid {pid} ended: {how}"
    try:
        proc = psutil.Process(pid)
        return f"pid {pid} is {proc.status()}: {' '.join(proc.cmdline())[:200]}"
    except psutil.Error as exc:
        return f"pid {pid}: {exc.__class__.__name__}"


def launch(args: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_file: Path, pid_file: Path) -> int:
    """Start ``args`` detached in a new session (its own process group), stdout and stderr appended to
    ``log_file``; its pid written to ``pid_file``. Returns the pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        out.write(f"\n===== soilclay: starting {' '.join(args)} at {time.ctime()} =====\n".encode())
        out.flush()
        proc = subprocess.Popen(list(args), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(str(proc.pid))
    return proc.pid


def log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"(no log {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def terminate(pids: Mapping[str, int], timeout: float = 30, log=print) -> None:
    """SIGTERM each named process group (and descendants that left it); SIGKILL whatever is left after
    ``timeout`` seconds, then the groups again (late children)."""
    procs: list[psutil.Process] = []
    for name, pid in pids.items():
        try:
            family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        log(f"{name}: stopping (pid {pid})")
        _signal_group(pid, signal.SIGTERM)
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if os.getpgid(proc.pid) != pid:
                    proc.terminate()
        procs += family
    _, left = psutil.wait_procs(procs, timeout=timeout)
    for proc in left:
        log(f"killing leftover pid {proc.pid}")
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    for pid in pids.values():
        _signal_group(pid, signal.SIGKILL)  # late children of the group, if any
    psutil.wait_procs(left, timeout=5)
