"""The REST client against a fake Airflow API (httpx.MockTransport): login, trigger, chain waiting."""

import json

import httpx
import pytest

from soilclay.stack.rest import AirflowApiError, AirflowClient, ChainFailed, render_summary

T0 = "2026-01-01T10:00:00Z"


class FakeAirflow:
    """Just enough of /auth/token and /api/v2 for the client; runs advance one state per poll."""

    def __init__(self, scripts=None):
        self.tokens, self.requests, self.bodies = 0, [], []
        self.expire_next = False
        #: dag_id -> list of (poll number from which the run is listed, run dict with a "states" script)
        self.scripts = scripts or {}
        self.polls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        if path == "/auth/token":
            body = json.loads(request.content)
            if body != {"username": "admin", "password": "secret"}:
                return httpx.Response(401, json={"detail": "Invalid credentials"})
            self.tokens += 1
            return httpx.Response(201, json={"access_token": f"tok{self.tokens}"})
        if request.headers.get("Authorization") != f"Bearer tok{self.tokens}" or self.expire_next:
            self.expire_next = False
            return httpx.Response(401, json={"detail": "expired"})
        parts = path.split("/")
        if request.method == "GET" and path == "/api/v2/dags/missing":
            return httpx.Response(404, json={"detail": "not found"})
        if request.method == "PATCH":
            return httpx.Response(200, json={"dag_id": parts[4], "is_paused": json.loads(request.content)["is_paused"]})
        if request.method == "POST" and path.endswith("/dagRuns"):
            self.bodies.append(json.loads(request.content))
            return httpx.Response(200, json={"dag_run_id": "manual__1", "state": "queued"})
        if path.endswith("/taskInstances"):
            return httpx.Response(200, json={"task_instances": [
                {"task_id": "plan", "map_index": -1, "state": "failed"},
                {"task_id": "predict_chunk", "map_index": 1, "state": "upstream_failed"},
                {"task_id": "list", "map_index": -1, "state": "success"}], "total_entries": 3})
        if len(parts) == 7 and parts[5] == "dagRuns":  # one run: the first DAG's run
            self.polls += 1
            return httpx.Response(200, json=self._state(parts[4], parts[6]))
        if path.endswith("/dagRuns"):
            runs = [self._state(parts[4], r["dag_run_id"]) for start, r in self.scripts.get(parts[4], [])
                    if self.polls >= start]
            states = request.url.params.get_list("state")
            runs = [r for r in runs if not states or r["state"] in states]
            return httpx.Response(200, json={"dag_runs": runs, "total_entries": len(runs)})
        if path.startswith("/api/v2/dags/"):
            return httpx.Response(200, json={"dag_id": parts[4], "is_paused": False})
        return httpx.Response(404)

    def _state(self, dag_id, run_id):
        for start, run in self.scripts.get(dag_id, []):
            if run["dag_run_id"] == run_id:
                states = run["states"]
                state = states[min(self.polls - start, len(states) - 1)]
                return {k: v for k, v in run.items() if k != "states"} | {"state": state}
        raise KeyError(run_id)


def client_for(fake):
    return AirflowClient("http://airflow.test", "admin", "secret", transport=httpx.MockTransport(fake.handler))


def asset_run(run_id, states, run_after="2026-01-01T10:05:00Z"):
    return {"dag_run_id": run_id, "run_type": "asset_triggered", "run_after": run_after, "states": states,
            "start_date": run_after, "end_date": None}


FIRST = {"dag_run_id": "manual__1", "run_type": "manual", "run_after": T0, "states": ["running", "success"],
         "start_date": T0, "end_date": None}


def test_login_once_and_again_after_a_401():
    fake = FakeAirflow()
    with client_for(fake) as client:
        assert client.dag("soilclay_retrain")["dag_id"] == "soilclay_retrain"
        assert client.dag("missing") is None
        fake.expire_next = True
        client.unpause("soilclay_retrain")
    assert fake.tokens == 2


def test_bad_login_is_a_clear_error():
    fake = FakeAirflow()
    client = AirflowClient("http://airflow.test", "admin", "wrong", transport=httpx.MockTransport(fake.handler))
    with pytest.raises(AirflowApiError, match="login as 'admin' refused: HTTP 401"):
        client.dag("x")


def test_trigger_sends_a_null_logical_date_and_the_conf():
    fake = FakeAirflow()
    with client_for(fake) as client:
        assert client.trigger("soilclay_scene_watch", {"dry_run": True}) == "manual__1"
    assert fake.bodies == [{"logical_date": None, "conf": {"dry_run": True}}]


def test_wait_for_chain_follows_asset_runs_until_quiet():
    fake = FakeAirflow({
        "watch": [(0, FIRST)],
        "composites": [(2, asset_run("c1", ["queued", "running", "success"]))],
        "retrain": [(4, asset_run("r1", ["running", "success"], "2026-01-01T10:06:00Z")),
                    (0, {**asset_run("old", ["failed"], "2025-12-01T03:00:00Z"), "run_type": "scheduled"})],
        "predict": [(6, asset_run("p1", ["running", "success"], "2026-01-01T10:07:00Z"))],
    })
    lines = []
    with client_for(fake) as client:
        summary = client.wait_for_chain("watch", "manual__1", ["composites", "retrain", "predict"],
                                        expected=["composites", "retrain", "predict"], poll=0, settle=0,
                                        progress=lines.append)
    assert {d: [r["state"] for r in runs] for d, runs in summary.items()} == {
        "watch": ["success"], "composites": ["success"], "retrain": ["success"], "predict": ["success"]}
    assert fake.polls >= 9 and any("running: composites: c1" in line for line in lines)
    assert "retrain: r1 (asset_triggered) success" in render_summary(summary)


def test_wait_for_chain_names_the_failed_run_and_tasks():
    fake = FakeAirflow({"watch": [(0, FIRST)], "predict": [(2, asset_run("p1", ["running", "failed"]))]})
    with client_for(fake) as client, pytest.raises(ChainFailed) as info:
        client.wait_for_chain("watch", "manual__1", ["predict"], poll=0, settle=0, progress=None)
    assert "predict run p1 failed; failed tasks: plan, predict_chunk[1] (upstream_failed)" in str(info.value)
    assert info.value.summary["predict"][0]["state"] == "failed"


def test_wait_for_chain_times_out():
    fake = FakeAirflow({"watch": [(0, {**FIRST, "states": ["running"]})]})
    with client_for(fake) as client, pytest.raises(AirflowApiError, match="not done after 0 s: running: watch"):
        client.wait_for_chain("watch", "manual__1", [], timeout=0, poll=0, progress=None)
