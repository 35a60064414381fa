"""TFServingPredictor: TensorFlow Serving over gRPC or REST, pinned to one version, with retries."""

from __future__ import annotations

import logging
import math
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np

from soilclay.contract import SIGNATURE, check_inputs, check_model_version
from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError
from soilclay.serving.base import DEFAULT_BATCH_SIZE, BatchedPredictor, check_batch_size, check_outputs
from soilclay.serving.transports import CallError, GrpcTransport, RestTransport, VersionStatus, safe_server

log = logging.getLogger(__name__)
_sleep: Callable[[float], None] = time.sleep  # module attribute so tests can record the back-off
MAX_BACKOFF_S = 30.0
_T = TypeVar("_T")


class TFServingPredictor(BatchedPredictor):
    """The clay model on a TensorFlow Serving server, pinned to one version.

    ``target`` is ``host:port`` of the gRPC port (``--port``, 8500) for ``protocol="grpc"``, or the REST base
    URL (``http://host:8501``) for ``protocol="rest"``. ``retries`` is the number of extra attempts for a
    transient failure, waiting ``backoff_s * 2**attempt`` seconds (at most 30) in between; ``timeout_s`` limits
    each call. ``inputs`` may be given when known; otherwise the served signature is asked for them (and checked
    against :mod:`soilclay.contract`). Call :meth:`check_ready` before a run.
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
                                f"found {safe_server(target, 'rest') if is_url else 'an address with user info'}")
        if is_url:
            try:
                urllib.parse.urlsplit(target).port  # noqa: B018 - raises on a malformed port
            except ValueError as e:
                raise BadInputError(f"the REST URL's port is malformed ({e}); expected http(s)://host:port") from e
        version = check_model_version(version)
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
        self.server = safe_server(target, protocol)
        self._version = version
        self._inputs = check_inputs(inputs) if inputs is not None else None
        if protocol == "grpc":
            self._transport: GrpcTransport | RestTransport = GrpcTransport(
                target, model_name, version, signature_name, timeout_s, channel_credentials)
        else:
            self._transport = RestTransport(target, model_name, version, signature_name, timeout_s)

    @property
    def where(self) -> str:
        """``model 'clay' version 3 on grpc server host:8500``: how messages name what failed."""
        return f"model {self.model_name!r} version {self._version} on {self.protocol} server {self.server}"

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

    def _predict_batch(self, batch: dict[str, np.ndarray], rows: int, what: str) -> dict[str, np.ndarray]:
        raw = self._call(what, lambda: self._transport.predict(batch))
        try:
            return check_outputs(raw, rows)
        except ValueError as e:
            raise FinalExternalError(f"{self.where}: {what} returned unexpected outputs: {e}") from e

    def _call(self, what: str, fn: Callable[[], _T], hint: str = "") -> _T:
        """Run ``fn``; retry transient failures with back-off, raise soilclay errors naming the server."""
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                return fn()
            except CallError as e:
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
