"""Transports to TensorFlow Serving for one pinned model version: gRPC (``PredictionService``, ``ModelService``)
and REST (``/v1/models/{name}/versions/{v}``). They raise :class:`CallError`, already classified as transient or
final; :class:`~soilclay.serving.tfserving.TFServingPredictor` decides about retries."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from soilclay.contract import OUTPUT_DTYPES, OUTPUTS
from soilclay.serving.base import check_signature_outputs, signature_inputs
from soilclay.serving.wire import from_tensor_proto, grpc_error_is_transient, http_error_is_transient, to_tensor_proto

MAX_GRPC_MESSAGE = 64 * 1024 * 1024
_T = TypeVar("_T")


@dataclass(frozen=True)
class VersionStatus:
    """One model version's state as TF Serving reports it (``GetModelStatus``)."""

    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str  # OK when healthy
    error_message: str


class CallError(Exception):
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
    raise CallError(False, f"the status response has no entry for version {version}; found versions {found}")


def _signature_contract(signature_def_map: Any, signature_name: str) -> tuple[str, ...]:
    """Check a ``SignatureDefMap`` against the export contract; return the input names."""
    from tensorflow.core.framework import types_pb2

    if signature_name not in signature_def_map.signature_def:
        raise CallError(False, f"the model has no signature {signature_name!r}; found "
                               f"{sorted(signature_def_map.signature_def)}")
    sig = signature_def_map.signature_def[signature_name]

    def spec(info: Any) -> tuple[str, list[int | None]]:
        dtype = types_pb2.DataType.Name(info.dtype).removeprefix("DT_").lower()
        dims = [None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
        return {"float": "float32", "double": "float64"}.get(dtype, dtype), dims

    try:
        inputs = signature_inputs({name: spec(info) for name, info in sig.inputs.items()})
        check_signature_outputs({name: spec(info)[0] for name, info in sig.outputs.items()})
    except ValueError as e:
        raise CallError(False, f"the served model is not a soilclay clay model: {e}") from e
    return inputs


class GrpcTransport:
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
            raise CallError(grpc_error_is_transient(name, details), f"{name}: {details}") from e

    def predict(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        for name, arr in batch.items():
            request.inputs[name].CopyFrom(to_tensor_proto(arr))
        request.output_filter.extend(OUTPUTS)
        response = self._invoke(self._prediction.Predict, request)
        if response.model_spec.HasField("version") and response.model_spec.version.value != self._version:
            raise CallError(False, f"version {response.model_spec.version.value} answered instead of the pinned "
                                   f"version {self._version}")
        try:
            return {name: from_tensor_proto(tensor) for name, tensor in response.outputs.items()}
        except ValueError as e:
            raise CallError(False, f"unreadable output tensor: {e}") from e

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
            raise CallError(False, "the metadata response holds no SignatureDefMap under 'signature_def'")
        return _signature_contract(signature_map, self._signature)

    def close(self) -> None:
        self._channel.close()


class RestTransport:
    """TF Serving's REST API for one model version: ``/v1/models/{name}/versions/{v}[:predict|/metadata]``."""

    def __init__(self, rest_url: str, model_name: str, version: int, signature_name: str, timeout_s: float) -> None:
        import requests

        parts = urllib.parse.urlsplit(rest_url)
        self._session = requests.Session()
        if parts.username is not None:  # credentials go in a header, so no URL we build or log carries them
            self._session.auth = (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        base = safe_server(rest_url, "rest")
        self._url = f"{base}/v1/models/{urllib.parse.quote(model_name, safe='')}/versions/{version}"
        self._version, self._signature, self._timeout = version, signature_name, timeout_s

    def _request(self, method: str, url: str, body: str | None = None) -> Any:
        import requests

        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = self._session.request(method, url, data=body, headers=headers, timeout=self._timeout)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise CallError(True, f"{type(e).__name__}: cannot reach the server ({_first_line(e)})") from e
        except requests.RequestException as e:
            raise CallError(False, f"{type(e).__name__}: {_first_line(e)}") from e
        if response.status_code != 200:
            try:
                message = str(response.json().get("error", ""))
            except (ValueError, AttributeError):
                message = response.text[:300]
            raise CallError(http_error_is_transient(response.status_code),
                            f"HTTP {response.status_code}: {message}")
        try:
            return response.json()
        except ValueError as e:
            raise CallError(False, f"the response is not JSON: {response.text[:200]!r}") from e

    def predict(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        body = json.dumps({"signature_name": self._signature,
                           "inputs": {name: arr.tolist() for name, arr in batch.items()}})
        payload = self._request("POST", f"{self._url}:predict", body)
        outputs = payload.get("outputs") if isinstance(payload, dict) else None
        if not isinstance(outputs, dict):
            raise CallError(False, f"expected {{'outputs': {{name: values}}}} (columnar format), found "
                                   f"{str(payload)[:200]}")
        try:
            decoded = {}
            for name, values in outputs.items():
                arr = np.asarray(values)
                if name in OUTPUT_DTYPES and OUTPUT_DTYPES[name].kind == "f" and arr.dtype.kind in "fi":
                    arr = arr.astype(np.float64).astype(OUTPUT_DTYPES[name])
                decoded[name] = arr
        except ValueError as e:
            raise CallError(False, f"unreadable outputs: {e}") from e
        return decoded

    def status(self) -> VersionStatus:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        payload = self._request("GET", self._url)
        try:
            response = json_format.ParseDict(payload, get_model_status_pb2.GetModelStatusResponse(),
                                             ignore_unknown_fields=True)
        except json_format.ParseError as e:
            raise CallError(False, f"unreadable status response: {e}") from e
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
            raise CallError(False, f"unreadable metadata response: {e}") from e
        return _signature_contract(signature_map, self._signature)

    def close(self) -> None:
        self._session.close()


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__


def safe_server(target: str, protocol: str) -> str:
    """The server address without credentials, query or fragment (for messages and logs)."""
    if protocol == "grpc":
        return target
    parts = urllib.parse.urlsplit(target)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return urllib.parse.urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""),
                                    parts.path.rstrip("/"), "", ""))
