"""TFServingPredictor: TensorFlow Serving over gRPC or REST, pinned to one version."""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError
from soilclay.model.export import OUTPUTS, SIGNATURE, check_inputs
from soilclay.serving.contract import (
    _T,
    DEFAULT_BATCH_SIZE,
    MAX_BACKOFF_S,
    MAX_GRPC_MESSAGE,
    OUTPUT_DTYPES,
    _check_signature_outputs,
    _empty_outputs,
    _signature_inputs,
    batch_slices,
    check_arrays,
    check_batch_size,
    check_outputs,
    from_tensor_proto,
    grpc_error_is_transient,
    http_error_is_transient,
    to_tensor_proto,
)

log = logging.getLogger(__name__)
_sleep: Callable[[float], None] = time.sleep  # module attribute so tests can record the back-off

@dataclass(frozen=True)
class VersionStatus:
    """One model version's state as TF Serving reports it (``GetModelStatus``)."""

    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str  # OK when healthy
    error_message: str


class _CallError(Exception):
    """A failed call, already classified; ``detail`` is safe to log."""

    def __init__(self, transient: bool, detail: str) -> None:
        super().__init__(detail)
        self.transient = transient
        self.detail = detail


def _version_status(response: Any, version: int) -> VersionStatus:
    for status in response.model_version_status:
        if status.version == version:
            state = type(status).State.Name(status.state)
            code_field = status.status.DESCRIPTOR.fields_by_name["error_code"]
            code = code_field.enum_type.values_by_number[status.status.error_code].name
            return VersionStatus(version, state, code, status.status.error_message)
    found = [s.version for s in response.model_version_status]
    raise _CallError(False, f"the status response has no entry for version {version}; found versions {found}")


