"""The feature set shared by the CNN and its baselines: per-input arrays plus the flat matrix the
Random Forest and ANN see. Column names are the contract with composites and serving."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from soilclay.errors import BadInputError
from soilclay.model.config import COORD_COLUMNS, OPTICAL_BANDS, SAR_BANDS

COLUMNS = {"optical": OPTICAL_BANDS, "sar": SAR_BANDS, "coords": COORD_COLUMNS}


@dataclass(frozen=True)
class Features:
    """Float32 arrays per model input, in the order of :data:`COLUMNS`."""

    arrays: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, inputs: tuple[str, ...], *, source: str = "table") -> Features:
        arrays = {}
        for name in inputs:
            missing = [c for c in COLUMNS[name] if c not in frame.columns]
            if missing:
                raise BadInputError(f"{source}: input {name!r} needs columns {list(COLUMNS[name])}, missing {missing}")
            values = frame[list(COLUMNS[name])].to_numpy(dtype=np.float32)
            if not np.isfinite(values).all():
                bad = int((~np.isfinite(values)).any(axis=1).sum())
                raise BadInputError(f"{source}: {bad} rows have missing or non-finite {name} values")
            arrays[name] = values
        return cls(arrays)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.arrays)

    @property
    def columns(self) -> list[str]:
        return [c for name in self.arrays for c in COLUMNS[name]]

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
