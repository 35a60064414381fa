"""Catalogue filters shared by scene listing and composites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from soilclay.earthengine import filters
from soilclay.errors import BadInputError
from tests.earthengine.offline import expression, field_filters


def test_s1_iw_dual_pol_filter(ee_api):
    tree = expression(filters.s1_iw_dual_pol_filter())
    assert sorted(field_filters(tree, "Filter.equals")) == [("instrumentMode", "IW"), ("resolution_meters", 10)]
    assert sorted(field_filters(tree, "Filter.listContains")) == [
        ("transmitterReceiverPolarisation", "VH"), ("transmitterReceiverPolarisation", "VV")]


def test_acquired_after_compares_epoch_milliseconds(ee_api):
    since = datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    expected = int(datetime(2024, 3, 1, 11, 0, tzinfo=UTC).timestamp() * 1000)
    assert field_filters(expression(filters.acquired_after(since)), "Filter.greaterThan") == [
        ("system:time_start", expected)]
    with pytest.raises(BadInputError, match="timezone-aware"):
        filters.acquired_after(datetime(2024, 1, 1))