def _signature_contract(signature_def_map: Any, signature_name: str) -> tuple[str, ...]:
    """Check a ``SignatureDefMap`` against the export contract; return the input names."""
    from tensorflow.core.framework import types_pb2

    if signature_name not in signature_def_map.signature_def:
        raise _CallError(False, f"the model has no signature {signature_name!r}; found "
                                f"{sorted(signature_def_map.signature_def)}")
    sig = signature_def_map.signature_def[signature_name]

    def spec(info: Any) -> tuple[str, list[int | None]]:
        dtype = types_pb2.DataType.Name(info.dtype).removeprefix("DT_").lower()
        dims = [None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
        return {"float": "float32", "double": "float64"}.get(dtype, dtype), dims

    try:
        inputs = _signature_inputs({name: spec(info) for name, info in sig.inputs.items()})
        _check_signature_outputs({name: spec(info)[0] for name, info in sig.outputs.items()})
    except ValueError as e:
        raise _CallError(False, f"the served model is not a soilclay clay model: {e}") from e
    return inputs


class _GrpcTransport:
    """``PredictionService``/``ModelService`` calls for one model version over one channel."""

    def __init__(self, target: str, model_name: str, version: int, signature_name: str, timeout_s: float,
                 credentials: Any = None) -> None:
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        options = [("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
                   ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE)]
        self._channel = (grpc.secure_channel(target, credentials, options=options) if credentials is not None
                         else grpc.insecure_channel(target, options=options))
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._name, self._version, self._signature, self._timeout = model_name, version, signature_name, timeout_s

    def _spec(self, spec: Any, *, signature: bool = True) -> None:
        spec.name = self._name
        spec.version.value = self._version
        if signature:
            spec.signature_name = self._signature

    def _invoke(self, method: Callable[..., _T], request: Any) -> _T:
        import grpc

        try:
            return method(request, timeout=self._timeout)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            details = (e.details() if hasattr(e, "details") else "") or ""
            name = code.name if code is not None else "UNKNOWN"
            raise _CallError(grpc_error_is_transient(name, details), f"{name}: {details}") from e

    def predict(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        for name, arr in batch.items():
            request.inputs[name].CopyFrom(to_tensor_proto(arr))
        request.output_filter.extend(OUTPUTS)
        response = self._invoke(self._prediction.Predict, request)
        if response.model_spec.HasField("version") and response.model_spec.version.value != self._version:
            raise _CallError(False, f"version {response.model_spec.version.value} answered instead of the pinned "
                                    f"version {self._version}")
        try:
            return {name: from_tensor_proto(tensor) for name, tensor in response.outputs.items()}
        except ValueError as e:
            raise _CallError(False, f"unreadable output tensor: {e}") from e

    def status(self) -> VersionStatus:
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, signature=False)
        return _version_status(self._invoke(self._models.GetModelStatus, request), self._version)

    def input_names(self) -> tuple[str, ...]:
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, signature=False)
        response = self._invoke(self._prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if "signature_def" not in response.metadata or not response.metadata["signature_def"].Unpack(signature_map):
            raise _CallError(False, "the metadata response holds no SignatureDefMap under 'signature_def'")
        return _signature_contract(signature_map, self._signature)

    def close(self) -> None:
        self._channel.close()


class _RestTransport:
    """TF Serving's REST API for one model version: ``/v1/models/{name}/versions/{v}[:predict|/metadata]``."""

    def __init__(self, rest_url: str, model_name: str, version: int, signature_name: str, timeout_s: float) -> None:
        import requests

        parts = urllib.parse.urlsplit(rest_url)
        self._session = requests.Session()
        if parts.username is not None:  # credentials go in a header, so no URL we build or log carries them
            self._session.auth = (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        base = _safe_server(rest_url, "rest")
        self._url = f"{base}/v1/models/{urllib.parse.quote(model_name, safe='')}/versions/{version}"
        self._version, self._signature, self._timeout = version, signature_name, timeout_s

    def _request(self, method: str, url: str, body: str | None = None) -> Any:
        import requests

        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = self._session.request(method, url, data=body, headers=headers, timeout=self._timeout)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise _CallError(True, f"{type(e).__name__}: cannot reach the server ({_first_line(e)})") from e
        except requests.RequestException as e:
            raise _CallError(False, f"{type(e).__name__}: {_first_line(e)}") from e
        if response.status_code != 200:
            try:
                message = str(response.json().get("error", ""))
            except (ValueError, AttributeError):
                message = response.text[:300]
            raise _CallError(http_error_is_transient(response.status_code),
                             f"HTTP {response.status_code}: {message}")
        try:
            return response.json()
        except ValueError as e:
            raise _CallError(False, f"the response is not JSON: {response.text[:200]!r}") from e

    def predict(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        body = json.dumps({"signature_name": self._signature,
                           "inputs": {name: arr.tolist() for name, arr in batch.items()}})
        payload = self._request("POST", f"{self._url}:predict", body)
        outputs = payload.get("outputs") if isinstance(payload, dict) else None
        if not isinstance(outputs, dict):
            raise _CallError(False, f"expected {{'outputs': {{name: values}}}} (columnar format), found "
                                    f"{str(payload)[:200]}")
        try:
            decoded = {}
            for name, values in outputs.items():
                arr = np.asarray(values)
                if name in OUTPUT_DTYPES and OUTPUT_DTYPES[name].kind == "f" and arr.dtype.kind in "fi":
                    arr = arr.astype(np.float64).astype(OUTPUT_DTYPES[name])
                decoded[name] = arr
        except ValueError as e:
            raise _CallError(False, f"unreadable outputs: {e}") from e
        return decoded

    def status(self) -> VersionStatus:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        payload = self._request("GET", self._url)
        try:
            response = json_format.ParseDict(payload, get_model_status_pb2.GetModelStatusResponse(),
                                             ignore_unknown_fields=True)
        except json_format.ParseError as e:
            raise _CallError(False, f"unreadable status response: {e}") from e
        return _version_status(response, self._version)

    def input_names(self) -> tuple[str, ...]:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        payload = self._request("GET", f"{self._url}/metadata")
        try:
            signature_map = json_format.ParseDict(payload["metadata"]["signature_def"],
                                                  get_model_metadata_pb2.SignatureDefMap(),
                                                  ignore_unknown_fields=True)
        except (KeyError, TypeError, json_format.ParseError) as e:
            raise _CallError(False, f"unreadable metadata response: {e}") from e
        return _signature_contract(signature_map, self._signature)

    def close(self) -> None:
        self._session.close()


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__


def _safe_server(target: str, protocol: str) -> str:
    """The server address without credentials, query or fragment (for messages and logs)."""
    if protocol == "grpc":
        return target
    parts = urllib.parse.urlsplit(target)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return urllib.parse.urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""),
                                    parts.path.rstrip("/"), "", ""))


