"""A protocol-faithful stand-in for TensorFlow Serving, for tests only (NOT a product component).

The real ``tensorflow_model_server`` binary cannot be installed here, so this module serves the same APIs from
Python: a real gRPC server (``PredictionService``: Predict, GetModelMetadata; ``ModelService``: GetModelStatus,
from ``tensorflow-serving-api``) and a REST server (``http.server``) on 127.0.0.1 with free ports. It reads a
model base path laid out as ``{base}/{version}/saved_model.pb``, loads the versions a ``models.config`` names
(``specific``/``latest``/``all`` policies, ``version_labels``) or a given list, and runs the ``serving_default``
signature with ``tf.saved_model.load``.

Behaviour copied from TF Serving's sources (2.21) so tests of the clients mean something:

- version choice: ``model_spec.version`` or ``version_label`` (REST ``/versions/{v}``, ``/labels/{l}``), else
  the highest AVAILABLE version. Unknown model or unloaded version: NOT_FOUND ``Servable not found for request:
  Specific(name, v)`` (HTTP 404); unknown label: INVALID_ARGUMENT ``Unrecognized servable version label`` (400);
- Predict checks the request's inputs against the SignatureDef (missing or extra names, dtype, shape) with
  INVALID_ARGUMENT, honours ``output_filter``, and answers tensors in the typed ``float_val``/``bool_val`` fields
  (TF Serving's default ``kAsProtoField``), with ``model_spec`` naming the version that answered;
- REST ``:predict`` in row (``instances``) and columnar (``inputs``) formats, as ``json_tensor.cc`` parses them
  (row objects must have exactly the input names; columnar ignores extra names; ``NaN``/``Infinity`` tokens),
  answering ``{"predictions": [...]}`` (a list of per-row objects when there are several outputs) or
  ``{"outputs": {...}}``, floats written like TF Serving's ``WriteDecimal``; errors as ``{ "error": "..." }``
  with TF Serving's gRPC-code -> HTTP-status table; ``GET /v1/models/{name}[/versions/{v}|/labels/{l}]`` for
  the status and ``.../metadata`` for the SignatureDefMap.

Prometheus metrics (``monitoring_config=`` a ``monitoring.config`` enabling them, as ``--monitoring_config_file``):
the page at its path (default ``/monitoring/prometheus/metrics``) on the REST port, written like
``util/prometheus_exporter.cc`` (TYPE lines only, latencies in microseconds), with the real server's names and
labels (:data:`soilclay.monitoring.tf_serving.TF_SERVING_METRICS`): requests by model and status code, the
latency of successful requests (REST and gRPC), the Predict runtime latency, and SavedModel load attempts.

Failure injection: :meth:`StandInServing.fail_next` makes the next N calls fail with a chosen gRPC code
(REST: the mapped HTTP status); :meth:`StandInServing.set_state` fakes a version's state (e.g. LOADING).
Every call is recorded in :attr:`StandInServing.calls`.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from soilclay.monitoring.tf_serving import LATENCY_BUCKETS_US, PROMETHEUS_PATH, TF_SERVING_BY_NAME
from soilclay.serving.config import DEFAULT_MODEL_NAME, read_models_config, read_monitoring_config

DEFAULT_SIGNATURE = "serving_default"
Code = grpc.StatusCode

#: TF Serving's ``ToHTTPStatusCode`` (model_servers/http_server.cc).
HTTP_STATUS = {
    Code.OK: 200, Code.CANCELLED: 499, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400, Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409, Code.PERMISSION_DENIED: 403, Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400, Code.ABORTED: 409, Code.OUT_OF_RANGE: 400, Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500, Code.UNAVAILABLE: 503, Code.DATA_LOSS: 500, Code.UNAUTHENTICATED: 401,
}
_PREDICT_RE = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
                         re.IGNORECASE)
_STATUS_RE = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
                        re.IGNORECASE)
_NP_DTYPES = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64, types_pb2.DT_BOOL: np.bool_,
              types_pb2.DT_INT32: np.int32, types_pb2.DT_INT64: np.int64}
_FLOAT_MAX = float(np.finfo(np.float32).max)


class ServingError(Exception):
    """A TF Serving error status: a gRPC code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass
class _Version:
    version: int
    state: str = "AVAILABLE"
    error_code: str = "OK"
    error_message: str = ""
    loaded: Any = None
    signature_defs: Any = None  # the MetaGraphDef's map<string, SignatureDef>, straight from saved_model.pb


