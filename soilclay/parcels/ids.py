"""Parcel ids: which column(s) hold them, their text form, ids derived from geometry, duplicates."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from soilclay.errors import BadInputError

#: Id columns tried in order when none is given: (columns joined with ``/``, the convention).
ID_CANDIDATES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("parcel_id",), "soilclay convention"),
    (("id",), "fiboa / Dutch BRP"),
    (("FLIK",), "German Feldblock-Identifikator"),
    (("GEO_ID",), "Austrian INSPIRE Schläge, geometry id"),
    (("TUNNUS",), "Finnish GSAA parcel id"),
    (("ID_PARCEL",), "French RPG parcel id"),
    (("Journalnr", "Marknr"), "Danish Markkort: journal number / field number"),
)
#: Separator of composite ids (several id columns).
ID_SEPARATOR = "/"
#: Prefix of ids derived from the geometry.
DERIVED_PREFIX = "geom-"
#: Rounding grid of derived ids: metres in projected CRSs, about 1 cm in degrees in geographic ones.
DERIVED_GRID_M = 0.01
DERIVED_GRID_DEG = 1e-7




@dataclass(frozen=True)
class IdChoice:
    """Where parcel ids come from: ``columns`` (joined with ``/``) or, when empty, the geometry."""

    columns: tuple[str, ...]
    how: str  # 'given', 'detected' or 'derived'
    note: str = ""

    def describe(self) -> str:
        if not self.columns:
            return self.note
        cols = " + ".join(self.columns)
        joined = f" joined with '{ID_SEPARATOR}'" if len(self.columns) > 1 else ""
        what = f"column{'s' if len(self.columns) > 1 else ''} {cols}{joined}"
        return f"ids from {what} ({self.how}{': ' + self.note if self.note else ''})"


def choose_id(columns: Iterable[str], id_column: str | None, *, where: str = "input") -> IdChoice:
    """Which column(s) hold the parcel id: ``id_column`` (``"A+B"`` for several), else the first of
    :data:`ID_CANDIDATES` present, else the geometry. Raises :class:`BadInputError` naming the
    available columns when ``id_column`` is absent."""
    available = [str(c) for c in columns]
    by_lower: dict[str, str] = {}
    for name in available:
        by_lower.setdefault(name.lower(), name)

    def find(name: str) -> str | None:
        return name if name in available else by_lower.get(name.strip().lower())

    if id_column is not None:
        parts = [id_column] if find(id_column) else [p for p in id_column.split("+") if p.strip()]
        found = [find(p) for p in parts]
        if not parts or None in found:
            missing = ", ".join(p for p, f in zip(parts, found, strict=True) if f is None) or repr(id_column)
            raise BadInputError(f"{where}: id column {missing} not found; available columns: "
                                f"{', '.join(available) or 'none'}")
        return IdChoice(tuple(f for f in found if f is not None), "given")
    for names, convention in ID_CANDIDATES:
        found = [find(n) for n in names]
        if None not in found:
            return IdChoice(tuple(f for f in found if f is not None), "detected", convention)
    tried = ", ".join("+".join(names) for names, _ in ID_CANDIDATES)
    return IdChoice((), "derived", f"no id column found (looked for {tried}; give one with --id-column); ids derived "
                                   f"from the geometry: '{DERIVED_PREFIX}' + 16 hex digits of SHA-256 of the WKB of "
                                   f"the normalised geometry rounded to 0.01 m (1e-7 degrees if geographic) in the "
                                   f"source CRS")


def id_text(value: Any) -> str:
    """An id cell as text ('' for missing): integral numbers without a decimal point, strings stripped."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else repr(float(value))
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _hash_grid(crs: CRS) -> float:
    if crs.is_geographic:
        return DERIVED_GRID_DEG
    try:
        metres_per_unit = float(crs.axis_info[0].unit_conversion_factor) or 1.0
    except (IndexError, AttributeError):
        metres_per_unit = 1.0
    return DERIVED_GRID_M / metres_per_unit


def derived_id(geometries: np.ndarray, crs: CRS) -> list[str]:
    """Stable ids from geometries in their source CRS: ``geom-`` + the first 16 hex digits of the SHA-256
    of the little-endian 2-D WKB of the normalised geometry with coordinates rounded to 0.01 m."""
    grid = _hash_grid(crs)
    rounded = shapely.transform(np.asarray(geometries, dtype=object), lambda c: np.round(c / grid) * grid + 0.0)
    wkbs = shapely.to_wkb(shapely.normalize(rounded), output_dimension=2, byte_order=1)
    return [DERIVED_PREFIX + hashlib.sha256(w).hexdigest()[:16] for w in wkbs]


# --------------------------------------------------------------------------- ids per feature


def _ids(frame: pd.DataFrame, choice: IdChoice, reasons: list[list[str]]) -> list[str]:
    """Ids from the chosen columns ('' where blank, with the reason noted)."""
    columns = [[id_text(v) for v in frame[c].to_numpy(dtype=object)] for c in choice.columns]
    ids = []
    for i, parts in enumerate(zip(*columns, strict=True)):
        blank = [c for c, p in zip(choice.columns, parts, strict=True) if not p]
        if blank:
            reasons[i].insert(0, f"blank id ({', '.join(blank)})")
            ids.append("")
        else:
            ids.append(ID_SEPARATOR.join(parts))
    return ids


def _dedupe(ids: list[str], reasons: list[list[str]], derived: bool) -> None:
    """Reject later loadable features repeating the id of an earlier loadable one."""
    first: dict[str, int] = {}
    for i, pid in enumerate(ids):
        if reasons[i]:
            continue
        if pid in first:
            what = "the same geometry" if derived else "the same id"
            reasons[i].append(f"duplicate id {pid}: feature {first[pid] + 1} has {what} and is kept")
        else:
            first[pid] = i