class TFServingPredictor:
    """The clay model on a TensorFlow Serving server, pinned to one version.

    ``target`` is ``host:port`` of the gRPC port (``--port``, 8500) for ``protocol="grpc"``, or the REST base
    URL (``http://host:8501``) for ``protocol="rest"``. ``retries`` is the number of extra attempts for a
    transient failure, waiting ``backoff_s * 2**attempt`` seconds (at most 30) in between; ``timeout_s`` limits
    each call. ``inputs`` may be given when known; otherwise the served signature is asked for them (and checked
    against the export contract). Call :meth:`check_ready` before a run.
    """

    def __init__(self, target: str, model_name: str, version: int, *, protocol: Literal["grpc", "rest"] = "grpc",
                 batch_size: int = DEFAULT_BATCH_SIZE, timeout_s: float = 30.0, retries: int = 4,
                 backoff_s: float = 0.5, inputs: tuple[str, ...] | None = None,
                 signature_name: str = SIGNATURE, channel_credentials: Any = None) -> None:
        if protocol not in ("grpc", "rest"):
            raise BadInputError(f"protocol must be 'grpc' or 'rest', found {protocol!r}")
        if not isinstance(target, str) or not target.strip():
            raise BadInputError(f"target must be host:port (gRPC) or http(s)://host:port (REST), found {target!r}")
        is_url = target.startswith(("http://", "https://"))
        if protocol == "rest" and not is_url:
            raise BadInputError(f"protocol 'rest' needs the REST base URL, e.g. http://host:8501, found {target!r}")
        if protocol == "grpc" and (is_url or "@" in target):
            raise BadInputError(f"protocol 'grpc' needs host:port of the gRPC port, e.g. localhost:8500, "
                                f"found {_safe_server(target, 'rest') if is_url else 'an address with user info'}")
        if is_url:
            try:
                urllib.parse.urlsplit(target).port  # noqa: B018 - raises on a malformed port
            except ValueError as e:
                raise BadInputError(f"the REST URL's port is malformed ({e}); expected http(s)://host:port") from e
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise BadInputError(f"model version must be an integer >= 1, found {version!r}")
        if not isinstance(model_name, str) or not model_name or "/" in model_name or ":" in model_name:
            raise BadInputError(f"model_name must be a non-empty name without '/' or ':', found {model_name!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise BadInputError(f"retries must be an integer >= 0, found {retries!r}")
        for name, value in (("timeout_s", timeout_s), ("backoff_s", backoff_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value < math.inf):
                raise BadInputError(f"{name} must be a finite number >= 0, found {value!r}")
        if timeout_s <= 0:
            raise BadInputError(f"timeout_s must be > 0, found {timeout_s!r}")
        self.batch_size = check_batch_size(batch_size)
        self.model_name, self.protocol, self.retries, self.backoff_s = model_name, protocol, retries, backoff_s
        self.server = _safe_server(target, protocol)
        self._version = version
        self._inputs = check_inputs(inputs) if inputs is not None else None
        if protocol == "grpc":
            self._transport: _GrpcTransport | _RestTransport = _GrpcTransport(
                target, model_name, version, signature_name, timeout_s, channel_credentials)
        else:
            self._transport = _RestTransport(target, model_name, version, signature_name, timeout_s)

    @property
    def where(self) -> str:
        """``model 'clay' version 3 on grpc server host:8500``: how messages name what failed."""
        return f"model {self.model_name!r} version {self._version} on {self.protocol} server {self.server}"

    @property
    def version(self) -> int:
        return self._version

    @property
    def inputs(self) -> tuple[str, ...]:
        if self._inputs is None:
            self._inputs = self._call("reading the signature (GetModelMetadata)", self._transport.input_names)
        return self._inputs

    def check_ready(self) -> VersionStatus:
        """Raise unless the pinned version is AVAILABLE on the server and serves the expected signature.

        START/LOADING (it may finish) and an unreachable server raise
        :class:`~soilclay.errors.TransientExternalError`; an unknown version, a failed or unloaded one, or a
        wrong signature raise :class:`~soilclay.errors.FinalExternalError`.
        """
        status = self._call("GetModelStatus", self._transport.status,
                            hint="; is the version pinned in models.config (soilclay.serving.config)?")
        if status.state != "AVAILABLE" or status.error_code != "OK":
            problem = f"{self.where} is {status.state} ({status.error_code}: {status.error_message or 'no message'})"
            if status.state in ("START", "LOADING") and status.error_code == "OK":
                raise TransientExternalError(f"{problem}, expected AVAILABLE; it is still loading, retry later")
            raise FinalExternalError(f"{problem}, expected AVAILABLE; see the server log and models.config")
        served = self._call("reading the signature (GetModelMetadata)", self._transport.input_names)
        if self._inputs is not None and self._inputs != served:
            raise FinalExternalError(f"{self.where} takes inputs {list(served)}, but this predictor was given "
                                     f"inputs={list(self._inputs)}")
        self._inputs = served
        log.info("%s is AVAILABLE with inputs %s", self.where, list(served))
        return status

    def predict(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch, n = check_arrays(arrays, self.inputs)
        result = _empty_outputs(n)
        slices = batch_slices(n, self.batch_size)
        log.debug("predicting %d rows in %d batches with %s", n, len(slices), self.where)
        for i, rows in enumerate(slices):
            part = {name: arr[rows] for name, arr in batch.items()}
            what = f"Predict (batch {i + 1}/{len(slices)}, rows {rows.start}..{rows.stop - 1})"
            raw = self._call(what, lambda part=part: self._transport.predict(part))
            try:
                checked = check_outputs(raw, rows.stop - rows.start)
            except ValueError as e:
                raise FinalExternalError(f"{self.where}: {what} returned unexpected outputs: {e}") from e
            for name in OUTPUTS:
                result[name][rows] = checked[name]
        return result

    def _call(self, what: str, fn: Callable[[], _T], hint: str = "") -> _T:
        """Run ``fn``; retry transient failures with back-off, raise soilclay errors naming the server."""
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                return fn()
            except _CallError as e:
                if not e.transient:
                    raise FinalExternalError(f"{self.where}: {what} refused: {e.detail}{hint}") from e
                if attempt + 1 == attempts:
                    raise TransientExternalError(
                        f"{self.where}: {what} failed {attempts} time(s), last with {e.detail}") from e
                delay = min(self.backoff_s * 2 ** attempt, MAX_BACKOFF_S)
                log.warning("%s: %s failed (%s); retry %d/%d in %.2f s", self.where, what, e.detail, attempt + 1,
                            self.retries, delay)
                _sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> TFServingPredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TFServingPredictor({self.where})"