@dataclass
class _Failures:
    remaining: int = 0
    code: grpc.StatusCode = Code.UNAVAILABLE
    message: str = ""
    methods: frozenset[str] | None = None


def _dtype_name(dtype: int) -> str:
    return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()


def _shape_of(info: Any) -> list[int]:
    return [int(d.size) for d in info.tensor_shape.dim]


# --- JSON <-> tensors, as tensorflow_serving/util/json_tensor.cc --------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _leaf(value: Any, dtype: int) -> Any:
    def type_error() -> ServingError:
        return ServingError(Code.INVALID_ARGUMENT, f"JSON Value: {json.dumps(value)} Type: {_json_type(value)} is "
                                                   f"not of expected type: {_dtype_name(dtype)}")

    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise type_error()
        if dtype == types_pb2.DT_FLOAT and math.isfinite(value) and not -_FLOAT_MAX <= value <= _FLOAT_MAX:
            raise ServingError(Code.INVALID_ARGUMENT, f"Cannot convert JSON value: {value} to float without loss "
                                                      "of precision.")
        return float(value)
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise type_error()
        return value
    if dtype in (types_pb2.DT_INT32, types_pb2.DT_INT64):
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_error()
        return value
    raise ServingError(Code.UNIMPLEMENTED, f"Conversion of JSON Value: {json.dumps(value)} to type: "
                                           f"{_dtype_name(dtype)}")


def json_to_array(value: Any, dtype: int) -> np.ndarray:
    """A dense tensor from nested JSON lists (shape from the first elements; ragged lists are errors)."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list[Any] = []

    def fill(item: Any, level: int) -> None:
        if not isinstance(item, list):
            if level != len(shape):
                raise ServingError(Code.INVALID_ARGUMENT,
                                   f"JSON Value: {json.dumps(item)} found at incorrect level: {level + 1} in the JSON "
                                   f"DOM. Expected at level: {len(shape)}")
            flat.append(_leaf(item, dtype))
            return
        if level >= len(shape):
            raise ServingError(Code.INVALID_ARGUMENT, f"Encountered list at unexpected level: {level} expected < "
                                                      f"{len(shape)}")
        if len(item) != shape[level]:
            raise ServingError(Code.INVALID_ARGUMENT, f"Encountered list at unexpected size: {len(item)} at level: "
                                                      f"{level} expected size: {shape[level]}")
        for element in item:
            fill(element, level + 1)

    fill(value, 0)
    return np.array(flat, dtype=_NP_DTYPES[dtype]).reshape(shape)


def _tensors_from_instances(instances: Any, infos: Any) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise ServingError(Code.INVALID_ARGUMENT, "Excepting 'instances' to be an list/array")
    if not instances:
        raise ServingError(Code.INVALID_ARGUMENT, "No values in 'instances' array")
    names = sorted(infos)
    as_objects = isinstance(instances[0], dict)
    if not as_objects and len(infos) > 1:
        raise ServingError(Code.INVALID_ARGUMENT, "instances is a plain list, but expecting list of objects as "
                                                  "multiple input tensors required as per tensorinfo_map")
    rows: dict[str, list[np.ndarray]] = {}
    for i, element in enumerate(instances):
        if as_objects != isinstance(element, dict):
            expected = "object but got list" if as_objects else "value/list but got object"
            raise ServingError(Code.INVALID_ARGUMENT, f"Expecting {expected} at item {i} of input list")
        items = element.items() if as_objects else [(names[0], element)]
        for name, value in items:
            if name not in infos:
                raise ServingError(Code.INVALID_ARGUMENT, f"Failed to process element: {i} key: {name} of "
                                                          f"'instances' list. Error: INVALID_ARGUMENT: JSON object: "
                                                          f"does not have named input: {name}")
            arr = json_to_array(value, infos[name].dtype)
            if rows.get(name) and rows[name][0].shape != arr.shape:
                raise ServingError(Code.INVALID_ARGUMENT, f"Failed to process element: {i} key: {name} of "
                                                          f"'instances' list. Error: INVALID_ARGUMENT: Expecting "
                                                          f"shape {list(rows[name][0].shape)} but got: "
                                                          f"{list(arr.shape)}")
            rows.setdefault(name, []).append(arr)
        if as_objects and set(element) != set(infos):
            raise ServingError(Code.INVALID_ARGUMENT, f"Failed to process element: {i} of 'instances' list. JSON "
                                                      f"object: {json.dumps(element)[:200]} must only have keys: "
                                                      f"{','.join(names)}")
    return {name: np.stack(arrays) for name, arrays in rows.items()}


def _tensors_from_inputs(inputs: Any, infos: Any) -> dict[str, np.ndarray]:
    if not isinstance(inputs, dict):
        if len(infos) > 1:
            raise ServingError(Code.INVALID_ARGUMENT, "inputs is a plain value/list, but expecting an object as "
                                                      "multiple input tensors required as per tensorinfo_map")
        name = next(iter(infos))
        return {name: json_to_array(inputs, infos[name].dtype)}
    tensors = {}
    for name in sorted(infos):  # names the signature does not take are ignored, as TF Serving does
        if name not in inputs:
            raise ServingError(Code.INVALID_ARGUMENT, f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = json_to_array(inputs[name], infos[name].dtype)
    return tensors


def tf_decimal(value: Any) -> str:
    """A float as TF Serving's ``WriteDecimal``: 6 significant digits when that parses back, else full precision."""
    kind = np.float32 if isinstance(value, np.float32) else np.float64
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{float(value):g}"
    if kind(float(text)) != value:
        text = f"{float(value):.{9 if kind is np.float32 else 17}g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _json_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _json_value(value[()])
        return "[" + ",".join(_json_value(v) for v in value) + "]"
    if isinstance(value, np.bool_ | bool):
        return "true" if value else "false"
    if isinstance(value, np.floating):
        return tf_decimal(value)
    if isinstance(value, np.integer):
        return str(int(value))
    raise TypeError(f"cannot write {type(value).__name__} as a tensor value")


