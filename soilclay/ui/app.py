"""The FastAPI app of the parcel map: every route behind the ``guard`` dependency the host gives it.

Routes (relative to where the app is mounted, ``/soilclay`` in Airflow):

- ``/`` the page (an unauthenticated browser is redirected to the login, when a login address is known);
- ``/static/{name}`` its JS and CSS and OpenLayers (:mod:`soilclay.ui.assets`);
- ``/tiles/{z}/{x}/{y}.pbf`` Mapbox vector tiles (XYZ, EPSG:3857) of the parcels, layer ``parcels``;
- ``/api/parcels/{parcel_key}`` one parcel's latest estimate and history;
- ``/api/status`` per-AOI freshness, composite versions, model skill by version, recent runs and failures.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import HTTPException as FastAPIHTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import Engine

from soilclay.db import parcel_map as queries
from soilclay.errors import SoilclayError, TransientExternalError
from soilclay.redact import redact
from soilclay.ui import assets
from soilclay.ui.status import build_status

TILE_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"


def create_app(*, engine: Callable[[], Engine], guard: Callable[..., Any],
               login_url: Callable[[str], str | None] | None = None) -> FastAPI:
    """The app. ``engine()`` gives the database engine (called on first use); ``guard`` is a FastAPI
    dependency that raises 401/403 for a request that is not authenticated or not allowed;
    ``login_url(next)`` is where the page sends a browser without a login."""
    app = FastAPI(title="soilclay parcel map", dependencies=[Depends(guard)], docs_url=None, redoc_url=None,
                  openapi_url=None)
    get_engine = cache(engine)
    static = assets.files()

    @app.exception_handler(FastAPIHTTPException)
    async def refused(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (401, 403) and login_url is not None and request.url.path.rstrip("/") == _base(
                request).rstrip("/"):
            target = login_url(str(request.url))
            if target:
                return RedirectResponse(target, status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(SoilclayError)
    async def failed(request: Request, exc: SoilclayError) -> Response:
        code = 503 if isinstance(exc, TransientExternalError) else 500
        return JSONResponse({"detail": redact(str(exc))}, status_code=code)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> HTMLResponse:
        return HTMLResponse(assets.page(_base(request)), headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}")
    def static_file(name: str) -> FileResponse:
        path = static.get(name)
        if path is None or not path.is_file():
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(path, media_type=assets.media_type(path), headers={"Cache-Control": "private, max-age=300"})

    @app.get("/tiles/{z}/{x}/{y}.pbf")
    def vector_tile(z: int, x: int, y: int) -> Response:
        if not queries.tile_in_range(z, x, y):
            raise HTTPException(404, f"no tile {z}/{x}/{y}")
        with queries.read_only_as(get_engine(), queries.READER, "reading a parcel tile") as conn:
            data = queries.tile(conn, z, x, y)
        return Response(data, media_type=TILE_MEDIA_TYPE, headers={"Cache-Control": "private, max-age=60"})

    @app.get("/api/parcels/{parcel_key}")
    def parcel(parcel_key: int) -> dict[str, Any]:
        with queries.read_only_as(get_engine(), queries.READER, "reading a parcel") as conn:
            detail = queries.parcel_detail(conn, parcel_key)
        if detail is None:
            raise HTTPException(404, f"no parcel {parcel_key}")
        return {"parcel": detail.latest, "history": detail.history}

    @app.get("/api/status")
    def status() -> dict[str, Any]:
        return build_status(get_engine())

    return app


def _base(request: Request) -> str:
    """The app's own URL prefix (where it is mounted), ending in ``/``."""
    root = request.scope.get("root_path", "") or ""
    return quote(root.rstrip("/")) + "/"
