"""Load soil samples in the LUCAS topsoil style from CSV into ``soilclay.samples``.

Columns are matched case-insensitively (surrounding blanks ignored); for each field the first
alternative present in the file wins:

============  =====================================================================  =========
field         accepted column names                                                  needed
============  =====================================================================  =========
point id      ``POINTID`` (LUCAS 2018), ``Point_ID``/``POINT_ID`` (LUCAS 2009/2015),   required
              ``point_id``, ``id``
latitude      ``TH_LAT`` (LUCAS 2018 theoretical point), ``GPS_LAT`` (2009/2015),      required
              ``LAT``, ``latitude``
longitude     ``TH_LONG``, ``GPS_LONG``, ``LON``, ``longitude``                       required
clay          ``Clay`` (mass %)                                                      required
sand          ``Sand`` (mass %)                                                      optional
silt          ``Silt`` (mass %)                                                      optional
survey date   ``SURVEY_DATE`` (LUCAS 2018, ``dd-mm-yy``; ISO ``YYYY-MM-DD`` also),     optional
              ``Date``, ``survey_date``
============  =====================================================================  =========

Coordinates are EPSG:4326 longitude/latitude unless ``x_col``/``y_col``/``crs`` say otherwise
(e.g. ``x_col="X", y_col="Y", crs="EPSG:25833"``); they are then reprojected to EPSG:4326, the
storage CRS. Dates are also read as ``dd-mm-yyyy``, ``dd/mm/yy``, ``dd/mm/yyyy`` and ``dd.mm.yyyy``
(day first, as in every LUCAS release). Every other column is kept, as written, in ``attributes``
(so LUCAS chemistry such as ``OC`` or ``pH_H2O`` travels with the sample). Files may be comma- or
semicolon-separated, UTF-8 (with or without BOM) or Latin-1; numbers use a decimal point.

Each row is checked and every problem is reported with the row number a spreadsheet shows
(header = row 1, first data row = row 2) and a reason naming the column and the value: clay
missing or outside 0-100, sand or silt outside 0-100, clay + sand + silt not within 100 +- 5 when all
three are given, coordinates missing, not numbers or out of range, an unreadable or future date,
a missing point id. The same (point id, survey date) twice keeps the first valid row; later ones
are reported as duplicates. Bad rows are skipped, never inserted; blank lines are ignored.

Loading upserts all valid rows in one set-based statement, in one transaction: the same file
loaded again changes nothing, a corrected value in a reloaded file updates its row, and a failure
leaves nothing half-written. :class:`LoadReport` counts inserted, updated and unchanged rows.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from soilclay.db import samples as samples_repo
from soilclay.db.tx import transaction
from soilclay.errors import BadInputError

log = logging.getLogger(__name__)

#: Accepted column names per field, in order of preference (matched case-insensitively).
COLUMNS: dict[str, tuple[str, ...]] = {
    "point_id": ("POINTID", "Point_ID", "POINT_ID", "point_id", "id"),
    "lat": ("TH_LAT", "GPS_LAT", "LAT", "lat", "latitude"),
    "lon": ("TH_LONG", "GPS_LONG", "LON", "lon", "longitude"),
    "clay": ("Clay", "clay"),
    "sand": ("Sand", "sand"),
    "silt": ("Silt", "silt"),
    "survey_date": ("SURVEY_DATE", "Date", "date", "survey_date"),
}
REQUIRED = ("point_id", "lat", "lon", "clay")
LABELS = {"point_id": "point id", "lat": "latitude", "lon": "longitude", "survey_date": "survey date"}
#: Texture fractions must sum to 100 within this tolerance (the database CHECK: 95..105).
SUM_TOLERANCE = 5.0
DATE_FORMATS = ("%Y-%m-%d", "%d-%m-%y", "%d-%m-%Y", "%d/%m/%y", "%d/%m/%Y", "%d.%m.%Y")
#: Columns of the parsed table (:func:`parse_samples`).
PARSED_COLUMNS = ("row", "point_id", "lon", "lat", "clay", "sand", "silt", "survey_date", "attributes")
#: Data rows are numbered as a spreadsheet shows them: the header is row 1.
FIRST_DATA_ROW = 2
_MISSING = {"", "na", "n/a", "nan", "null", "none"}
_DUPLICATE = "duplicate of row"


class RowProblem(NamedTuple):
    """A reason a CSV row was skipped; ``row`` as a spreadsheet numbers it (header = 1)."""

    row: int
    reason: str


@dataclass
class LoadReport:
    """What a load did: rows read and kept, database outcome, and every problem by row number."""

    path: str
    source: str
    rows: int
    valid: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    #: Valid samples inside no registered AOI, and how many of those would be inside one with lon/lat swapped.
    outside_aois: int = 0
    swapped_inside: int = 0
    outside_examples: tuple[str, ...] = ()

    @property
    def skipped(self) -> int:
        """Rows not loaded (bad or duplicate); a row may have several problems."""
        return len({p.row for p in self.problems})

    def summary(self) -> dict[str, Any]:
        """Counts for a run record."""
        return {"source": self.source, "rows": self.rows, "valid": self.valid, "inserted": self.inserted,
                "updated": self.updated, "unchanged": self.unchanged, "skipped": self.skipped,
                "duplicates": self.duplicates, "problems": len(self.problems), "outside_aois": self.outside_aois,
                "swapped_inside": self.swapped_inside}

    def outside_warning(self) -> str | None:
        """The warning line for samples that fall outside every AOI (None when all are inside one)."""
        if not self.outside_aois:
            return None
        hint = (f"; {self.swapped_inside} of them would be inside one with longitude and latitude swapped: "
                "check the coordinate columns" if self.swapped_inside else "")
        return (f"warning: {self.outside_aois} of {self.valid} samples from {self.path} fall outside every "
                f"registered AOI (e.g. {', '.join(self.outside_examples)}){hint}")

    def render(self, max_problems: int = 20) -> str:
        lines = [f"samples from {self.path} (source {self.source!r}): {self.rows} rows read, {self.valid} valid; "
                 f"inserted {self.inserted}, updated {self.updated}, unchanged {self.unchanged}"]
        if self.problems:
            lines.append(f"skipped {self.skipped} rows ({self.duplicates} duplicates), {len(self.problems)} problems:")
            lines += [f"  row {p.row}: {p.reason}" for p in self.problems[:max_problems]]
            if len(self.problems) > max_problems:
                lines.append(f"  ... and {len(self.problems) - max_problems} more")
        if (warning := self.outside_warning()) is not None:
            lines.append(warning)
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading


#: Leading bytes of files that are often handed over instead of a CSV export.
_MAGIC = ((b"PK\x03\x04", "a ZIP archive (an .xlsx workbook?)"), (b"\xd0\xcf\x11\xe0", "an old Excel/Office file"),
          (b"%PDF", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"\x1f\x8b", "a gzip archive"),
          (b"SQLite format 3", "an SQLite database (a GeoPackage?)"), (b"II*\x00", "a TIFF image"),
          (b"MM\x00*", "a TIFF image"), (b"\xff\xd8\xff", "a JPEG image"))


def _refuse_binary(path: Path) -> None:
    """One line when ``path`` is not text at all (its bytes are never echoed back)."""
    with open(path, "rb") as f:
        head = f.read(8192)
    kind = next((what for magic, what in _MAGIC if head.startswith(magic)), None)
    if kind is None and b"\x00" in head:
        kind = "binary data (it contains NUL bytes)"
    if kind is not None:
        raise BadInputError(f"samples file {path} is not a CSV text file: it looks like {kind}; "
                            "expected comma- or semicolon-separated text with a header row")


def read_table(path: Path) -> pd.DataFrame:
    """The CSV as strings, one row per physical line after the header (blank lines kept as empty rows,
    so that the index maps to spreadsheet row numbers)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"samples file not found: {path}")
    _refuse_binary(path)
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            with open(path, encoding=encoding, newline="") as f:
                header = f.readline()
            sep = ";" if header.count(";") > header.count(",") else ","
            # index_col=False: a trailing delimiter on every line must not turn the first column into an index
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False,
                               encoding=encoding, index_col=False)
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError as e:
            raise BadInputError(f"samples file {path} is empty: expected a header row and data rows") from e
        except pd.errors.ParserError as e:
            raise BadInputError(f"cannot read {path} as CSV: {e}") from e
    raise BadInputError(f"cannot decode {path}: expected UTF-8 or Latin-1 text")  # pragma: no cover


