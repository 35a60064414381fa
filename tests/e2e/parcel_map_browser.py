"""Browser check of the parcel map inside the Airflow UI (Playwright driving Debian's Chromium).

:func:`check_parcel_map_page` logs in to the Airflow UI, opens the "Parcel map" external view
(``<ui>/plugin/soilclay-parcel-map``, the page in a frame), and checks against PostGIS that

- the map draws as many distinct parcels as intersect its view (``#map[data-parcels-rendered]`` against a
  count of ``parcel_clay_latest`` in ``#map[data-view-extent]``, as ``soilclay_reader``);
- clicking a parcel shows the estimate stored for it;
- the skill plot has one point per model version with a skill figure;
- the colour modes switch the legend;
- no request went to a host other than the machine itself;

and writes a screenshot ``parcel-map.png`` to ``artefact_dir``. Raises AssertionError naming what failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import Engine, text

from soilclay.db import parcel_map as queries

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
VIEW_ROUTE = "plugin/soilclay-parcel-map"
TIMEOUT_MS = 60_000


def _probe_parcel(engine: Engine, extent: list[float]) -> dict[str, Any]:
    """The largest parcel with an estimate lying wholly in the view: key, clay, a point inside it (EPSG:3857)."""
    with queries.read_only_as(engine, queries.READER, "choosing a parcel to click") as conn:
        row = conn.execute(text(
            "SELECT parcel_key, clay, ST_X(p) AS x, ST_Y(p) AS y FROM ("
            " SELECT parcel_key, clay, ST_PointOnSurface(ST_Transform(geom, 3857)) AS p, ST_Area(geom) AS a"
            " FROM soilclay.parcel_clay_latest WHERE clay IS NOT NULL"
            " AND ST_Within(geom, ST_Transform(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 3857), 4326))) AS c"
            " ORDER BY a DESC LIMIT 1"), dict(zip(("x0", "y0", "x1", "y1"), extent, strict=True))).mappings().first()
    assert row is not None, f"no parcel with an estimate lies in the view {extent}"
    return dict(row)


def _versions_with_skill(engine: Engine) -> list[int]:
    with queries.read_only_as(engine, queries.READER, "reading the model versions") as conn:
        return [m["version"] for m in queries.model_skill(conn)
                if m["gate_rmse"] is not None or m["cnn_rmse"] is not None]


def _login(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/{VIEW_ROUTE}", wait_until="domcontentloaded")
    page.wait_for_selector("input[name=username]", timeout=TIMEOUT_MS)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=TIMEOUT_MS)
    if VIEW_ROUTE not in page.url:
        page.goto(f"{base_url}/{VIEW_ROUTE}", wait_until="domcontentloaded")


def _map_frame(page):
    page.wait_for_selector("iframe", timeout=TIMEOUT_MS)
    for _ in range(100):
        for frame in page.frames:
            if urlparse(frame.url).path.rstrip("/").endswith("/soilclay"):
                return frame
        page.wait_for_timeout(200)
    raise AssertionError(f"the external view shows no /soilclay/ frame: {[f.url for f in page.frames]}")


def check_parcel_map_page(base_url: str, username: str, password: str, engine: Engine,
                          artefact_dir: str | Path) -> dict[str, Any]:
    """Run the checks (see the module doc); returns what was seen (parcels drawn, clicked parcel, plot points,
    the screenshot path, the hosts requested)."""
    from playwright.sync_api import sync_playwright

    base_url = base_url.rstrip("/")
    artefact_dir = Path(artefact_dir)
    artefact_dir.mkdir(parents=True, exist_ok=True)
    requested: list[str] = []
    failed: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 900})
            context.on("request", lambda r: requested.append(r.url))
            context.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            _login(page, base_url, username, password)
            frame = _map_frame(page)
            frame.wait_for_selector("#map[data-ready=true]", timeout=TIMEOUT_MS)
            frame.wait_for_selector("#skill-plot svg", timeout=TIMEOUT_MS)
            page.wait_for_timeout(500)  # a last render after the status panel moved nothing
            frame.wait_for_selector("#map[data-ready=true]", timeout=TIMEOUT_MS)

            rendered = int(frame.get_attribute("#map", "data-parcels-rendered"))
            extent = [float(v) for v in frame.evaluate("JSON.parse(document.getElementById('map').dataset.viewExtent)")]
            with queries.read_only_as(engine, queries.READER, "counting parcels in the view") as conn:
                expected = queries.parcels_in_extent(conn, tuple(extent))
            assert expected > 0, f"no parcel in the view {extent}"
            assert rendered == expected, f"the map draws {rendered} parcels, PostGIS has {expected} in {extent}"

            probe = _probe_parcel(engine, extent)
            pixel = frame.evaluate("c => window.soilclayMap.pixelOf(c)", [probe["x"], probe["y"]])
            frame.locator("#map").click(position={"x": pixel[0], "y": pixel[1]})
            frame.wait_for_selector(f"#parcel-detail[data-parcel-key='{probe['parcel_key']}']", timeout=TIMEOUT_MS)
            shown = float(frame.get_attribute("#parcel-detail [data-field=clay]", "data-value"))
            assert abs(shown - probe["clay"]) < 1e-3, \
                f"parcel {probe['parcel_key']}: the page shows {shown}, PostGIS holds {probe['clay']}"

            points = sorted(int(v) for v in frame.eval_on_selector_all(
                "#skill-plot circle[data-version]", "els => els.map(e => e.dataset.version)"))
            versions = sorted(_versions_with_skill(engine))
            assert points == versions, f"skill plot points {points}, model versions {versions}"

            for mode in ("width", "flags", "clay"):
                frame.select_option("#mode", mode)
                assert frame.get_attribute("#legend", "data-mode") == mode
            frame.wait_for_selector("#map[data-ready=true]", timeout=TIMEOUT_MS)
            page.wait_for_timeout(300)
            screenshot = artefact_dir / "parcel-map.png"
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    hosts = sorted({urlparse(u).hostname or "" for u in requested if urlparse(u).scheme in ("http", "https", "ws",
                                                                                               "wss")})
    foreign = [u for u in requested if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and (urlparse(u).hostname or "") not in LOCAL_HOSTS]
    assert not foreign, f"requests left the machine: {foreign[:10]}"
    return {"parcels_rendered": rendered, "parcels_in_view": expected, "view_extent": extent,
            "clicked": {"parcel_key": probe["parcel_key"], "clay": shown}, "skill_points": points,
            "screenshot": str(screenshot), "hosts": hosts, "requests": len(requested), "failed_requests": failed}
