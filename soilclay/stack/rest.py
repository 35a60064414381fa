"""A small client of Airflow 3.3's REST API v2 (httpx): trigger DAGs and wait for asset-driven chains.

Login: SimpleAuthManager hands out a JWT at ``POST /auth/token`` (JSON ``{"username", "password"}``,
answer 201 ``{"access_token"}``); requests carry ``Authorization: Bearer <token>``. A 401 (expired
token) logs in again once. Triggering needs ``logical_date`` in the body, explicitly null for
"no logical date" (Airflow 3's default for manual runs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import httpx

from soilclay.errors import SoilclayError
from soilclay.stack.chain import Decision, decide, summarize


class AirflowApiError(SoilclayError):
    """The API refused a request or the awaited state was not reached in time."""


class ChainFailed(SoilclayError):
    """A run of the chain failed; names the DAG, the run and the failed tasks."""

    def __init__(self, message: str, summary: dict[str, list[dict]]):
        super().__init__(message)
        self.summary = summary


class AirflowClient:
    """``AirflowClient("http://127.0.0.1:8080", "admin", "admin")``; ``transport`` is for tests."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        self._login = {"username": username, "password": password}
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _authenticate(self) -> str:
        response = self._http.post("/auth/token", json=self._login)
        if response.status_code not in (200, 201):
            raise AirflowApiError(f"login as {self._login['username']!r} refused: HTTP {response.status_code} "
                                  f"{response.text[:200]}")
        self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, ok: Iterable[int] = (200,), **kwargs: Any) -> httpx.Response:
        """An authenticated request; AirflowApiError unless the status is in ``ok``."""
        for attempt in (1, 2):
            token = self._token or self._authenticate()
            response = self._http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            break
        if response.status_code not in set(ok):
            raise AirflowApiError(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")
        return response

    def health(self) -> dict:
        return self._http.get("/api/v2/monitor/health").json()

    def dag(self, dag_id: str) -> dict | None:
        response = self.request("GET", f"/api/v2/dags/{dag_id}", ok=(200, 404))
        return response.json() if response.status_code == 200 else None

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 180, poll: float = 2) -> dict[str, dict]:
        """Until the dag-processor has parsed and serialized every DAG; their details."""
        pending, found = list(dag_ids), {}
        deadline = time.monotonic() + timeout
        while pending:
            for dag_id in list(pending):
                if (details := self.dag(dag_id)) is not None:
                    found[dag_id] = details
                    pending.remove(dag_id)
            if pending and time.monotonic() > deadline:
                errors = self.request("GET", "/api/v2/importErrors").json().get("import_errors", [])
                detail = "".join(f"\n{e.get('filename')}: {e.get('stack_trace', '')[-500:]}" for e in errors)
                raise AirflowApiError(f"DAGs not parsed after {timeout:.0f} s: {', '.join(pending)}{detail}")
            if pending:
                time.sleep(poll)
        return found

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def unpause(self, dag_id: str) -> None:
        self.set_paused(dag_id, False)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """A manual run (no logical date) with ``conf``; its dag_run_id."""
        body = {"logical_date": None, "conf": conf or {}}
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", ok=(200,), json=body).json()["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()

    def dag_runs(self, dag_id: str, since: datetime | str | None = None, limit: int = 100) -> list[dict]:
        """The DAG's runs, newest first: those created (run_after) since ``since`` plus all queued/running ones."""
        base: dict[str, Any] = {"limit": limit, "order_by": "-id"}
        if since is not None:
            base["run_after_gte"] = since.isoformat() if isinstance(since, datetime) else since
        runs = {r["dag_run_id"]: r for r in self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                                                         params=base).json()["dag_runs"]}
        if since is not None:
            active = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                                  params={"limit": limit, "state": ["queued", "running"]}).json()["dag_runs"]
            runs.update({r["dag_run_id"]: r for r in active})
        return sorted(runs.values(), key=lambda r: r.get("run_after") or "", reverse=True)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self.request("GET", path, params={"limit": 1000}).json()["task_instances"]

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        """Failed task ids of a run (``task[map_index]`` for mapped ones; upstream_failed marked as such)."""
        names = []
        for ti in self.task_instances(dag_id, run_id):
            if ti.get("state") in ("failed", "upstream_failed"):
                index = ti.get("map_index", -1)
                name = ti["task_id"] + (f"[{index}]" if index is not None and index >= 0 else "")
                names.append(name + (" (upstream_failed)" if ti["state"] == "upstream_failed" else ""))
        return names

    def wait_idle(self, dag_ids: Sequence[str], timeout: float = 300, poll: float = 3, quiet_polls: int = 3,
                  ready: Callable[[dict[str, list[dict]]], bool] = lambda runs: True) -> dict[str, list[dict]]:
        """Until no run of ``dag_ids`` is queued/running for ``quiet_polls`` polls in a row and ``ready(runs)``."""
        deadline, quiet = time.monotonic() + timeout, 0
        while True:
            runs = {d: self.dag_runs(d) for d in dag_ids}
            busy = any(r.get("state") in ("queued", "running") for rs in runs.values() for r in rs)
            quiet = 0 if busy or not ready(runs) else quiet + 1
            if quiet >= quiet_polls:
                return runs
            if time.monotonic() > deadline:
                raise AirflowApiError(f"{', '.join(dag_ids)} still busy after {timeout:.0f} s")
            time.sleep(poll)

    def wait_for_chain(self, first_dag_id: str, first_run_id: str, downstream_dag_ids: Sequence[str],
                       expected: Iterable[str] = (), timeout: float = 1800, poll: float = 3,
                       settle: float = 10, missing_grace: float = 60,
                       progress: Callable[[str], None] | None = print) -> dict[str, list[dict]]:
        """Wait for the first run, then for the asset-triggered runs it sets off; per-DAG run summary.

        Done once nothing of the chain is queued/running for ``settle`` seconds (at least 3 polls, so the
        scheduler had several loops to create asset-triggered runs) and each ``expected`` DAG has run.
        Raises ChainFailed (DAG id, run id, failed task ids) on a failed run or when an expected DAG has not
        run although the chain was quiet for ``missing_grace`` seconds; AirflowApiError on timeout.
        """
        expected = list(expected)
        downstream = list(dict.fromkeys([*downstream_dag_ids, *expected]))
        step = max(poll, 0.1)
        min_quiet = max(3, math.ceil(settle / step) + 1)
        missing_polls = max(min_quiet, math.ceil(missing_grace / step))
        started, deadline = time.monotonic(), time.monotonic() + timeout
        quiet, last_reason = 0, None
        while True:
            first = self.dag_run(first_dag_id, first_run_id)
            runs = {d: self.dag_runs(d, since=first.get("run_after")) for d in downstream}
            decision: Decision = decide(first_dag_id, first, runs, expected, quiet, min_quiet, missing_polls)
            quiet = decision.quiet_polls
            summary = summarize(first_dag_id, first, runs)
            if progress and decision.reason != last_reason and not decision.reason.startswith("quiet"):
                progress(f"[{time.monotonic() - started:5.0f} s] {decision.reason}")
            last_reason = decision.reason
            if decision.verdict == "done":
                return summary
            if decision.verdict == "failed":
                details = [f"{dag_id} run {run['dag_run_id']} failed; failed tasks: "
                           f"{', '.join(self.failed_tasks(dag_id, run['dag_run_id'])) or '(none listed)'}"
                           for dag_id, run in decision.failed]
                raise ChainFailed("; ".join(details) or decision.reason, summary)
            if time.monotonic() > deadline:
                raise AirflowApiError(f"chain of {first_dag_id} {first_run_id} not done after {timeout:.0f} s: "
                                      f"{decision.reason}")
            time.sleep(poll)


def render_summary(summary: dict[str, list[dict]]) -> str:
    """The per-DAG run summary as text lines."""
    lines = []
    for dag_id, runs in summary.items():
        if not runs:
            lines.append(f"{dag_id}: no run")
        for run in runs:
            lines.append(f"{dag_id}: {run['run_id']} ({run['run_type']}) {run['state']}"
                         f"  {run.get('start_date') or '-'} .. {run.get('end_date') or '-'}")
    return "\n".join(lines)