def _text(value: Any) -> str:
    """A cell of a caller's DataFrame as the string a CSV would hold."""
    if value is None or value is pd.NaT or (isinstance(value, float | np.floating) and math.isnan(value)):
        return ""
    if isinstance(value, float | np.floating) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime | pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _distinct(names: tuple[str, ...]) -> list[str]:
    """``names`` without case-insensitive repeats, first spelling kept."""
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.lower(), name)
    return list(seen.values())


def resolve_columns(found: list[str], *, x_col: str | None = None, y_col: str | None = None,
                    where: str = "input") -> dict[str, str | None]:
    """Field -> column name in the file (None for absent optional fields).

    Raises :class:`BadInputError` naming every missing required field, its accepted names and the
    columns found."""
    by_lower: dict[str, str] = {}
    for name in found:
        by_lower.setdefault(str(name).strip().lower(), name)
    alternatives = dict(COLUMNS)
    if (x_col is None) != (y_col is None):
        raise BadInputError(f"give both x_col and y_col for projected coordinates, found x_col={x_col!r}, "
                            f"y_col={y_col!r}")
    if x_col is not None and y_col is not None:
        alternatives["lon"], alternatives["lat"] = (x_col,), (y_col,)
    resolved = {f: next((by_lower[a.lower()] for a in alts if a.lower() in by_lower), None)
                for f, alts in alternatives.items()}
    missing = [f"{LABELS.get(f, f)} (one of {', '.join(_distinct(alternatives[f]))})"
               for f in REQUIRED if resolved[f] is None]
    if missing:
        raise BadInputError(f"{where}: missing required columns: {'; '.join(missing)}; "
                            f"found columns: {', '.join(map(str, found)) or 'none'}")
    return resolved


