"""What goes over the wire to TensorFlow Serving: ``TensorProto`` encoding, and which failures may pass on retry.

Tensors are built by hand rather than with ``tf.make_tensor_proto``/``tf.make_ndarray``: no TensorFlow ops, only
its protos (see :mod:`soilclay.serving.predictor`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from soilclay.errors import BadInputError

# gRPC codes worth retrying. INTERNAL and UNKNOWN are included because TF Serving's REST API maps them to HTTP
# 500, which is retried too: one failure, one decision, whatever the protocol.
_TRANSIENT_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL",
                             "UNKNOWN", "CANCELLED"})
_TRANSIENT_HTTP = frozenset({408, 429, 499, 500, 502, 503, 504})


# --- error classes ---------------------------------------------------------------------------------------------


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


# --- TensorProto codec ----------------------------------------------------------------------------------------


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
