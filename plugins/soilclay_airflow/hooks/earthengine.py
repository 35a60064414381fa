"""Earth Engine hook: owns the credentials (an Airflow Google Cloud connection) and the ``ee`` session.

Connection extras, as the Google provider names them (bare or prefixed ``extra__google_cloud_platform__``):

- ``project`` (required): the Google Cloud project Earth Engine bills; never guessed from the key.
- ``key_path``: path of a service-account JSON key on the worker/triggerer, or
- ``keyfile_dict``: the key itself (a dict or its JSON string), written to a private temporary file
  only for the time :func:`soilclay.earthengine.session.initialize` reads it.
- ``service_account`` (optional): the account email; defaults to the key's ``client_email``.

Without a key the default credentials are used. A connection that lacks or garbles any of this is
a :class:`BadInputError` (the rule of :mod:`soilclay.earthengine.errors`). Nothing here logs a key.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseHook

from soilclay.errors import BadInputError

_PREFIX = "extra__google_cloud_platform__"


def _extra(extras: Mapping[str, Any], key: str) -> Any:
    value = extras.get(key)
    return value if value not in (None, "") else extras.get(_PREFIX + key)


class EarthEngineHook(BaseHook):
    """Initialises Earth Engine from the Airflow connection ``conn_id`` and reads export operations.

    ``ee`` keeps one session per process: the last initialisation wins, so one triggerer or worker
    process should use one Earth Engine project/account.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "google_cloud_default"
    conn_type = "google_cloud_platform"
    hook_name = "Google Earth Engine"

    def __init__(self, conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.conn_id = conn_id
        self._initialized = False
        self._lock = threading.Lock()

    def credentials(self) -> tuple[str, str | None, str | None, dict | None]:
        """(project, service account email, key path, key dict) from the connection's extras."""
        from soilclay.earthengine import session  # imports ee: only when a task really needs it

        extras = self.get_connection(self.conn_id).extra_dejson
        project = str(_extra(extras, "project") or "").strip()
        if not project:
            raise BadInputError(f"Airflow connection {self.conn_id!r} has no 'project' extra: Earth Engine needs "
                                "an explicit Google Cloud project id")
        key_path = _extra(extras, "key_path") or None
        key_dict = _extra(extras, "keyfile_dict") or None
        if key_path and key_dict:
            raise BadInputError(f"Airflow connection {self.conn_id!r} sets both 'key_path' and 'keyfile_dict'; "
                                "give one")
        if isinstance(key_dict, str):
            try:
                key_dict = json.loads(key_dict)
            except ValueError:  # no exception text: it would quote the key
                raise BadInputError(f"'keyfile_dict' of Airflow connection {self.conn_id!r} is not valid JSON") \
                    from None
        if key_dict is not None and not isinstance(key_dict, Mapping):
            raise BadInputError(f"'keyfile_dict' of Airflow connection {self.conn_id!r} must be a JSON object")
        account = _extra(extras, "service_account") or None
        if account is None and (key_path or key_dict):
            key = dict(key_dict) if key_dict else session.read_key_file(key_path)
            try:
                account = session.service_account_of(key, account)
            except BadInputError as exc:
                raise BadInputError(f"Airflow connection {self.conn_id!r}: {exc}") from None
        return project, account, key_path, dict(key_dict) if key_dict else None

    def initialize(self) -> None:
        """Initialise Earth Engine (once per hook) with the connection's project and key."""
        with self._lock:
            if self._initialized:
                return
            from soilclay.earthengine import session

            project, account, key_path, key_dict = self.credentials()
            source = "key_path" if key_path else "keyfile_dict" if key_dict else "default credentials"
            self.log.info("Initialising Earth Engine for project %s from connection %s (%s)", project, self.conn_id,
                          source)
            if key_dict is None:
                session.initialize(project, account, key_path)
            else:
                session.initialize_with_key(project, key_dict, account)
            self._initialized = True

    def get_conn(self) -> Any:
        """The initialised ``ee`` module."""
        self.initialize()
        import ee

        return ee

    def get_operation(self, name: str) -> dict:
        """The Cloud API operation dict of ``name`` (``ee.data.getOperation``); errors propagate
        untranslated: the waiting paths decide on them with ``operations.decide_poll_error``."""
        return dict(self.get_conn().data.getOperation(name))

    async def aget_operation(self, name: str) -> dict:
        """:meth:`get_operation` run in a thread, so the triggerer's event loop is never blocked."""
        return await asyncio.to_thread(self.get_operation, name)