# --------------------------------------------------------------------------- per-field checks


def _is_missing(raw: str) -> bool:
    return raw.strip().lower() in _MISSING


def _number(raw: str, column: str, problems: list[str]) -> float | None:
    """The value as a finite float; None (with a problem noted) when it is not one."""
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{column} {raw!r} is not a number")
        return None
    if not math.isfinite(value):
        problems.append(f"{column} {raw!r} is not a finite number")
        return None
    return value


def _fraction(raw: str, column: str | None, required: bool, problems: list[str]) -> float | None:
    if column is None or _is_missing(raw):
        if required:
            problems.append(f"{column} missing")
        return None
    value = _number(raw, column, problems)
    if value is not None and not 0 <= value <= 100:
        problems.append(f"{column} {raw} outside 0-100")
        return None
    return value


def parse_date(raw: str) -> date | None:
    """A survey date from LUCAS ``dd-mm-yy``, ISO ``YYYY-MM-DD[Thh:mm:ss]`` or the other day-first forms;
    None for an empty cell. Raises ValueError when it is none of them."""
    raw = raw.strip()
    if _is_missing(raw):
        return None
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    if len(raw) > 10 and raw[10] in "T ":
        return date.fromisoformat(raw[:10])
    raise ValueError(raw)


def _survey_date(raw: str, column: str | None, today: date, problems: list[str]) -> date | None:
    if column is None:
        return None
    try:
        value = parse_date(raw)
    except ValueError:
        problems.append(f"{column} {raw!r} is not a date (expected dd-mm-yy as in LUCAS 2018, or YYYY-MM-DD)")
        return None
    if value is not None and value > today:
        problems.append(f"{column} {raw!r} is in the future ({value.isoformat()})")
    return value


# --------------------------------------------------------------------------- parsing


