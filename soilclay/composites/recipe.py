"""The composite recipe: a frozen, validated, serialisable spec whose hash is the lineage stored
with every composite. Both backends (local numpy, Earth Engine) compute exactly this recipe.

Time windows are either explicit (``start``/``end``) or rolling (``years`` up to the refresh
date); :meth:`TimeWindow.resolve` turns either into concrete dates.

Two identities: :meth:`Recipe.hash` names one composite series (AOI, window, grid and parameters: what
one refresh recomputes), :meth:`Recipe.method` names what a sensor's composite *means* as model input
(the statistic, masks and filters), the same on every AOI and every refresh. A model is trained on
composites of one method per sensor and only applies to composites of that method.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from soilclay.errors import BadInputError

#: Sen2Cor scene classes (SCL): 0 no data, 1 saturated, 2 dark, 3 cloud shadow, 4 vegetation,
#: 5 not vegetated, 6 water, 7 unclassified, 8 cloud medium, 9 cloud high, 10 cirrus, 11 snow.
SCL_CLASSES = range(0, 12)
_STAT = re.compile(r"^(median|mean|p([1-9]|[1-9][0-9]))$")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeWindow(_Spec):
    """Explicit ``start``..``end`` (inclusive), or the last ``years`` up to the refresh date."""

    start: date | None = None
    end: date | None = None
    years: int | None = Field(None, ge=1, le=20, description="rolling window length in years")

    @model_validator(mode="after")
    def _one_kind(self) -> TimeWindow:
        explicit = self.start is not None or self.end is not None
        if explicit and self.years is not None:
            raise ValueError("give either start/end or years, not both")
        if explicit and (self.start is None or self.end is None):
            raise ValueError("an explicit window needs both start and end")
        if not explicit and self.years is None:
            raise ValueError("give start/end or years")
        if explicit and self.end < self.start:  # type: ignore[operator]
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def resolve(self, refresh: date) -> tuple[date, date]:
        if self.years is None:
            return self.start, self.end  # type: ignore[return-value]
        try:
            start = refresh.replace(year=refresh.year - self.years) + timedelta(days=1)
        except ValueError:  # 29 February
            start = refresh.replace(year=refresh.year - self.years, day=28) + timedelta(days=1)
        return start, refresh


class Grid(_Spec):
    """Target grid: a projected CRS and a square pixel size in metres (10 m for Sentinel-2)."""

    crs: str = Field(pattern=r"^EPSG:\d{4,6}$")
    resolution: float = Field(10.0, gt=0, le=1000)


class S2Recipe(_Spec):
    """Sentinel-2 L2A bare-soil composite."""

    scl_keep: tuple[int, ...] = Field((4, 5), min_length=1, description="SCL classes kept as clear")
    cloud_probability_max: int | None = Field(None, ge=1, le=100, description="mask cloud probability >= this")
    ndvi_max: float = Field(0.25, gt=-1, lt=1, description="bare if NDVI=(B08-B04)/(B08+B04) < ndvi_max")
    nbr2_max: float = Field(0.075, gt=-1, lt=1, description="bare if NBR2=(B11-B12)/(B11+B12) < nbr2_max")
    scmap_max: float | None = Field(None, gt=-2, lt=2,
                                    description="SCMaP-style: also NDVI + NBR <= scmap_max, NBR=(B08-B12)/(B08+B12)")
    min_bare_count: int = Field(3, ge=1, le=1000, description="pixels with fewer bare observations are nodata")
    statistic: str = Field("median", description="median, mean, or pNN (percentile NN)")
    max_scene_cloud_cover: float = Field(100.0, ge=0, le=100, description="skip scenes above this eo:cloud_cover")

    @field_validator("scl_keep")
    @classmethod
    def _check_scl(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [v for v in value if v not in SCL_CLASSES]
        if bad:
            raise ValueError(f"SCL classes must be 0..11, found {bad}")
        return tuple(sorted(set(value)))

    @field_validator("statistic")
    @classmethod
    def _check_stat(cls, value: str) -> str:
        if not _STAT.match(value):
            raise ValueError(f"statistic must be median, mean or p1..p99, found {value!r}")
        return value


class S1Recipe(_Spec):
    """Sentinel-1 GRD IW composite: median in dB of VV and VH."""

    orbit_pass: Literal["ascending", "descending", "both"] = "both"
    speckle_filter: Literal["none", "boxcar"] = "none"
    speckle_size: int = Field(3, ge=3, le=15, description="filter window in pixels (odd)")

    @field_validator("speckle_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"speckle_size must be odd, found {value}")
        return value


class Recipe(_Spec):
    """One composite recipe per AOI: time window, grid and per-sensor parameters."""

    aoi: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    window: TimeWindow
    grid: Grid
    s2: S2Recipe | None = S2Recipe()
    s1: S1Recipe | None = S1Recipe()
    # 512: the block size of the scenes' COGs (the demo world's, and a common one of public catalogues). A tile
    # smaller than a block decodes that block once per tile it touches (a 256 tile decoded every 10 m block 4x).
    tile_size: int = Field(512, ge=64, le=4096, description="local backend: pixels per tile side (even)")

    @field_validator("tile_size")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"tile_size must be even, found {value}")
        return value

    @model_validator(mode="after")
    def _some_sensor(self) -> Recipe:
        if self.s2 is None and self.s1 is None:
            raise ValueError("a recipe needs s2, s1 or both")
        return self

    def sensor_json(self, sensor: str) -> dict:
        """What defines one sensor's composite: the window, grid and that sensor's parameters.

        ``tile_size`` is left out: it changes how the local backend works, not the result.
        """
        params = self.s2 if sensor == "sentinel-2" else self.s1
        if params is None:
            raise BadInputError(f"recipe for {self.aoi} has no {sensor} part")
        return {"aoi": self.aoi, "sensor": sensor, "window": self.window.model_dump(mode="json"),
                "grid": self.grid.model_dump(mode="json"), "params": params.model_dump(mode="json")}

    def hash(self, sensor: str) -> str:
        """32 hex characters identifying what this recipe computes for ``sensor``."""
        return _digest(self.sensor_json(sensor))

    def method_json(self, sensor: str) -> dict:
        """What one sensor's composite *means* as model input: the sensor and its parameters.

        The parameters (the statistic or percentile, the scene-class, cloud and bare-soil masks and their
        thresholds, the scene cloud-cover limit; for Sentinel-1 the orbit passes and the speckle filter)
        decide what each pixel value is, so a model trained on one method does not apply to another
        (a 25th-percentile reflectance is darker than a mean one). Left out, because a model applies across
        them: the AOI name (the same method on another AOI), the grid (per-pixel values on another CRS or
        pixel size are the same quantity) and ``tile_size`` (how the work is cut). The time window is left
        out too: a rolling window moves forward with every refresh and an explicit one is moved forward by
        hand, and a model is meant for the newer composites; a window of other length gives the same
        statistic over more or fewer observations, the same quantity. (A seasonal selection, such as only
        spring scenes, would change which soil state the values describe and would belong here.)

        Parameters that are None (an optional mask left off) are left out, so adding such an option, off
        by default, leaves the method of existing composites as it was.
        """
        params = self.s2 if sensor == "sentinel-2" else self.s1
        if params is None:
            raise BadInputError(f"recipe for {self.aoi} has no {sensor} part")
        values = {k: v for k, v in params.model_dump(mode="json").items() if v is not None}
        return {"sensor": sensor, "params": values}

    def method(self, sensor: str) -> Method:
        """The method of this recipe's ``sensor`` composite: its hash and a short description."""
        params = self.s2 if sensor == "sentinel-2" else self.s1
        return Method(sensor, _digest(self.method_json(sensor)), _describe(params))  # type: ignore[arg-type]

    @classmethod
    def parse(cls, data: dict) -> Recipe:
        """Validate a dict (e.g. from JSON or Airflow params); errors name the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'recipe'}: {e['msg']}"
                                 for e in exc.errors())
            raise BadInputError(f"invalid composite recipe: {problems}") from exc


@dataclass(frozen=True)
class Method:
    """What a sensor's composites mean as model input (see :meth:`Recipe.method_json`): ``hash`` (32 hex
    characters, equal for every AOI, grid and window) and a short human ``description``."""

    sensor: str
    hash: str
    description: str

    def __str__(self) -> str:
        return f"{self.description} (method {self.hash[:8]})"


def method_of(recipe: dict | str | None, sensor: str) -> Method | None:
    """The method of a stored composite's recipe (its JSON, as stored with the composite), or None when the
    stored recipe is not one this code can read (none stored, or written by an incompatible version)."""
    if recipe is None:
        return None
    try:
        parsed = Recipe.parse(json.loads(recipe) if isinstance(recipe, str) else recipe)
        return parsed.method(sensor)
    except (BadInputError, ValueError, TypeError):
        return None


def _digest(value: dict) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _describe(params: S2Recipe | S1Recipe) -> str:
    if isinstance(params, S2Recipe):
        stat = params.statistic
        name = stat if stat in ("median", "mean") else f"{_ordinal(int(stat[1:]))} percentile"
        masks = f"NDVI < {params.ndvi_max:g}, NBR2 < {params.nbr2_max:g}"
        if params.scmap_max is not None:
            masks += f", NDVI+NBR <= {params.scmap_max:g}"
        return f"{name} of bare-soil observations ({masks})"
    speckle = ("no speckle filter" if params.speckle_filter == "none"
               else f"{params.speckle_filter} {params.speckle_size}x{params.speckle_size} speckle filter")
    passes = "both passes" if params.orbit_pass == "both" else f"{params.orbit_pass} passes"
    return f"median dB backscatter ({passes}, {speckle})"


def inputs_hash(scene_ids: list[str]) -> str:
    """32 hex characters identifying a set of input scenes (order does not matter)."""
    return hashlib.sha256("\n".join(sorted(set(scene_ids))).encode()).hexdigest()[:32]
