"""The serving contract shared by all predictors: input/output checks, batching, tensor protos, error
classification."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from soilclay.errors import BadInputError
from soilclay.model.export import INPUT_FEATURES, OUTPUTS, check_inputs

log = logging.getLogger(__name__)

OUTPUT_DTYPES: dict[str, np.dtype] = {"clay": np.dtype("float32"), "clay_lower": np.dtype("float32"),
                                      "clay_upper": np.dtype("float32"), "in_domain": np.dtype("bool")}
DEFAULT_BATCH_SIZE = 4096
MAX_GRPC_MESSAGE = 64 * 1024 * 1024
MAX_BACKOFF_S = 30.0

# gRPC codes worth retrying. INTERNAL and UNKNOWN are included because TF Serving's REST API maps them to HTTP
# 500, which is retried too: one failure, one decision, whatever the protocol.
_TRANSIENT_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL",
                             "UNKNOWN", "CANCELLED"})
_TRANSIENT_HTTP = frozenset({408, 429, 499, 500, 502, 503, 504})
_T = TypeVar("_T")


@runtime_checkable
class Predictor(Protocol):
    """What a batch job needs from the clay model, wherever it runs."""

    @property
    def inputs(self) -> tuple[str, ...]:
        """The model's input names, in :data:`~soilclay.model.export.INPUT_FEATURES` order."""
        ...

    @property
    def version(self) -> int:
        """The model version that answers (the TF Serving version directory)."""
        ...

    def predict(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs ``clay``, ``clay_lower``, ``clay_upper`` (float32) and ``in_domain`` (bool), one per row."""
        ...

    def close(self) -> None:
        """Release the model or the connections."""
        ...


# --- pure helpers: inputs, batches, outputs, error classes ------------------------------------------------------


def check_arrays(arrays: Mapping[str, Any], inputs: tuple[str, ...]) -> tuple[dict[str, np.ndarray], int]:
    """Return ``arrays`` as C-contiguous float32 ``(n, width)`` arrays and ``n``, or raise naming the problem.

    The keys must be exactly ``inputs``: a missing one cannot be predicted, and an extra one (e.g. ``sar`` for a
    model trained without SAR) means the caller and the model disagree, which is better said than ignored.
    """
    if not isinstance(arrays, Mapping):
        raise BadInputError(f"predict() takes a mapping of input name to array, found {type(arrays).__name__}")
    missing = [n for n in inputs if n not in arrays]
    extra = sorted(set(arrays) - set(inputs))
    if missing or extra:
        raise BadInputError(f"the model takes inputs {list(inputs)}; missing {missing}, unexpected {extra}")
    out: dict[str, np.ndarray] = {}
    rows: set[int] = set()
    for name in inputs:
        arr = np.asarray(arrays[name])
        width = len(INPUT_FEATURES[name])
        if arr.dtype.kind not in "fiu":
            raise BadInputError(f"input {name!r} must hold real numbers, found dtype {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != width:
            raise BadInputError(f"input {name!r} must have shape (n, {width}) ({', '.join(INPUT_FEATURES[name])}), "
                                f"found {arr.shape}")
        out[name] = np.ascontiguousarray(arr, dtype=np.float32)
        rows.add(arr.shape[0])
    if len(rows) > 1:
        raise BadInputError(f"all inputs must have the same number of rows, found "
                            f"{ {n: a.shape[0] for n, a in out.items()} }")
    return out, rows.pop() if rows else 0


def check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BadInputError(f"batch_size must be an integer >= 1, found {batch_size!r}")
    return batch_size


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive row slices of at most ``batch_size`` rows covering ``0..n``."""
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def check_outputs(outputs: Mapping[str, Any], rows: int) -> dict[str, np.ndarray]:
    """``outputs`` restricted to :data:`OUTPUTS`, each ``(rows,)`` of its dtype; raise ``ValueError`` otherwise."""
    missing = [name for name in OUTPUTS if name not in outputs]
    if missing:
        raise ValueError(f"outputs {missing} are missing; found {sorted(outputs)}")
    checked = {}
    for name in OUTPUTS:
        arr = np.asarray(outputs[name])
        if arr.shape != (rows,) or arr.dtype != OUTPUT_DTYPES[name]:
            raise ValueError(f"output {name!r} must be {OUTPUT_DTYPES[name]} of shape ({rows},), "
                             f"found {arr.dtype} of shape {arr.shape}")
        checked[name] = arr
    return checked


def _empty_outputs(n: int) -> dict[str, np.ndarray]:
    return {name: np.empty(n, OUTPUT_DTYPES[name]) for name in OUTPUTS}


def grpc_error_is_transient(code: str, details: str = "") -> bool:
    """Whether a gRPC status (by name, e.g. ``"UNAVAILABLE"``) may pass on retry.

    RESOURCE_EXHAUSTED is transient (a full queue) except for gRPC's message-size limit, which the same request
    hits again: lower ``batch_size`` instead.
    """
    if code == "RESOURCE_EXHAUSTED" and "larger than max" in details:
        return False
    return code in _TRANSIENT_GRPC


def http_error_is_transient(status: int) -> bool:
    """Whether an HTTP status from TF Serving's REST API may pass on retry (429, 408 and 5xx but 501/505)."""
    return status in _TRANSIENT_HTTP or (500 <= status < 600 and status not in (501, 505))


# --- TensorProto codec ---------------------------------------------------------------------------------------


def _dtype_table() -> dict[int, tuple[np.dtype, str]]:
    from tensorflow.core.framework import types_pb2

    return {types_pb2.DT_FLOAT: (np.dtype("float32"), "float_val"),
            types_pb2.DT_DOUBLE: (np.dtype("float64"), "double_val"),
            types_pb2.DT_BOOL: (np.dtype("bool"), "bool_val"),
            types_pb2.DT_INT32: (np.dtype("int32"), "int_val"),
            types_pb2.DT_INT64: (np.dtype("int64"), "int64_val")}


def to_tensor_proto(array: np.ndarray) -> Any:
    """A ``TensorProto`` of a float32/float64/bool/int32/int64 array, values as ``tensor_content`` bytes."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    arr = np.asarray(array)
    codes = {dtype: code for code, (dtype, _) in _dtype_table().items()}
    if arr.dtype not in codes:
        raise BadInputError(f"cannot send dtype {arr.dtype} to TF Serving; expected one of {sorted(map(str, codes))}")
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in arr.shape])
    content = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    return tensor_pb2.TensorProto(dtype=codes[arr.dtype], tensor_shape=shape, tensor_content=content)


def from_tensor_proto(proto: Any) -> np.ndarray:
    """The array of a ``TensorProto`` in either encoding (``tensor_content`` or the typed ``*_val`` fields)."""
    table = _dtype_table()
    if proto.dtype not in table:
        raise ValueError(f"unsupported tensor dtype enum {proto.dtype}; expected float, double, bool or int")
    dtype, field = table[proto.dtype]
    if proto.tensor_shape.unknown_rank or any(d.size < 0 for d in proto.tensor_shape.dim):
        raise ValueError(f"tensor shape must be fully known, found {proto.tensor_shape}")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    size = math.prod(shape)
    if proto.tensor_content:
        flat = np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype)
        if flat.size != size:
            raise ValueError(f"tensor_content holds {flat.size} values for shape {shape}")
        return flat.reshape(shape)
    values = np.asarray(getattr(proto, field), dtype=dtype)
    if values.size > size:
        raise ValueError(f"{field} holds {values.size} values for shape {shape}")
    if values.size < size:  # TF's compact form: the last value repeats (no values: zeros)
        fill = values[-1] if values.size else dtype.type(0)
        values = np.concatenate([values, np.full(size - values.size, fill, dtype)])
    return values.reshape(shape)


# --- signature contract ----------------------------------------------------------------------------------------


def _signature_inputs(input_specs: Mapping[str, tuple[str, list[int | None]]]) -> tuple[str, ...]:
    """Check a signature's ``{name: (dtype, shape)}`` inputs against the export contract; return the names."""
    unknown = sorted(set(input_specs) - set(INPUT_FEATURES))
    if unknown:
        raise ValueError(f"the signature has inputs {unknown} that are not among {list(INPUT_FEATURES)}")
    for name, (dtype, shape) in input_specs.items():
        expected = [None, len(INPUT_FEATURES[name])]
        if dtype != "float32" or list(shape) != expected:
            raise ValueError(f"signature input {name!r} must be float32 {expected}, found {dtype} {list(shape)}")
    return check_inputs(tuple(n for n in INPUT_FEATURES if n in input_specs))


def _check_signature_outputs(output_dtypes: Mapping[str, str]) -> None:
    wrong = {n: output_dtypes.get(n) for n in OUTPUTS if output_dtypes.get(n) != OUTPUT_DTYPES[n].name}
    if wrong:
        raise ValueError(f"the signature's outputs must include {{clay, clay_lower, clay_upper: float32, in_domain: "
                         f"bool}}; these differ: {wrong} (found outputs {dict(output_dtypes)})")