def _check_row(cells: Mapping[str, str], cols: dict[str, str | None], geographic: bool,
               today: date) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    pid_col = cols["point_id"]
    point_id = cells[pid_col].strip() if pid_col else ""
    if _is_missing(point_id):
        problems.append(f"{pid_col} missing")
    coords = {}
    for key, limit in (("lon", 180), ("lat", 90)):
        col = cols[key]
        raw = cells[col]
        if _is_missing(raw):
            problems.append(f"{col} missing")
            continue
        value = _number(raw, col, problems)
        if value is not None and geographic and not -limit <= value <= limit:
            problems.append(f"{col} {raw} outside -{limit}..{limit}")
        elif value is not None:
            coords[key] = value
    clay = _fraction(cells[cols["clay"]], cols["clay"], True, problems)
    sand = _fraction(cells.get(cols["sand"] or "", ""), cols["sand"], False, problems)
    silt = _fraction(cells.get(cols["silt"] or "", ""), cols["silt"], False, problems)
    if clay is not None and sand is not None and silt is not None and abs(clay + sand + silt - 100) > SUM_TOLERANCE:
        problems.append(f"{cols['clay']}+{cols['sand']}+{cols['silt']} = {clay + sand + silt:g} "
                        f"({clay:g} + {sand:g} + {silt:g}), expected 100 +- {SUM_TOLERANCE:g}")
    survey_date = _survey_date(cells.get(cols["survey_date"] or "", ""), cols["survey_date"], today, problems)
    record = {"point_id": point_id, "lon": coords.get("lon"), "lat": coords.get("lat"), "clay": clay, "sand": sand,
              "silt": silt, "survey_date": survey_date}
    return record, problems


