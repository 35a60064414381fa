"""Raster values as soilclay uses them: floating point, with NaN where the source had its nodata value.

Composites are written with ``nodata=NaN``, but scenes and foreign rasters carry a number (0 for Sentinel-2
L2A digital numbers, -9999, ...). Readers turn that number into NaN once, here, so everything downstream tests
for missing values with ``np.isnan`` only. Pure numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def nodata_to_nan(array: Any, nodata: float | None, *, copy: bool = True) -> np.ndarray:
    """``array`` as floating point with NaN where it equals ``nodata``.

    ``nodata`` of ``None`` or NaN changes nothing (NaN already means missing). Integers become float32 when
    that holds them exactly (8 and 16 bit), else float64; floating arrays keep their dtype. With
    ``copy=False`` a floating ``array`` is changed in place and returned (for buffers the caller owns, such as
    a freshly read raster window).
    """
    arr = np.asarray(array)
    dtype = arr.dtype if arr.dtype.kind == "f" else np.result_type(arr.dtype, np.float32)
    out = np.array(arr, dtype=dtype, copy=copy or arr.dtype != dtype)
    if nodata is not None and not np.isnan(nodata):
        out[arr == nodata] = np.nan
    return out
