"""Airflow plugin: the parcel map and status page (:mod:`soilclay.ui`) inside the Airflow UI.

- ``fastapi_apps``: the app is mounted by the api-server at ``/soilclay`` (page ``/soilclay/``, tiles
  ``/soilclay/tiles/{z}/{x}/{y}.pbf``, ``/soilclay/api/...``).
- ``external_views``: the navigation entry "Parcel map"; the UI shows the page in a frame at
  ``<ui>/plugin/soilclay-parcel-map``.

Plugin apps are not protected by Airflow: every route of this one depends on :func:`authorised`, which
authenticates the request exactly as Airflow's own API does (``airflow.api_fastapi.core_api.security.get_user``:
the ``Authorization: Bearer`` JWT, else the UI's ``_token`` cookie, validated by the auth manager with the
deployment's JWT secret, revocation included) and then asks the auth manager whether that user may view the
website (``AccessView.WEBSITE``). Without a valid token: 401/403 (the page itself redirects to the login).

Database: the Airflow connection ``soilclay_reader`` when defined (a login granted ``soilclay_reader``),
else ``soilclay_db`` (the tasks' connection), else ``SOILCLAY_DATABASE_URL``; every query of the page, map
and status alike, runs in a READ ONLY transaction that first does ``SET LOCAL ROLE soilclay_reader``
(:mod:`soilclay.db.parcel_map`), so it reads the reader's views only (the status panel's are those of
migration 0006), whatever the login; that login must be a member of ``soilclay_reader``.

Import cost: FastAPI and the page's modules (SQLAlchemy, no NumPy, TensorFlow or rasterio); Airflow's
security module, the connection and the engine are loaded on the first request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import Request
from fastapi.security import HTTPBearer

from soilclay.ui.app import create_app

URL_PREFIX = "/soilclay"
URL_ROUTE = "soilclay-parcel-map"
#: Airflow connections tried for the database, in order.
CONN_IDS = ("soilclay_reader", "soilclay_db")
_bearer = HTTPBearer(auto_error=False)


async def authorised(request: Request) -> None:
    """Airflow's authentication of ``request`` (401/403 when it has no valid JWT), then the auth manager's
    decision whether the user may view the website (403 when not)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import HTTPException

    user = await get_user(request, None, await _bearer(request))
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status_code=403, detail="Forbidden")


def login_url(next_url: str) -> str | None:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


def database_url() -> str:
    """The SQLAlchemy URL of the first defined connection of :data:`CONN_IDS`, else soilclay's settings."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    from soilclay.db.engine import url_from_connection

    for conn_id in CONN_IDS:
        try:
            conn = Connection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            continue
        return url_from_connection(login=conn.login, password=conn.password, host=conn.host, port=conn.port,
                                   schema=conn.schema, extra=conn.extra_dejson)
    from soilclay.settings import Settings

    return Settings().database_url


def make_engine():
    from soilclay.db.engine import make_engine as soilclay_engine

    return soilclay_engine(database_url())


def build_app():
    """A fresh app (the plugin's, or a test's): the database is resolved on its first request."""
    return create_app(engine=make_engine, guard=authorised, login_url=login_url)


class SoilclayParcelMapPlugin(AirflowPlugin):
    name = "soilclay_parcel_map"
    fastapi_apps = [{"app": build_app(), "url_prefix": URL_PREFIX, "name": "soilclay parcel map"}]
    external_views = [{"name": "Parcel map", "href": f"{URL_PREFIX}/", "url_route": URL_ROUTE,
                       "destination": "nav", "category": None}]
