"""Catalogue filters shared by the scene listing (:mod:`soilclay.scenes.earthengine`) and the
composites (:mod:`soilclay.composites.earthengine`), so both see the same scenes."""

from __future__ import annotations

from datetime import datetime

import ee

from soilclay.errors import BadInputError


def s1_iw_dual_pol_filter() -> ee.Filter:
    """S1_GRD scenes the composite uses: IW mode, VV+VH, 10 m GRD."""
    return ee.Filter.And(
        ee.Filter.eq("instrumentMode", "IW"),
        ee.Filter.listContains("transmitterReceiverPolarisation", "VV"),
        ee.Filter.listContains("transmitterReceiverPolarisation", "VH"),
        ee.Filter.eq("resolution_meters", 10),
    )


def acquired_after(since: datetime) -> ee.Filter:
    """Images whose acquisition (``system:time_start``, ms since the epoch) is after ``since``."""
    if since.tzinfo is None:
        raise BadInputError(f"since must be timezone-aware, found {since.isoformat()}")
    return ee.Filter.gt("system:time_start", round(since.timestamp() * 1000))
