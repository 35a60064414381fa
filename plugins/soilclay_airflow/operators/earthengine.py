"""Operator that starts one Earth Engine composite export and waits for its COG in Cloud Storage.

``execute()`` starts the export, then defers to :class:`EarthEngineExportTrigger` (the worker slot is
freed while Earth Engine computes) or, with ``deferrable=False``, blocks in
:func:`soilclay.earthengine.operations.wait_for_export`. Both paths decide with the same
:func:`~soilclay.earthengine.operations.export_outcome` and
:func:`~soilclay.earthengine.operations.decide_poll_error`, and fail with the same soilclay errors:
:class:`FinalExternalError` for a failed or cancelled export, :class:`TransientExternalError` when it
is still running at the timeout or the budget of consecutive transient poll errors ran out, and the
poll error's own class (:mod:`soilclay.earthengine.errors`) when reading the operation failed for good.

Tasks run in the ``earthengine`` pool by default (create it with the number of concurrent exports
the project's Earth Engine quota allows); a deferred task leaves the pool slot unless the pool counts
deferred tasks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from typing import Any

from airflow.sdk import BaseOperator

from soilclay.earthengine import operations
from soilclay.earthengine.errors import error_of_kind
from soilclay.errors import BadInputError, FinalExternalError
from soilclay_airflow.hooks.earthengine import EarthEngineHook
from soilclay_airflow.triggers.earthengine import DEFAULT_POLL_INTERVAL_S, EarthEngineExportTrigger

EARTHENGINE_POOL = "earthengine"


def _sleep(seconds: float) -> None:  # the waiting path's sleep (tests patch it)
    time.sleep(seconds)


def _period(period: Sequence[str | date]) -> tuple[date, date]:
    if isinstance(period, str | bytes) or len(period) != 2:
        raise BadInputError(f"period must be [start, end] ISO dates, found {period!r}")
    try:
        start, end = (p if isinstance(p, date) else date.fromisoformat(str(p)) for p in period)
    except ValueError as exc:
        raise BadInputError(f"period must be [start, end] ISO dates, found {period!r}: {exc}") from exc
    return start, end


class EarthEngineExportOperator(BaseOperator):
    """Export ``sensor``'s composite of ``recipe`` over ``aoi_geometry`` (GeoJSON, EPSG:4326) and
    ``period`` (``[start, end]`` inclusive ISO dates), made of exactly the scenes ``scene_ids`` (Earth
    Engine's ``system:index``, as :func:`soilclay.composites.selection.selection_of` picks them for the
    plan), to ``gs://bucket/prefix/name.tif``; return that URI.

    ``poll_interval``, ``timeout`` (seconds, counted from the start of the export) and
    ``poll_error_budget`` (consecutive transient poll errors retried) apply to both the deferrable
    and the waiting path.
    """

    template_fields: Sequence[str] = ("recipe", "sensor", "aoi_geometry", "period", "name", "scene_ids", "bucket",
                                      "prefix")
    ui_color = "#c8e6c9"

    def __init__(self, *, recipe: dict, sensor: str, aoi_geometry: dict, period: Sequence[str], name: str,
                 scene_ids: Sequence[str], bucket: str, prefix: str = "",
                 conn_id: str = EarthEngineHook.default_conn_name,
                 deferrable: bool = True, poll_interval: float = DEFAULT_POLL_INTERVAL_S,
                 timeout: float = operations.DEFAULT_WAIT_TIMEOUT_S,
                 poll_error_budget: int = operations.DEFAULT_POLL_ERROR_BUDGET, **kwargs: Any) -> None:
        kwargs.setdefault("pool", EARTHENGINE_POOL)
        super().__init__(**kwargs)
        self.recipe = recipe
        self.sensor = sensor
        self.aoi_geometry = aoi_geometry
        self.period = period
        self.name = name
        self.scene_ids = scene_ids
        self.bucket = bucket
        self.prefix = prefix
        self.conn_id = conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.poll_error_budget = poll_error_budget

    def execute(self, context: Any) -> str:
        from soilclay.composites.recipe import Recipe

        recipe, period = Recipe.parse(self.recipe), _period(self.period)  # bad input fails before any call
        if isinstance(self.scene_ids, str | bytes) or not self.scene_ids:
            raise BadInputError(f"scene_ids must be a non-empty list of scene ids, found {self.scene_ids!r}")
        from soilclay.composites.earthengine import EarthEngineBackend  # imports ee: only in the task

        backend = EarthEngineBackend(self.bucket, self.prefix)
        hook = EarthEngineHook(conn_id=self.conn_id)
        hook.initialize()
        started_at = time.time()
        operation, uri = backend.start(recipe, self.sensor, self.aoi_geometry, period, self.name,
                                       [str(i) for i in self.scene_ids])
        self.log.info("Earth Engine export %s started -> %s", operation, uri)
        if self.deferrable:
            self.defer(trigger=EarthEngineExportTrigger(operation_name=operation, conn_id=self.conn_id,
                                                        poll_interval=self.poll_interval, timeout=self.timeout,
                                                        started_at=started_at, uri=uri,
                                                        poll_error_budget=self.poll_error_budget),
                       method_name="execute_complete", kwargs={"uri": uri})
        operations.wait_for_export(operation, get_operation=hook.get_operation, poll_seconds=self.poll_interval,
                                   timeout_seconds=self.timeout, poll_error_budget=self.poll_error_budget,
                                   sleep=_sleep)
        self.log.info("Earth Engine export %s succeeded -> %s", operation, uri)
        return uri

    def execute_complete(self, context: Any, event: dict[str, Any], uri: str | None = None) -> str:
        """The COG URI when the trigger reported success; else raise with the export's message."""
        status, message = event.get("status"), event.get("message") or f"no message (event {event!r})"
        if status == "success":
            result = uri or event.get("uri")
            if not result:
                raise FinalExternalError(f"export {event.get('operation')} succeeded but reported no destination")
            self.log.info("%s -> %s", message, result)
            return result
        # Events of older triggers carry no error_kind: a timeout was transient, anything else final.
        raise error_of_kind(event.get("error_kind") or ("transient" if status == "timeout" else "final"), message)