def _row_json(outputs: dict[str, np.ndarray]) -> str:
    batch = None
    for name, arr in outputs.items():
        if arr.ndim == 0:
            raise ServingError(Code.INVALID_ARGUMENT, f"Tensor name: {name} has no shape information ")
        if arr.shape[0] < 1:
            raise ServingError(Code.INVALID_ARGUMENT, f"Tensor name: {name} has invalid batch size: {arr.shape[0]}")
        if batch is not None and arr.shape[0] != batch:
            raise ServingError(Code.INVALID_ARGUMENT, f"Tensor name: {name} has inconsistent batch size: "
                                                      f"{arr.shape[0]} expecting: {batch}")
        batch = arr.shape[0]
    names = sorted(outputs)
    if len(names) == 1:
        rows = [_json_value(outputs[names[0]][i]) for i in range(batch or 0)]
    else:
        rows = ["{" + ",".join(f"{json.dumps(n)}:{_json_value(outputs[n][i])}" for n in names) + "}"
                for i in range(batch or 0)]
    return '{"predictions":[' + ",".join(rows) + "]}"


def _columnar_json(outputs: dict[str, np.ndarray]) -> str:
    names = sorted(outputs)
    if len(names) == 1:
        return '{"outputs":' + _json_value(outputs[names[0]]) + "}"
    return '{"outputs":{' + ",".join(f"{json.dumps(n)}:{_json_value(outputs[n])}" for n in names) + "}}"


def as_proto_field(array: np.ndarray) -> Any:
    """A ``TensorProto`` with values in the typed ``*_val`` field, as TF Serving answers by default."""
    arr = np.asarray(array)
    dtype = tf.dtypes.as_dtype(arr.dtype).as_datatype_enum
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in arr.shape]))
    field_name = {types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_BOOL: "bool_val",
                  types_pb2.DT_INT32: "int_val", types_pb2.DT_INT64: "int64_val"}[dtype]
    getattr(proto, field_name).extend(arr.ravel().tolist())
    return proto


# --- Prometheus metrics, as tensorflow_serving/util/prometheus_exporter.cc writes them ---------------------------


def _tf_number(value: float) -> str:
    """A double as ``absl::StrCat`` writes it (six significant digits)."""
    return f"{value:.6g}"


