"""The evaluator's data model: pixel types, bands and images (:class:`Band`, :class:`Img`), the
catalogue's :class:`SyntheticImage`, Earth Engine's type rules (casting, the union of input types),
the coercions every algorithm uses, and the two failures (:class:`Unsupported`, :class:`Refused`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tests.earthengine.evaluator.core import Evaluator

INT, FLOAT32, FLOAT64 = "int", "float32", "float64"
PIXEL_TYPES = (INT, FLOAT32, FLOAT64)


class Unsupported(NotImplementedError):
    """The expression uses an algorithm (or an argument of one) this evaluator does not model."""


class Refused(RuntimeError):
    """The expression is supported, but its exact result cannot be computed here (for instance a
    median above its ``maxRaw``, which Earth Engine estimates from a histogram)."""


# --------------------------------------------------------------------------- data model


@dataclass
class Band:
    values: np.ndarray  # float64 storage; integer bands hold whole numbers
    mask: np.ndarray  # float64 in 0..1, 0 = masked
    ptype: str

    def __post_init__(self) -> None:
        if self.ptype not in PIXEL_TYPES:
            raise ValueError(f"pixel type must be one of {PIXEL_TYPES}, found {self.ptype!r}")
        self.values = _cast(np.asarray(self.values, np.float64), self.ptype)
        self.mask = np.clip(np.asarray(self.mask, np.float64), 0.0, 1.0)
        self.values, self.mask = np.broadcast_arrays(self.values, self.mask)


@dataclass
class Img:
    bands: dict[str, Band]
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.bands)


@dataclass
class SyntheticImage:
    """One catalogue image. ``bands``: arrays, NaN = masked (for any type); ``masks`` optionally gives a
    band's mask explicitly (0..1); ``types``: a band's pixel type (``int``, ``float32``, ``float64``),
    ``default_type`` otherwise. ``properties`` hold ``system:index``, ``system:time_start`` (ms since the
    epoch) and any metadata the filters read; an optional ``system:footprint`` (a shapely geometry in
    EPSG:4326) is what ``Filter.intersects`` tests."""

    properties: dict[str, Any]
    bands: dict[str, np.ndarray]
    types: dict[str, str] = field(default_factory=dict)
    default_type: str = INT
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    def to_img(self) -> Img:
        out = {}
        for name, array in self.bands.items():
            array = np.asarray(array, np.float64)
            nan = np.isnan(array)
            mask = np.asarray(self.masks[name], np.float64) if name in self.masks else np.ones(array.shape)
            mask = np.where(nan, 0.0, mask)
            out[name] = Band(np.where(nan, 0.0, array), mask, self.types.get(name, self.default_type))
        return Img(out, dict(self.properties))


Catalogue = Mapping[str, Sequence[SyntheticImage]]


def as_arrays(image: Img) -> dict[str, np.ndarray]:
    """``{band: float64 values, NaN where masked}`` of an evaluated image."""
    if not isinstance(image, Img):
        raise TypeError(f"expected an image, found {type(image).__name__}")
    return {name: np.where(b.mask > 0, b.values, np.nan) for name, b in image.bands.items()}


def pixel_types(image: Img) -> dict[str, str]:
    return {name: b.ptype for name, b in image.bands.items()}


# --------------------------------------------------------------------------- type rules


def _cast(values: np.ndarray, ptype: str) -> np.ndarray:
    if ptype == INT:
        return np.trunc(values)
    if ptype == FLOAT32:
        return values.astype(np.float32).astype(np.float64)
    return values


def _union(*types: str) -> str:
    """"The type of the output pixels is the union of the input types" (ee.Image.add / subtract /
    multiply / divide, https://developers.google.com/earth-engine/apidocs/ee-image-divide): integers
    stay integers; with a float the result is a float, double if either is double."""
    if FLOAT64 in types:
        return FLOAT64
    if FLOAT32 in types:
        return FLOAT32
    return INT


def _float_of(ptype: str) -> str:
    """Floating type a mathematical function (exp, log10, focal mean) gives: a float input keeps its
    precision; an integer one becomes double (chosen: Earth Engine does not document these)."""
    return ptype if ptype != INT else FLOAT64


# --------------------------------------------------------------------------- coercions


def _img(value: Any, ev: Evaluator) -> Img:
    if isinstance(value, Img):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ev.constant(value)
    raise Unsupported(f"expected an image, found {type(value).__name__}")


def _collection(value: Any) -> list[Img]:
    if not isinstance(value, list) or not all(isinstance(v, Img) for v in value):
        raise Unsupported(f"expected an image collection, found {type(value).__name__}")
    return value
