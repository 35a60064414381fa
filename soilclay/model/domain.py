"""Applicability domain: is a feature vector like the ones the model was trained on?

A Mahalanobis distance over the concatenated, standardised inputs the model uses ([optical…, sar…, coords…]),
thresholded at a high quantile of the training rows' own distances. It is deliberately simple and
closed-form, so the same numbers can be baked into the SavedModel graph (:mod:`soilclay.model.export`) and
TF Serving flags out-of-domain pixels without any Python next to it.

The covariance is stored as a whitening matrix ``components`` (``inv_cov = components @ components.T``), so the
squared distance is a plain sum of squares, ``||((x - mean) / scale) @ components||²``: never negative from
round-off, and cheap in a graph. A small ridge on the correlation matrix keeps constant or collinear features
invertible; a row that moves along such a feature gets a very large distance, which is the point.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from soilclay.errors import BadInputError

FORMAT = "soilclay-domain/1"


def _floats(values: Any, name: str) -> list[float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise BadInputError(f"DomainModel.{name} must be a non-empty 1-D list of finite numbers, found {values!r}")
    return [float(v) for v in arr]


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class DomainModel:
    """A fitted applicability domain; build it with :meth:`fit`, store it with :meth:`to_json`.

    Attributes:
        mean: per-feature training mean (raw units), length ``d``.
        scale: per-feature training standard deviation (1 where a feature was constant), all > 0.
        components: ``d × d`` whitening matrix of the standardised features (``inv_cov = C @ C.T``).
        threshold: distances up to this are in the domain (the ``quantile`` of the training distances).
        quantile: the training quantile the threshold was taken at, kept for the record.
    """

    mean: list[float]
    scale: list[float]
    components: list[list[float]]
    threshold: float
    quantile: float = 0.99

    def __post_init__(self) -> None:
        mean, scale = _floats(self.mean, "mean"), _floats(self.scale, "scale")
        d = len(mean)
        if len(scale) != d or min(scale) <= 0:
            raise BadInputError(f"DomainModel.scale must hold {d} positive numbers like mean, found {self.scale!r}")
        comp = np.asarray(self.components, dtype=np.float64)
        if comp.shape != (d, d) or not np.all(np.isfinite(comp)):
            raise BadInputError(
                f"DomainModel.components must be a finite {d}x{d} matrix, found shape {comp.shape}")
        if not (_real(self.threshold) and math.isfinite(self.threshold) and self.threshold > 0):
            raise BadInputError(f"DomainModel.threshold must be a positive finite number, found {self.threshold!r}")
        if not (_real(self.quantile) and 0 < self.quantile < 1):
            raise BadInputError(f"DomainModel.quantile must be in (0, 1), found {self.quantile!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "components", comp.tolist())
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "quantile", float(self.quantile))

    @property
    def n_features(self) -> int:
        return len(self.mean)

    @property
    def inv_cov(self) -> list[list[float]]:
        """The inverse covariance of the standardised features, for readers who want the textbook form."""
        comp = np.asarray(self.components)
        return (comp @ comp.T).tolist()

    @classmethod
    def fit(cls, X: np.ndarray, quantile: float = 0.99, ridge: float = 1e-6) -> DomainModel:
        """Fit on training features ``X`` (rows × features, raw units, in the model's input order)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
            raise BadInputError(f"DomainModel.fit needs a 2-D array with at least 2 rows, found shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise BadInputError(f"DomainModel.fit needs finite features, found {int((~np.isfinite(X)).sum())} "
                                "NaN/inf values; drop or fill those rows first")
        if not 0 < quantile < 1:
            raise BadInputError(f"quantile must be in (0, 1), found {quantile!r}")
        if not ridge >= 0:
            raise BadInputError(f"ridge must be >= 0, found {ridge!r}")
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        scale = np.where(std > 0, std, 1.0)
        Z = (X - mean) / scale
        cov = np.atleast_2d(np.cov(Z, rowvar=False)) + ridge * np.eye(X.shape[1])
        eigval, eigvec = np.linalg.eigh(cov)
        eigval = np.maximum(eigval, max(ridge, 1e-12))  # round-off can push a zero eigenvalue below 0
        components = eigvec / np.sqrt(eigval)
        distances = np.linalg.norm(Z @ components, axis=1)
        threshold = float(np.quantile(distances, quantile))
        if threshold <= 0:
            raise BadInputError(f"DomainModel.fit found all {X.shape[0]} training rows identical; "
                                "a domain needs some spread")
        return cls(mean=mean, scale=scale, components=components, threshold=threshold, quantile=quantile)

    def distance(self, X: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``X`` to the training mean (NaN rows give NaN)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise BadInputError(f"DomainModel.distance expects rows of {self.n_features} features, "
                                f"found shape {X.shape}")
        Z = (X - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.linalg.norm(Z @ np.asarray(self.components), axis=1)

    def in_domain(self, X: np.ndarray) -> np.ndarray:
        """True where the distance is at most :attr:`threshold`; NaN rows are out of the domain."""
        return self.distance(X) <= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DomainModel:
        if not isinstance(data, dict) or data.get("format", FORMAT) != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise BadInputError(f"expected a {FORMAT} domain object, found {found!r}")
        fields = {"mean", "scale", "components", "threshold", "quantile"}
        missing = fields - {"quantile"} - data.keys()
        if missing:
            raise BadInputError(f"domain object lacks {sorted(missing)}; expected keys {sorted(fields)}")
        return cls(**{k: v for k, v in data.items() if k in fields})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> DomainModel:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise BadInputError(f"domain JSON does not parse: {e}") from e
        return cls.from_dict(data)
