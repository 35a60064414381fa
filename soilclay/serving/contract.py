"""Former home of the predictors' shared helpers, now in :mod:`soilclay.serving.base` (checks, batching,
:class:`Predictor`) and :mod:`soilclay.serving.wire` (tensor protos, error classes); the data contract itself
is :mod:`soilclay.contract`. Kept only as re-exports for serving/factory.py; import from those modules instead."""

from soilclay.serving.base import DEFAULT_BATCH_SIZE, Predictor, batch_slices, check_arrays, check_outputs
from soilclay.serving.wire import from_tensor_proto, grpc_error_is_transient, http_error_is_transient, to_tensor_proto

__all__ = ["DEFAULT_BATCH_SIZE", "Predictor", "batch_slices", "check_arrays", "check_outputs", "from_tensor_proto",
           "grpc_error_is_transient", "http_error_is_transient", "to_tensor_proto"]