def _reproject(records: list[dict[str, Any]], crs: Any, cols: dict[str, str | None],
               problems: list[RowProblem]) -> list[dict[str, Any]]:
    """Records with x/y in ``crs`` turned into EPSG:4326 lon/lat; unusable positions become problems."""
    from pyproj import Transformer

    if not records:
        return records
    transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = transformer.transform(np.array([r["lon"] for r in records]), np.array([r["lat"] for r in records]))
    kept = []
    for record, x, y in zip(records, np.atleast_1d(lon), np.atleast_1d(lat), strict=True):
        if not (math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
            where = f"{cols['lon']}/{cols['lat']} ({record['lon']:g}, {record['lat']:g})"
            problems.append(RowProblem(record["row"], f"{where} is not a valid position in {crs.to_string()}"))
            continue
        kept.append({**record, "lon": float(x), "lat": float(y)})
    return kept


def parse_samples(source: str | Path | pd.DataFrame, *, x_col: str | None = None, y_col: str | None = None,
                  crs: str = "EPSG:4326", today: date | None = None) -> tuple[pd.DataFrame, list[RowProblem]]:
    """Validate LUCAS-style samples without touching the database.

    ``source`` is a CSV path or a DataFrame (its n-th row is reported as row n + 2, as if written to a
    CSV with a header). Returns the valid, de-duplicated samples (columns :data:`PARSED_COLUMNS`,
    coordinates in EPSG:4326) and the problems sorted by row. Missing required columns raise
    :class:`BadInputError`.
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    where = "input table" if isinstance(source, pd.DataFrame) else str(source)
    frame = source.map(_text) if isinstance(source, pd.DataFrame) else read_table(Path(source))
    frame.columns = [str(c).strip() for c in frame.columns]
    cols = resolve_columns(list(frame.columns), x_col=x_col, y_col=y_col, where=where)
    try:
        source_crs = CRS.from_user_input(crs)
    except CRSError as e:
        raise BadInputError(f"unknown coordinate reference system {crs!r}: expected e.g. 'EPSG:25833'") from e
    used = {c for c in cols.values() if c is not None}
    today = today or date.today()
    problems: list[RowProblem] = []
    records: list[dict[str, Any]] = []
    for i, cells in enumerate(frame.to_dict("records")):
        row = i + FIRST_DATA_ROW
        if all(_is_missing(str(v)) for v in cells.values()):
            continue  # a blank line
        record, reasons = _check_row(cells, cols, source_crs.is_geographic, today)
        if reasons:
            problems += [RowProblem(row, r) for r in reasons]
            continue
        record["row"] = row
        record["attributes"] = {k: v for k, v in cells.items() if k not in used and not _is_missing(str(v))}
        records.append(record)
    if not source_crs.equals(CRS.from_epsg(4326)):
        records = _reproject(records, source_crs, cols, problems)
    first_seen: dict[tuple[str, date | None], int] = {}
    kept = []
    for record in records:
        key = (record["point_id"], record["survey_date"])
        if key in first_seen:
            when = record["survey_date"].isoformat() if record["survey_date"] else "without a survey date"
            problems.append(RowProblem(record["row"], f"{_DUPLICATE} {first_seen[key]}: {cols['point_id']} "
                                                      f"{record['point_id']} {when} again; the first is kept"))
            continue
        first_seen[key] = record["row"]
        kept.append(record)
    problems.sort(key=lambda p: p.row)
    return pd.DataFrame(kept, columns=list(PARSED_COLUMNS)), problems


# --------------------------------------------------------------------------- loading


def _json_rows(samples: pd.DataFrame) -> str:
    def num(v: Any) -> float | None:
        return None if v is None or pd.isna(v) else float(v)

    rows = [{"point_id": r.point_id, "lon": r.lon, "lat": r.lat, "clay": num(r.clay), "sand": num(r.sand),
             "silt": num(r.silt), "survey_date": r.survey_date.isoformat() if r.survey_date else None,
             "attributes": r.attributes} for r in samples.itertuples(index=False)]
    return json.dumps(rows)


def load_samples(engine: Engine, path: str | Path, *, source: str, x_col: str | None = None,
                 y_col: str | None = None, crs: str = "EPSG:4326") -> LoadReport:
    """Validate the CSV at ``path`` and upsert its valid rows under ``source`` in one transaction.

    The key is (source, point id, survey date): reloading inserts nothing, changed values update
    their row. Returns the counts and every problem by CSV row number (bad rows are never inserted).
    A row the database refuses raises :class:`BadInputError` naming the file; nothing is then stored.
    """
    if not isinstance(source, str) or not source.strip():
        raise BadInputError(f"a sample source name is required (e.g. 'lucas2018'), found {source!r}")
    samples, problems = parse_samples(path, x_col=x_col, y_col=y_col, crs=crs)
    report = LoadReport(path=str(path), source=source.strip(), rows=len(samples) + len({p.row for p in problems}),
                        valid=len(samples), problems=problems,
                        duplicates=sum(p.reason.startswith(_DUPLICATE) for p in problems))
    for problem in problems[:20]:
        log.warning("%s row %d skipped: %s", path, problem.row, problem.reason)
    if len(problems) > 20:
        log.warning("%s: %d more problems", path, len(problems) - 20)
    if samples.empty and report.rows:
        shown = "; ".join(f"row {p.row}: {p.reason}" for p in problems[:3]) + ("; …" if len(problems) > 3 else "")
        raise BadInputError(f"{path}: none of its {report.rows} rows is a valid sample ({shown}); nothing loaded")
    if samples.empty:
        return report
    with transaction(engine, f"loading samples from {path} (source {report.source!r})") as conn:
        counts = samples_repo.upsert_samples(conn, _json_rows(samples), report.source)
        outside = samples_repo.outside_aois(conn, report.source, samples["point_id"].tolist())
    report.inserted, report.updated = counts.inserted, counts.updated
    report.outside_aois, report.swapped_inside = outside.outside, outside.swapped_inside
    report.outside_examples = outside.examples
    if (warning := report.outside_warning()) is not None:
        log.warning("%s", warning)
    report.unchanged = report.valid - report.inserted - report.updated
    log.info("%s: %d inserted, %d updated, %d unchanged, %d rows skipped", path, report.inserted, report.updated,
             report.unchanged, report.skipped)
    return report
