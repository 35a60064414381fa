"""The feature set shared by the CNN and its baselines: per-input arrays plus the flat matrix the
Random Forest and ANN see. Inputs and their columns are :data:`soilclay.contract.INPUT_FEATURES`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from soilclay.contract import INPUT_FEATURES, split_frame
from soilclay.errors import BadInputError


@dataclass(frozen=True)
class Features:
    """Float32 arrays per model input, in the order of :data:`soilclay.contract.INPUT_FEATURES`."""

    arrays: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, inputs: tuple[str, ...], *, source: str = "table") -> Features:
        """The ``inputs`` taken from ``frame`` by column name; raise if a column is missing or a value not finite."""
        arrays = split_frame(frame, inputs, source=source)
        for name, values in arrays.items():
            if not np.isfinite(values).all():
                bad = int((~np.isfinite(values)).any(axis=1).sum())
                raise BadInputError(f"{source}: {bad} rows have missing or non-finite {name} values")
        return cls(arrays)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.arrays)

    @property
    def columns(self) -> list[str]:
        return [c for name in self.arrays for c in INPUT_FEATURES[name]]

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def matrix(self) -> np.ndarray:
        return np.concatenate(list(self.arrays.values()), axis=1)

    def take(self, index: np.ndarray) -> Features:
        return Features({k: v[index] for k, v in self.arrays.items()})

    def with_column(self, column: int, values: np.ndarray) -> Features:
        """A copy with flat-matrix column ``column`` replaced (for permutation importance)."""
        out, offset = {}, 0
        for name, arr in self.arrays.items():
            width = arr.shape[1]
            if offset <= column < offset + width:
                arr = arr.copy()
                arr[:, column - offset] = values
            out[name] = arr
            offset += width
        return Features(out)
