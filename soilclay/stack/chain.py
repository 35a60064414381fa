"""Is an asset-driven chain of DAG runs done, still going, or failed? One pure decision over listed runs.

The chain starts with one run (usually a manual trigger). Each run that updates an Asset makes the
scheduler create runs of the DAGs scheduled on it, *asynchronously*: a moment may pass between an
upstream run finishing and the downstream run appearing. So "nothing is running" is only trusted
once it has held for several consecutive polls (``min_quiet_polls``, spanning a few scheduler loops).

Runs are dicts as Airflow's REST API v2 lists them (``dag_run_id``, ``state``, ``run_type``,
``run_after``, ``start_date``, ``end_date``). Downstream runs count for the chain when they are
asset-triggered and were created (``run_after``) at or after the first run's ``run_after``. Any
queued or running run of a chain DAG, whatever its type or age, means "not quiet yet": an asset
run may be queued behind it (``max_active_runs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ACTIVE = frozenset({"queued", "running"})
Run = Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    verdict: Literal["waiting", "done", "failed"]
    #: Consecutive quiet polls including this one (pass it back in on the next poll).
    quiet_polls: int
    reason: str
    #: (dag_id, run) of failed chain runs, first run first.
    failed: list[tuple[str, Run]] = field(default_factory=list)
    #: dag_id -> active (queued/running) run ids.
    active: dict[str, list[str]] = field(default_factory=dict)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def chain_runs(first: Run, runs: Sequence[Run]) -> list[Run]:
    """The asset-triggered runs among ``runs`` created at or after the first run, oldest first."""
    since = _time(first.get("run_after"))
    picked = [r for r in runs if r.get("run_type") == "asset_triggered"
              and (since is None or (_time(r.get("run_after")) or since) >= since)]
    return sorted(picked, key=lambda r: r.get("run_after") or "")


def decide(first_dag_id: str, first: Run, downstream: Mapping[str, Sequence[Run]], expected: Iterable[str] = (),
           quiet_polls: int = 0, min_quiet_polls: int = 3, missing_polls: int = 20) -> Decision:
    """One poll's verdict on the chain.

    ``first``: the triggering run; ``downstream``: dag_id -> its recent runs (any type);
    ``expected``: downstream dag ids that must have at least one chain run before it can be done;
    ``quiet_polls``: the value returned by the previous poll (0 at the start).

    failed  -- the first run or any chain run failed (reported even if others still run), or an
               expected DAG still has no chain run after ``missing_polls`` quiet polls (nothing left
               running could still create it: its upstream emitted no asset event);
    done    -- first run succeeded, no run of a chain DAG is queued/running, every expected DAG has a
               chain run, and this has held for ``min_quiet_polls`` consecutive polls;
    waiting -- otherwise.
    """
    failed: list[tuple[str, Run]] = []
    if first.get("state") == "failed":
        failed.append((first_dag_id, first))
    active: dict[str, list[str]] = {}
    if first.get("state") in ACTIVE:
        active[first_dag_id] = [first["dag_run_id"]]
    missing = []
    for dag_id, runs in downstream.items():
        mine = chain_runs(first, runs)
        failed += [(dag_id, r) for r in mine if r.get("state") == "failed"]
        busy = [r["dag_run_id"] for r in runs if r.get("state") in ACTIVE]
        if busy:
            active.setdefault(dag_id, []).extend(busy)
        if not mine and dag_id in set(expected):
            missing.append(dag_id)
    missing += [d for d in expected if d not in downstream]
    if failed:
        names = ", ".join(f"{d} {r['dag_run_id']}" for d, r in failed)
        return Decision("failed", 0, f"failed: {names}", failed, active)
    if active:
        names = "; ".join(f"{d}: {', '.join(ids)}" for d, ids in active.items())
        return Decision("waiting", 0, f"running: {names}", [], active)
    quiet = quiet_polls + 1
    if missing and quiet >= missing_polls:
        return Decision("failed", quiet, f"no run of {', '.join(missing)} although nothing else runs: "
                                         "its upstream emitted no asset event")
    if missing:
        return Decision("waiting", quiet, f"waiting for the scheduler to create runs of {', '.join(missing)}")
    if quiet >= min_quiet_polls:
        return Decision("done", quiet, "all chain runs finished and nothing new was scheduled")
    return Decision("waiting", quiet, f"quiet for {quiet}/{min_quiet_polls} polls")


def summarize(first_dag_id: str, first: Run, downstream: Mapping[str, Sequence[Run]]) -> dict[str, list[dict]]:
    """dag_id -> its chain runs as {run_id, run_type, state, start_date, end_date} (the first DAG: its run)."""
    def brief(run: Run) -> dict:
        return {"run_id": run.get("dag_run_id"), "run_type": run.get("run_type"), "state": run.get("state"),
                "start_date": run.get("start_date"), "end_date": run.get("end_date")}

    summary = {first_dag_id: [brief(first)]}
    for dag_id, runs in downstream.items():
        summary[dag_id] = [brief(r) for r in chain_runs(first, runs)]
    return summary
