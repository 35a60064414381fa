"""Live checks of the monitoring after a chain: every soilclay dashboard panel's query, asked of the running
Prometheus (which scrapes soilclay's exporter), returns data; and every alert rule evaluates without error."""

from __future__ import annotations

import time

import httpx

from soilclay.monitoring.dashboards import PanelQuery, panel_queries
from soilclay.monitoring.promql import is_soilclay


def soilclay_panel_queries() -> list[PanelQuery]:
    """The panels whose every metric comes from soilclay's own exporter (TF Serving and Airflow's StatsD
    metrics are not scraped by the local stack)."""
    return [q for q in panel_queries() if is_soilclay(q.expr)]


def _query(client: httpx.Client, expr: str) -> list[dict]:
    response = client.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, response.text[:300])
    return body["data"]["result"]


def check_panels_have_data(prometheus_url: str, timeout: float = 90, poll: float = 3) -> dict[str, int]:
    """Poll until every soilclay panel's query returns at least one series (rates need two scrapes);
    returns series per panel. Fails naming the panels still empty."""
    queries = soilclay_panel_queries()
    assert len(queries) >= 20, f"only {len(queries)} soilclay panel queries"
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=prometheus_url, timeout=10) as client:
        while True:
            found = {f"{q.dashboard}/{q.panel}: {q.expr}": len(_query(client, q.expr)) for q in queries}
            empty = [k for k, n in found.items() if n == 0]
            if not empty or time.monotonic() > deadline:
                break
            time.sleep(poll)
        assert not empty, "panels without data:\n" + "\n".join(empty)
        rules = client.get("/api/v1/rules").json()["data"]["groups"]
    broken = [(r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r.get("health") != "ok"]
    assert rules and not broken, broken
    return found