class _Histogram:
    """A TF ``Sampler`` cell: a value falls in the first bucket whose limit is above it (the last: DBL_MAX)."""

    def __init__(self, limits: tuple[float, ...]) -> None:
        self.limits = limits
        self.buckets = [0] * (len(limits) + 1)
        self.sum = 0.0

    def add(self, value: float) -> None:
        self.buckets[next((i for i, limit in enumerate(self.limits) if value < limit), len(self.limits))] += 1
        self.sum += value


class StandInMetrics:
    """The metrics the stand-in records, under the real server's names and labels
    (:data:`soilclay.monitoring.tf_serving.TF_SERVING_METRICS`); latencies in microseconds."""

    NAMES = tuple(sorted(name for name, m in TF_SERVING_BY_NAME.items() if m.standin))

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[str, ...], int]] = {}
        self._histograms: dict[str, dict[tuple[str, ...], _Histogram]] = {}

    def inc(self, name: str, labels: tuple[str, ...], by: int = 1) -> None:
        with self._lock:
            cells = self._counters.setdefault(name, {})
            cells[labels] = cells.get(labels, 0) + int(by)

    def observe(self, name: str, labels: tuple[str, ...], value_us: float) -> None:
        with self._lock:
            cells = self._histograms.setdefault(name, {})
            cells.setdefault(labels, _Histogram(LATENCY_BUCKETS_US)).add(max(0.0, value_us))

    def page(self) -> str:
        """The Prometheus text page: every metric's TYPE line (also with no points yet), its points sorted."""
        lines: list[str] = []
        with self._lock:
            for name in self.NAMES:
                spec = TF_SERVING_BY_NAME[name]
                lines.append(f"# TYPE {name} {spec.kind}")
                if spec.kind == "histogram":
                    for values, cell in sorted(self._histograms.get(name, {}).items()):
                        labels = [f'{k}="{_escape(v)}"' for k, v in zip(spec.labels, values, strict=True)]
                        prefix = f"{name}_bucket{{" + ",".join(labels) + ("," if labels else "")
                        total = 0
                        for i, count in enumerate(cell.buckets):
                            total += count
                            le = _tf_number(cell.limits[i]) if i < len(cell.limits) else "+Inf"
                            lines.append(f'{prefix}le="{le}"}} {total}')
                        joined = ",".join(labels)
                        lines.append(f"{name}_sum{{{joined}}} {_tf_number(cell.sum)}")
                        lines.append(f"{name}_count{{{joined}}} {total}")
                else:
                    for values, count in sorted(self._counters.get(name, {}).items()):
                        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(spec.labels, values, strict=True))
                        lines.append(f"{name}{{{labels}}} {count}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


# --- the server ----------------------------------------------------------------------------------------------


class StandInServing:
    """The stand-in server; use as a context manager or call :meth:`start` and :meth:`stop`."""

    def __init__(self, base_path: str | Path | None = None, *, model_name: str = DEFAULT_MODEL_NAME,
                 versions: Iterable[int] | None = None, models_config: str | Path | None = None,
                 monitoring_config: str | Path | None = None) -> None:
        self.model_name = model_name
        #: Where the Prometheus page is served (``--monitoring_config_file`` with ``prometheus_config.enable``),
        #: None without one: then, like the real server, the REST port has no metrics page.
        self.metrics_path: str | None = None
        if monitoring_config is not None:
            prometheus = read_monitoring_config(monitoring_config).prometheus_config
            if prometheus.enable:
                self.metrics_path = prometheus.path or PROMETHEUS_PATH
        self.metrics = StandInMetrics()
        self.labels: dict[str, int] = {}
        wanted: list[int] | None = list(versions) if versions is not None else None
        if models_config is not None:
            config = read_models_config(models_config)
            entries = [m for m in config.model_config_list.config if m.name == model_name]
            if not entries:
                raise ValueError(f"{models_config} has no model {model_name!r}")
            entry = entries[0]
            base_path = entry.base_path
            policy = entry.model_version_policy.WhichOneof("policy_choice")
            on_disk = self._version_dirs(Path(base_path))
            if policy == "specific":
                wanted = list(entry.model_version_policy.specific.versions)
            elif policy == "all":
                wanted = on_disk
            else:
                keep = entry.model_version_policy.latest.num_versions or 1
                wanted = sorted(on_disk)[-keep:]
            self.labels = dict(entry.version_labels)
        if base_path is None:
            raise ValueError("give base_path or models_config")
        self.base_path = Path(base_path)
        if wanted is None:
            wanted = self._version_dirs(self.base_path)[-1:]
        self._versions: dict[int, _Version] = {}
        for version in wanted:
            self._load(version)
        self._states: dict[int, tuple[str, str, str]] = {}
        self._failures = _Failures()
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self.grpc_port = self.rest_port = 0

    @staticmethod
    def _version_dirs(base: Path) -> list[int]:
        """Version directories as TF Serving sees them: all-digit names (``_staging``, ``.tmp`` are ignored)."""
        return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()) if base.is_dir() else []

    def _load(self, version: int) -> None:
        root = self.base_path / str(version)
        if not (root / "saved_model.pb").is_file():
            return  # TF Serving only logs that a pinned version is missing; it never appears in the status
        entry = _Version(version)
        start = time.perf_counter()
        status = "success"
        try:
            meta = saved_model_pb2.SavedModel.FromString((root / "saved_model.pb").read_bytes())
            graphs = [g for g in meta.meta_graphs if "serve" in g.meta_info_def.tags]
            if not graphs:
                raise ValueError("no MetaGraph with the 'serve' tag")
            entry.signature_defs = graphs[0].signature_def
            entry.loaded = tf.saved_model.load(str(root))
        except Exception as e:  # a broken version ends as END with its error, like TF Serving
            entry.state, entry.error_code, entry.error_message = "END", "UNKNOWN", f"{type(e).__name__}: {e}"
            status = "fail"
        took_us = (time.perf_counter() - start) * 1e6
        # tensorflow/cc/saved_model/loader.cc: an attempt per load, its latency; stages only for a load that worked
        self.metrics.inc(":tensorflow:cc:saved_model:load_attempt_count", (str(root), status))
        self.metrics.inc(":tensorflow:cc:saved_model:load_latency", (str(root),), int(took_us))
        if status == "success":
            self.metrics.observe(":tensorflow:cc:saved_model:load_latency_by_stage", (str(root), "restore_graph"),
                                 took_us)
            self.metrics.observe(":tensorflow:cc:saved_model:load_latency_by_stage", (str(root), "init_graph"), 0.0)
        self._versions[version] = entry

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> StandInServing:
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionServicer(self), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self._http = _RestServer(("127.0.0.1", 0), _RestHandler, self)
        self.rest_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, name="standin-rest", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait()
            self._grpc = None

    def __enter__(self) -> StandInServing:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics_path is None else f"{self.rest_url}{self.metrics_path}"

    def record_request(self, model_name: str, code: grpc.StatusCode, api: str, entrypoint: str,
                       took_us: float) -> None:
        """RecordModelRequestCount, and RecordRequestLatency for a request that succeeded (http_server.cc,
        prediction_service_impl.cc)."""
        self.metrics.inc(":tensorflow:serving:request_count", (model_name, code.name))
        if code == Code.OK:
            self.metrics.observe(":tensorflow:serving:request_latency", (model_name, api, entrypoint), took_us)

    # --- test controls ---------------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, code: grpc.StatusCode = Code.UNAVAILABLE, message: str = "injected failure",
                  *, methods: Iterable[str] | None = None) -> None:
        """Make the next ``n`` calls (of ``methods``, e.g. ``{"Predict"}``; default all) fail with ``code``."""
        with self._lock:
            self._failures = _Failures(n, code, message, frozenset(methods) if methods is not None else None)

    def set_state(self, version: int, state: str, error_code: str = "OK", error_message: str = "") -> None:
        """Report ``version`` in ``state`` (START, LOADING, AVAILABLE, UNLOADING, END); only AVAILABLE serves."""
        with self._lock:
            self._states[version] = (state, error_code, error_message)

    def reset(self) -> None:
        """Forget injected failures, faked states and recorded calls."""
        with self._lock:
            self._failures = _Failures()
            self._states.clear()
            self.calls.clear()

    def count(self, method: str, protocol: str | None = None) -> int:
        """How many ``method`` calls (``Predict``, ``GetModelStatus``, ``GetModelMetadata``) were received."""
        with self._lock:
            return sum(1 for p, m in self.calls if m == method and protocol in (None, p))

    # --- shared core -----------------------------------------------------------------------------------------

    def _enter(self, protocol: str, method: str) -> None:
        with self._lock:
            self.calls.append((protocol, method))
            f = self._failures
            if f.remaining > 0 and (f.methods is None or method in f.methods):
                f.remaining -= 1
                raise ServingError(f.code, f.message)

    def _status_of(self, version: int) -> tuple[str, str, str] | None:
        with self._lock:
            if version in self._states:
                return self._states[version]
        entry = self._versions.get(version)
        return None if entry is None else (entry.state, entry.error_code, entry.error_message)

    def _resolve(self, name: str, version: int | None, label: str | None) -> _Version:
        """The servable a model spec asks for (ServerCore::GetServableHandle)."""
        if not name:
            raise ServingError(Code.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        if label is not None and name == self.model_name:
            if label not in self.labels:
                raise ServingError(Code.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
            version = self.labels[label]
        if version is not None:
            status = self._status_of(version) if name == self.model_name else None
            entry = self._versions.get(version)
            if status is None or status[0] != "AVAILABLE" or entry is None or entry.loaded is None:
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})")
            return entry
        available = [v for v, e in self._versions.items()
                     if e.loaded is not None and (self._status_of(v) or ("",))[0] == "AVAILABLE"]
        if name != self.model_name or not available:
            raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Latest({name})")
        return self._versions[max(available)]

    def _signature(self, entry: _Version, signature_name: str) -> tuple[str, Any]:
        name = signature_name or DEFAULT_SIGNATURE
        if name not in entry.signature_defs:
            raise ServingError(Code.INVALID_ARGUMENT, f'Serving signature name: "{name}" not found in signature def')
        return name, entry.signature_defs[name]

    def _run(self, entry: _Version, signature_name: str, inputs: dict[str, np.ndarray],
             output_filter: Iterable[str] = ()) -> tuple[str, dict[str, np.ndarray]]:
        """Check ``inputs`` against the SignatureDef, run it, return (signature name, outputs)."""
        name, sig = self._signature(entry, signature_name)
        required, sent = set(sig.inputs), set(inputs)
        if required != sent:
            raise ServingError(Code.INVALID_ARGUMENT, f"Request inputs do not match required inputs for model "
                                                      f"`{self.model_name}`. Send extra: "
                                                      f"{{{','.join(sorted(sent - required))}}}. Missing but "
                                                      f"required: {{{','.join(sorted(required - sent))}}}.")
        rows = set()
        for i, key in enumerate(sorted(required)):
            info, arr = sig.inputs[key], inputs[key]
            expected = _NP_DTYPES.get(info.dtype)
            if expected is None or arr.dtype != np.dtype(expected):
                got = tf.dtypes.as_dtype(arr.dtype).name if arr.dtype != object else "object"
                raise ServingError(Code.INVALID_ARGUMENT, f"Expects arg[{i}] to be {_dtype_name(info.dtype)} but "
                                                          f"{ {'float32': 'float', 'float64': 'double'}.get(got, got)} "
                                                          "is provided")
            dims = _shape_of(info)
            if not info.tensor_shape.unknown_rank and (
                    arr.ndim != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, arr.shape, strict=True))):
                raise ServingError(Code.INVALID_ARGUMENT, f"input {key}: shape {list(arr.shape)} is incompatible "
                                                          f"with the signature's {dims} (-1: any size)")
            rows.add(arr.shape[0] if arr.ndim else None)
        if len(rows) > 1:
            raise ServingError(Code.INVALID_ARGUMENT, f"ConcatOp : Dimension 0 in both shapes must be equal: the "
                                                      f"inputs have {sorted(map(str, rows))} rows")
        wanted = list(output_filter) or sorted(sig.outputs)
        for alias in wanted:
            if alias not in sig.outputs:
                raise ServingError(Code.INVALID_ARGUMENT, f"output tensor alias not found in signature: {alias} "
                                                          f"Outputs expected to be in the set "
                                                          f"{{{','.join(sorted(sig.outputs))}}}.")
        fn = entry.loaded.signatures[name]
        start = time.perf_counter()
        try:
            raw = fn(**{key: tf.constant(arr) for key, arr in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise ServingError(Code.INVALID_ARGUMENT, e.message) from e
        except Exception as e:  # anything else is the server's fault
            raise ServingError(Code.INTERNAL, f"{type(e).__name__}: {e}") from e
        # servables/tensorflow/predict_util.cc: the session run of a Predict, runtime "TF1"
        self.metrics.observe(":tensorflow:serving:runtime_latency", (self.model_name, "Predict", "TF1"),
                             (time.perf_counter() - start) * 1e6)
        return name, {alias: raw[alias].numpy() for alias in wanted}

    def _status_response(self, name: str, version: int | None, label: str | None) -> Any:
        """GetModelStatus (get_model_status_impl.cc); labels are resolved to their version."""
        if label is not None:
            if name != self.model_name or label not in self.labels:
                raise ServingError(Code.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
            version = self.labels[label]
        response = get_model_status_pb2.GetModelStatusResponse()
        known = sorted(self._versions, reverse=True) if name == self.model_name else []
        if version is not None:
            if version not in known:
                raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
            known = [version]
        elif not known:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        for v in known:
            state, code, message = self._status_of(v) or ("END", "OK", "")
            status = response.model_version_status.add(version=v)
            status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            code_type = status.status.DESCRIPTOR.fields_by_name["error_code"].enum_type
            status.status.error_code = code_type.values_by_name[code].number
            status.status.error_message = message
        return response

    def _metadata_response(self, name: str, version: int | None, label: str | None,
                           fields: Iterable[str]) -> Any:
        """GetModelMetadata (get_model_metadata_impl.cc): only the ``signature_def`` field exists."""
        fields = list(fields)
        if not fields:
            raise ServingError(Code.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one "
                                                      "metadata_field")
        for f in fields:
            if f != "signature_def":
                raise ServingError(Code.INVALID_ARGUMENT, f"Metadata field {f} is not supported")
        entry = self._resolve(name, version, label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = entry.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in entry.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(sig)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    # --- REST ------------------------------------------------------------------------------------------------

    def rest(self, method: str, path: str, body: bytes) -> str:
        """Answer one REST request (http_rest_api_handler.cc); raises :class:`ServingError` on failure."""
        if method == "POST" and (m := _PREDICT_RE.fullmatch(path)):
            name = urllib.parse.unquote(m[1])
            version = int(m[2]) if m[2] else None
            label = urllib.parse.unquote(m[3]) if m[3] else None
            if m[4].lower() != "predict":
                raise ServingError(Code.UNIMPLEMENTED, f"the stand-in implements :predict, not :{m[4]}")
            self._enter("rest", "Predict")
            return self._rest_predict(name, version, label, body)
        if method == "GET" and (m := _STATUS_RE.fullmatch(path)):
            if not m[1]:
                raise ServingError(Code.INVALID_ARGUMENT, "Missing model name in request.")
            name = urllib.parse.unquote(m[1])
            version = int(m[2]) if m[2] else None
            label = urllib.parse.unquote(m[3]) if m[3] else None
            if m[4]:
                self._enter("rest", "GetModelMetadata")
                response = self._metadata_response(name, version, label, ["signature_def"])
                options = {"preserving_proto_field_name": True, "always_print_fields_with_no_presence": True}
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                response.metadata["signature_def"].Unpack(signature_map)
                return json.dumps({"model_spec": json_format.MessageToDict(response.model_spec, **options),
                                   "metadata": {"signature_def": json_format.MessageToDict(signature_map, **options)}},
                                  indent=1)
            self._enter("rest", "GetModelStatus")
            return json_format.MessageToJson(self._status_response(name, version, label),
                                             always_print_fields_with_no_presence=True, indent=1)
        raise ServingError(Code.INVALID_ARGUMENT, f"Malformed request: {method} {path}")

    def _rest_predict(self, name: str, version: int | None, label: str | None, body: bytes) -> str:
        if not body:
            raise ServingError(Code.INVALID_ARGUMENT, "JSON Parse error: The document is empty")
        try:
            doc = json.loads(body)  # accepts NaN, Infinity, -Infinity like rapidjson's kParseNanAndInfFlag
        except ValueError as e:
            raise ServingError(Code.INVALID_ARGUMENT, f"JSON Parse error: {e}") from e
        if not isinstance(doc, dict):
            raise ServingError(Code.INVALID_ARGUMENT, f"JSON Value: {body[:100]!r} Is not object")
        signature_name = doc.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise ServingError(Code.INVALID_ARGUMENT, "JSON Value: ... not formatted correctly. 'signature_name' key "
                                                      "must be a string value.")
        entry = self._resolve(name, version, label)
        _, sig = self._signature(entry, signature_name)
        if "instances" in doc and "inputs" in doc:
            raise ServingError(Code.INVALID_ARGUMENT, "Not formatted correctly expecting only one of 'inputs' or "
                                                      "'instances' keys to exist ")
        if "instances" in doc:
            tensors, row_format = _tensors_from_instances(doc["instances"], sig.inputs), True
        elif "inputs" in doc:
            tensors, row_format = _tensors_from_inputs(doc["inputs"], sig.inputs), False
        else:
            raise ServingError(Code.INVALID_ARGUMENT, "Missing 'inputs' or 'instances' key")
        _, outputs = self._run(entry, signature_name, tensors)
        return _row_json(outputs) if row_format else _columnar_json(outputs)


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: StandInServing) -> None:
        self.core = core

    @staticmethod
    def _spec(spec: Any) -> tuple[str, int | None, str | None]:
        choice = spec.WhichOneof("version_choice")
        return (spec.name, spec.version.value if choice == "version" else None,
                spec.version_label if choice == "version_label" else None)

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        start = time.perf_counter()
        try:
            self.core._enter("grpc", "Predict")
            entry = self.core._resolve(*self._spec(request.model_spec))
            inputs = {}
            for key, tensor in request.inputs.items():
                try:
                    inputs[key] = tf.make_ndarray(tensor)
                except Exception as e:
                    raise ServingError(Code.INVALID_ARGUMENT, f"tensor parsing error: {key}") from e
            signature, outputs = self.core._run(entry, request.model_spec.signature_name, inputs,
                                                request.output_filter)
        except ServingError as e:
            self.core.record_request(request.model_spec.name, e.code, "Predict", "GRPC", 0.0)
            context.abort(e.code, e.message)
        self.core.record_request(request.model_spec.name, Code.OK, "Predict", "GRPC",
                                 (time.perf_counter() - start) * 1e6)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.core.model_name
        response.model_spec.version.value = entry.version
        response.model_spec.signature_name = signature
        for alias, arr in outputs.items():
            response.outputs[alias].CopyFrom(as_proto_field(arr))
        return response

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            self.core._enter("grpc", "GetModelMetadata")
            return self.core._metadata_response(*self._spec(request.model_spec), request.metadata_field)
        except ServingError as e:
            context.abort(e.code, e.message)


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: StandInServing) -> None:
        self.core = core

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            self.core._enter("grpc", "GetModelStatus")
            if not request.HasField("model_spec"):
                raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
            return self.core._status_response(*_PredictionServicer._spec(request.model_spec))
        except ServingError as e:
            context.abort(e.code, e.message)


def _rest_model_and_method(method: str, path: str) -> tuple[str, str]:
    """The model name and method ``ParseModelInfo`` finds in a REST path ('' when it finds none; GET: no method)."""
    if method == "POST" and (m := _PREDICT_RE.fullmatch(path)):
        return urllib.parse.unquote(m[1]), m[4]
    if method == "GET" and (m := _STATUS_RE.fullmatch(path)):
        return urllib.parse.unquote(m[1] or ""), ""
    return "", ""


class _RestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, core: StandInServing) -> None:
        super().__init__(address, handler)
        self.core = core


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a client's session expects
    server: _RestServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def _dispatch(self, method: str) -> None:
        start = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urllib.parse.urlsplit(self.path).path
        core = self.server.core
        if core.metrics_path is not None and path == core.metrics_path:  # PrometheusExporter::GeneratePage
            self._reply(200, core.metrics.page(), "text/plain")
            return
        if not re.fullmatch(r"/v1/.*", path, re.IGNORECASE):  # not the REST API's prefix: the HTTP server's 404
            self._reply(404, "", "text/plain")
            return
        code = Code.OK
        try:
            status, text = 200, core.rest(method, path, body)
        except ServingError as e:
            code, status, text = e.code, HTTP_STATUS[e.code], '{ "error": ' + json.dumps(e.message) + " }"
        except Exception as e:  # a stand-in bug still answers, as INTERNAL
            code, status = Code.INTERNAL, 500
            text = '{ "error": ' + json.dumps(f"stand-in failure: {type(e).__name__}: {e}") + " }"
        model_name, api = _rest_model_and_method(method, path)
        core.record_request(model_name, code, api, "REST", (time.perf_counter() - start) * 1e6)
        self._reply(status, text, "application/json")

    def _reply(self, status: int, text: str, content_type: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
