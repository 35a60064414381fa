"""Feature tables from CSV for ``soilclay train --table``: column mapping, coordinates, folds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import CRS, Transformer

from soilclay.contract import S1_BANDS, S2_BANDS
from soilclay.errors import BadInputError
from soilclay.model.features import Features


@dataclass(frozen=True)
class TableSpec:
    target: str
    band_columns: tuple[str, ...] = S2_BANDS
    sar_columns: tuple[str, ...] | None = None  # None: VV, VH, VV_VH when the table has them
    x_col: str | None = None
    y_col: str | None = None
    crs: str | None = None  # of x/y; lon/lat columns are EPSG:4326
    folds_column: str | None = None


@dataclass
class Table:
    features: Features
    y: np.ndarray
    xy: np.ndarray | None  # projected metres, for spatial blocks
    folds: np.ndarray | None
    dropped: int
    source: str


def utm_for(lon: float, lat: float) -> str:
    return f"EPSG:{(32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1}"


def load_table(path: Path, spec: TableSpec, inputs: tuple[str, ...]) -> Table:
    if not path.exists():
        raise BadInputError(f"feature table not found: {path}")
    frame = pd.read_csv(path)
    return table_from_frame(frame, spec, inputs, source=str(path))


def table_from_frame(frame: pd.DataFrame, spec: TableSpec, inputs: tuple[str, ...], source: str = "table") -> Table:
    if spec.target not in frame.columns:
        raise BadInputError(f"{source}: target column {spec.target!r} not found; columns: {list(frame.columns)}")
    if len(spec.band_columns) != len(S2_BANDS):
        raise BadInputError(f"--band-columns needs {len(S2_BANDS)} columns in the order {S2_BANDS}, "
                            f"found {len(spec.band_columns)}")
    data = pd.DataFrame(index=frame.index)
    missing = [c for c in spec.band_columns if c not in frame.columns]
    if missing:
        raise BadInputError(f"{source}: band columns {missing} not found; columns: {list(frame.columns)}")
    for ours, theirs in zip(S2_BANDS, spec.band_columns, strict=True):
        data[ours] = frame[theirs]
    sar = spec.sar_columns if spec.sar_columns is not None else (
        S1_BANDS if all(c in frame.columns for c in S1_BANDS) else ())
    if sar:
        if len(sar) != len(S1_BANDS) or any(c not in frame.columns for c in sar):
            raise BadInputError(f"{source}: --sar-columns needs {len(S1_BANDS)} existing columns (for "
                                f"{', '.join(S1_BANDS)}), found {list(sar)}")
        for ours, theirs in zip(S1_BANDS, sar, strict=True):
            data[ours] = frame[theirs]
    xy = None
    if spec.x_col or spec.y_col:
        if not (spec.x_col and spec.y_col and spec.crs):
            raise BadInputError("projected coordinates need --x-col, --y-col and --crs together")
        for c in (spec.x_col, spec.y_col):
            if c not in frame.columns:
                raise BadInputError(f"{source}: coordinate column {c!r} not found")
        x, y = frame[spec.x_col].to_numpy(float), frame[spec.y_col].to_numpy(float)
        lon, lat = Transformer.from_crs(spec.crs, "EPSG:4326", always_xy=True).transform(x, y)
        data["lon"], data["lat"] = lon, lat
        if CRS.from_user_input(spec.crs).is_projected:
            xy = np.column_stack([x, y])
    elif {"lon", "lat"} <= set(frame.columns):
        data["lon"], data["lat"] = frame["lon"], frame["lat"]
    if "lon" in data and xy is None:
        ok = data[["lon", "lat"]].notna().all(axis=1)
        utm = utm_for(float(data.loc[ok, "lon"].mean()), float(data.loc[ok, "lat"].mean()))
        x, y = Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform(data["lon"].to_numpy(),
                                                                               data["lat"].to_numpy())
        xy = np.column_stack([x, y])
    data["__target"] = pd.to_numeric(frame[spec.target], errors="coerce")
    folds = None
    if spec.folds_column:
        if spec.folds_column not in frame.columns:
            raise BadInputError(f"{source}: folds column {spec.folds_column!r} not found")
        data["__folds"] = frame[spec.folds_column]
    keep = data.drop(columns=["__folds"], errors="ignore").notna().all(axis=1)
    dropped = int((~keep).sum())
    data = data[keep]
    if len(data) < 10:
        raise BadInputError(f"{source}: only {len(data)} complete rows (target and features); at least 10 needed")
    available = tuple(n for n, ok in (("optical", True), ("sar", bool(sar)), ("coords", "lon" in data)) if ok)
    used = tuple(n for n in inputs if n in available)
    if "__folds" in data:
        folds = data["__folds"].to_numpy()
    return Table(Features.from_frame(data, used, source=source), data["__target"].to_numpy(float),
                 xy[keep.to_numpy()] if xy is not None else None, folds, dropped, source)
