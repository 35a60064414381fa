"""Predictors: the clay model's ``serving_default`` signature, run in this process or behind TensorFlow Serving.

Both implement :class:`Predictor`: ``predict({"optical": (n, 10), "sar": (n, 3), "coords": (n, 2)})`` returns
``clay``, ``clay_lower``, ``clay_upper`` (float32, (n,)) and ``in_domain`` (bool, (n,)), computed in batches.
Given the same batches, both give bit-identical results: the same graph runs on the same float32 values.

:class:`TFServingPredictor` talks gRPC (``PredictionService.Predict``) or REST (``:predict``, columnar format)
and always pins the exact model version (gRPC ``model_spec.version``, REST ``/versions/{v}``): labels and
"latest" can move under a running job. Errors are sorted by :func:`grpc_error_is_transient` and
:func:`http_error_is_transient`: transient ones are retried with exponential back-off and end as
:class:`~soilclay.errors.TransientExternalError`; final ones raise :class:`~soilclay.errors.FinalExternalError`
at once. Messages name the model, version and server (never credentials).

Tensors for gRPC are built by hand (:func:`to_tensor_proto`, :func:`from_tensor_proto`) rather than with
``tf.make_tensor_proto``/``tf.make_ndarray``: inputs go as little-endian ``tensor_content`` bytes (compact, no
float formatting), and outputs are read from either encoding TF Serving may use (by default it answers with the
typed ``float_val``/``bool_val`` fields; a server option, ``predict_response_tensor_serialization_option``,
switches to ``tensor_content``), including TF's compact form where fewer values than elements repeat the last one. This
needs no TensorFlow ops; note that importing ``tensorflow_serving.apis`` still imports ``tensorflow`` (its
protos live there), so a client process pays TensorFlow's import time either way.

REST sends every float32 as the exact decimal of its double value (``ndarray.tolist()``): the server parses
JSON numbers as doubles and narrows them to float32, which then gives back exactly the value sent.
TF Serving writes a float32 with 6 significant digits when they parse back to the same value, else with 9
(``WriteDecimal`` in ``json_tensor.cc``), so the client's float64 -> float32 cast gives back exactly that value.
``NaN`` travels as the (non-standard) JSON token TF Serving accepts.

A version that is still loading is not found by Predict (NOT_FOUND, final), like one that is not configured;
:meth:`TFServingPredictor.check_ready` tells the two apart (LOADING is transient), so call it before a run.
"""


from soilclay.serving.base import DEFAULT_BATCH_SIZE, Predictor, batch_slices, check_arrays, check_outputs
from soilclay.serving.inprocess import InProcessPredictor
from soilclay.serving.tfserving import TFServingPredictor, VersionStatus
from soilclay.serving.wire import (
    from_tensor_proto,
    grpc_error_is_transient,
    http_error_is_transient,
    to_tensor_proto,
)

__all__ = ["DEFAULT_BATCH_SIZE", "InProcessPredictor", "Predictor", "TFServingPredictor", "VersionStatus",
           "batch_slices", "check_arrays", "check_outputs", "from_tensor_proto", "grpc_error_is_transient",
           "http_error_is_transient", "to_tensor_proto"]
