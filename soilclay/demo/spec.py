"""The demo world's frozen specification: grid, time span, sizes, seed.

The world sits in the Havelland, west of Berlin (Brandenburg, Germany), on the UTM zone 33N grid
(EPSG:32633) at 10 m: a real agricultural region with sandy to loamy soils, the same region as
LimeSoDa's BB.250 data set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta

from rasterio.transform import Affine, from_origin

from soilclay.errors import BadInputError

CRS = "EPSG:32633"
PIXEL_M = 10.0
#: Upper-left corner of the world (UTM 33N), near Nauen, Havelland.
ORIGIN_X = 361_000.0
ORIGIN_Y = 5_832_000.0
#: Sentinel-2 constellation revisit (S2A/S2B alternate) and Sentinel-1A revisit per orbit pass.
S2_REVISIT_DAYS = 5
S1_REVISIT_DAYS = 12
S1_DESCENDING_OFFSET_DAYS = 6
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class WorldSpec:
    """What to generate. Validated on construction; the same spec and seed give the same bytes."""

    size: str
    seed: int
    width: int
    height: int
    start: date
    end: date
    n_parcels: int
    n_samples: int

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32 or self.width % 2 or self.height % 2:
            raise BadInputError(f"width/height must be even and >= 32 px, found {self.width}x{self.height}")
        if self.width * self.height > 4_000_000:
            raise BadInputError(f"world too large: {self.width}x{self.height} px (max 4,000,000 px)")
        if self.end <= self.start + timedelta(days=60):
            raise BadInputError(f"end must be at least 60 days after start, found {self.start}..{self.end}")
        if not 1 <= self.n_parcels <= self.width * self.height // 100:
            raise BadInputError(f"n_parcels must be 1..{self.width * self.height // 100}, found {self.n_parcels}")
        if not 1 <= self.n_samples <= 100_000:
            raise BadInputError(f"n_samples must be 1..100000, found {self.n_samples}")
        if self.seed < 0:
            raise BadInputError(f"seed must be >= 0, found {self.seed}")

    @property
    def transform(self) -> Affine:
        return from_origin(ORIGIN_X, ORIGIN_Y, PIXEL_M, PIXEL_M)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the world CRS."""
        return (ORIGIN_X, ORIGIN_Y - self.height * PIXEL_M, ORIGIN_X + self.width * PIXEL_M, ORIGIN_Y)

    def s2_dates(self) -> list[date]:
        return _every(self.start, self.end, S2_REVISIT_DAYS)

    def s1_passes(self) -> list[tuple[date, str]]:
        """(date, orbit pass) of the Sentinel-1 acquisitions: ascending and descending, 6 days apart."""
        asc = [(d, "ascending") for d in _every(self.start, self.end, S1_REVISIT_DAYS)]
        desc_start = self.start + timedelta(days=S1_DESCENDING_OFFSET_DAYS)
        desc = [(d, "descending") for d in _every(desc_start, self.end, S1_REVISIT_DAYS)]
        return sorted(asc + desc)

    def extended(self, n_s2_dates: int) -> WorldSpec:
        """The same world, ``n_s2_dates`` Sentinel-2 revisits longer."""
        if n_s2_dates < 1:
            raise BadInputError(f"--add-scenes must be >= 1, found {n_s2_dates}")
        last = self.s2_dates()[-1]
        return replace(self, end=last + timedelta(days=S2_REVISIT_DAYS * n_s2_dates))

    def to_json(self) -> dict:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d

    @classmethod
    def from_json(cls, d: dict) -> WorldSpec:
        keys = {"size", "seed", "width", "height", "start", "end", "n_parcels", "n_samples"}
        missing = keys - d.keys()
        if missing:
            raise BadInputError(f"world.json lacks {sorted(missing)}")
        values = {k: d[k] for k in keys}
        values["start"], values["end"] = date.fromisoformat(d["start"]), date.fromisoformat(d["end"])
        return cls(**values)


def _every(start: date, end: date, step: int) -> list[date]:
    out, d = [], start
    while d <= end:
        out.append(d)
        d += timedelta(days=step)
    return out


PRESETS: dict[str, dict] = {
    # Tests: 1.28 km square, two years, a few dozen parcels.
    "small": dict(width=128, height=128, start=date(2023, 1, 2), end=date(2024, 12, 31),
                  n_parcels=40, n_samples=120),
    # Demo: 10 km square, three and a quarter years, ~2,000 parcels.
    "demo": dict(width=1000, height=1000, start=date(2022, 1, 1), end=date(2025, 3, 31),
                 n_parcels=2000, n_samples=500),
}


def preset(size: str, seed: int = 42, n_samples: int | None = None) -> WorldSpec:
    if size not in PRESETS:
        raise BadInputError(f"size must be one of {sorted(PRESETS)}, found {size!r}")
    values = dict(PRESETS[size])
    if n_samples is not None:
        values["n_samples"] = n_samples
    return WorldSpec(size=size, seed=seed, **values)
