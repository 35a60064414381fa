"""The data contract: band names, the model's feature layout and signature, and the model version rule.

One place for what composites write, what the model takes and what serving answers, so that no module types
a band list again or picks features by position:

- bands: :data:`S2_BANDS` (Sentinel-2 reflectance, in wavelength order) and :data:`S2_COUNT_BANDS` (how many
  bare and valid observations made each pixel); :data:`S1_BANDS` (Sentinel-1 backscatter in dB) and
  :data:`S1_COUNT_BANDS`. A composite file holds ``*_COMPOSITE_BANDS``: the features, then the counts.
- the feature layout: the model's named inputs (:data:`INPUT_FEATURES`: ``optical``, ``sar``, ``coords``), each
  a float32 ``(n, width)`` array of named columns. :func:`split_frame` and :func:`split_array` cut a table into
  those groups by column name, so extra or reordered columns are harmless.
- the signature TF Serving exposes: :data:`SIGNATURE`, inputs as above, :data:`OUTPUTS` of :data:`OUTPUT_DTYPES`.
- :func:`check_model_version`: a model version is a TF Serving version directory, an integer >= 1.
- scenes: the collections and :class:`SceneRef`, one scene as sources list it and the database stores it.

Imports nothing from soilclay but :mod:`soilclay.errors`, and no TensorFlow: every layer may depend on it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np

from soilclay.errors import BadInputError

# --- bands --------------------------------------------------------------------------------------------------

#: Sentinel-2 L2A reflectance bands of the composite, in wavelength order (the CNN's spectrum).
S2_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
#: Per-pixel observation counts of the Sentinel-2 composite (after the reflectance bands).
S2_COUNT_BANDS: tuple[str, ...] = ("bare_count", "valid_count", "bare_frequency")
#: Sentinel-1 GRD backscatter bands of the composite, in dB (VV_VH = VV - VH).
S1_BANDS: tuple[str, ...] = ("VV", "VH", "VV_VH")
#: Per-pixel observation count of the Sentinel-1 composite.
S1_COUNT_BANDS: tuple[str, ...] = ("count",)
#: The bands of a composite file, in file order.
S2_COMPOSITE_BANDS: tuple[str, ...] = S2_BANDS + S2_COUNT_BANDS
S1_COMPOSITE_BANDS: tuple[str, ...] = S1_BANDS + S1_COUNT_BANDS
#: Coordinates of a pixel or sample, degrees in EPSG:4326.
COORD_COLUMNS: tuple[str, ...] = ("lon", "lat")

# --- feature layout and signature ---------------------------------------------------------------------------

#: The model's possible inputs, in the order they are concatenated, with their columns in order.
INPUT_FEATURES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"optical": S2_BANDS, "sar": S1_BANDS, "coords": COORD_COLUMNS})
INPUT_NAMES: tuple[str, ...] = tuple(INPUT_FEATURES)
INPUT_UNITS: Mapping[str, str] = MappingProxyType(
    {"optical": "reflectance DN (0..10000)", "sar": "dB", "coords": "degrees, EPSG:4326"})
INPUT_DTYPE = np.dtype("float32")
#: The serving signature's name and outputs (one value per input row).
SIGNATURE = "serving_default"
OUTPUTS: tuple[str, ...] = ("clay", "clay_lower", "clay_upper", "in_domain")
OUTPUT_DTYPES: Mapping[str, np.dtype] = MappingProxyType(
    {"clay": np.dtype("float32"), "clay_lower": np.dtype("float32"), "clay_upper": np.dtype("float32"),
     "in_domain": np.dtype("bool")})


def check_inputs(inputs: Sequence[str] | str) -> tuple[str, ...]:
    """Return ``inputs`` as a tuple if it is a non-empty subset of :data:`INPUT_NAMES` in that order."""
    found = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    ordered = tuple(n for n in INPUT_NAMES if n in found)
    if not found or any(n not in INPUT_NAMES for n in found) or found != ordered:
        raise BadInputError(f"model inputs must be a non-empty subset of {INPUT_NAMES} in that order, "
                            f"found {found!r}")
    return found


def input_columns(inputs: Sequence[str]) -> tuple[str, ...]:
    """The columns of ``inputs`` concatenated in that order (the flat feature matrix's columns)."""
    return tuple(c for name in check_inputs(inputs) for c in INPUT_FEATURES[name])


def _groups(inputs: Sequence[str], present: set[str], source: str) -> dict[str, tuple[str, ...]]:
    """The columns of each of ``inputs``; raise naming the input if one of them is not ``present``."""
    groups = {}
    for name in check_inputs(inputs):
        wanted = INPUT_FEATURES[name]
        missing = [c for c in wanted if c not in present]
        if missing:
            raise BadInputError(f"{source}: input {name!r} needs columns {list(wanted)}, missing {missing}")
        groups[name] = wanted
    return groups


def split_frame(frame: Any, inputs: Sequence[str], *, source: str = "table") -> dict[str, np.ndarray]:
    """The float32 ``(n, width)`` array of each input in ``inputs``, taken from a DataFrame by column name.

    ``frame`` needs ``.columns`` and ``frame[list_of_names].to_numpy(dtype=...)`` (a pandas DataFrame);
    other columns and the column order do not matter. A missing column raises naming the input and ``source``.
    """
    return {name: np.ascontiguousarray(frame[list(wanted)].to_numpy(dtype=INPUT_DTYPE))
            for name, wanted in _groups(inputs, set(frame.columns), source).items()}


def split_array(values: np.ndarray, columns: Sequence[str], inputs: Sequence[str], *,
                source: str = "features") -> dict[str, np.ndarray]:
    """The float32 ``(n, width)`` array of each input, taken by name from ``values`` whose columns are ``columns``."""
    values = np.asarray(values)
    columns = list(columns)
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise BadInputError(f"{source}: expected a 2-D array with {len(columns)} columns {columns}, "
                            f"found shape {values.shape}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise BadInputError(f"{source}: column names must be unique, found {repeated} more than once")
    position = {c: i for i, c in enumerate(columns)}
    return {name: np.ascontiguousarray(values[:, [position[c] for c in wanted]], dtype=INPUT_DTYPE)
            for name, wanted in _groups(inputs, set(columns), source).items()}


# --- model versions -----------------------------------------------------------------------------------------


def check_model_version(value: Any, what: str = "model version") -> int:
    """``value`` as an ``int`` if it is an integer >= 1 (a TF Serving version directory), else raise.

    Booleans, floats (even ``1.0``) and strings (even ``"1"``) are refused; numpy integers are accepted.
    The message starts with ``what`` and shows the value.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 1:
        raise BadInputError(f"{what} must be an integer >= 1 (a TF Serving version directory), found {value!r}")
    return int(value)


# --- scenes -------------------------------------------------------------------------------------------------

S2_COLLECTION = "sentinel-2-l2a"
S1_COLLECTION = "sentinel-1-grd"
COLLECTIONS = (S2_COLLECTION, S1_COLLECTION)
SENSOR_OF = {S2_COLLECTION: "sentinel-2", S1_COLLECTION: "sentinel-1"}
COLLECTION_OF = {v: k for k, v in SENSOR_OF.items()}
#: Which recorded scenes each composite backend composites (by ``soilclay.scenes.source``).
SCENE_SOURCES = {"local": ("local", "stac-api"), "earthengine": ("earthengine",)}


@dataclass(frozen=True)
class SceneRef:
    """One scene as a source lists it. ``href`` locates it for the backend that reads it: the
    STAC Item JSON (local/STAC API) or the Earth Engine asset id."""

    scene_id: str
    collection: str  # one of COLLECTIONS
    platform: str
    acquired_at: datetime  # timezone-aware, UTC
    source: str  # 'local', 'stac-api' or 'earthengine'
    href: str
    published_at: datetime | None = None
    cloud_cover: float | None = None
    orbit_state: str | None = None  # Sentinel-1: 'ascending' / 'descending'
    footprint: dict | None = None  # GeoJSON geometry in EPSG:4326
    properties: dict = field(default_factory=dict)
