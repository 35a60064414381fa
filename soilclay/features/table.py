"""The feature table at soil sample points: its layout, shared by the local and Earth Engine paths.

One row per usable sample, in this column order (:func:`table_columns`): ``sample_id, point_id,
lon, lat, clay``, the Sentinel-2 composite's ``B02 .. B12`` and ``bare_count``, and, when a
Sentinel-1 composite is used, ``VV VH VV_VH``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from soilclay.contract import S1_BANDS, S2_BANDS

ID_COLUMNS = ("sample_id", "point_id", "lon", "lat", "clay")
#: Features from the Sentinel-2 composite: the spectrum, then how many bare observations made it.
S2_FEATURES = (*S2_BANDS, "bare_count")
#: Features from the Sentinel-1 composite (its ``count`` band is not a feature).
S1_FEATURES = S1_BANDS
#: Per-point outcome of :func:`sample_composites`.
STATUS_OK, STATUS_NODATA, STATUS_OUTSIDE = "ok", "nodata", "outside"


def table_columns(with_s1: bool) -> list[str]:
    """The feature table's columns, in order."""
    return [*ID_COLUMNS, *S2_FEATURES, *(S1_FEATURES if with_s1 else ())]


def as_table(frame: pd.DataFrame, with_s1: bool) -> pd.DataFrame:
    """``frame`` in the table layout with its dtypes (shared by the local and Earth Engine paths)."""
    columns = table_columns(with_s1)
    table = frame.reindex(columns=columns).reset_index(drop=True)
    table["sample_id"] = table["sample_id"].astype("int64")
    table["point_id"] = table["point_id"].astype(str)
    for column in columns[2:]:
        table[column] = table[column].astype("float64")
    return table


@dataclass
class FeatureTable:
    """Training rows at sample points, how many samples were asked for and dropped, and the lineage."""

    data: pd.DataFrame
    requested: int
    excluded_nodata: int = 0
    excluded_outside: int = 0
    lineage: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data.attrs["lineage"] = self.lineage

    @property
    def excluded(self) -> int:
        return self.excluded_nodata + self.excluded_outside

    def render(self) -> str:
        used = ", ".join(f"{k} {v}" for k, v in self.lineage.items() if k.endswith("_composite_id") and v is not None)
        return (f"{len(self.data)} of {self.requested} samples with features ({used or 'composites unknown'}); "
                f"excluded {self.excluded_nodata} on nodata pixels, {self.excluded_outside} outside the rasters")
