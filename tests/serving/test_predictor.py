"""Predictors: in process and through TF Serving (gRPC, REST) give identical results; pinning, readiness, retries."""

from __future__ import annotations

import logging
import socket

import grpc
import numpy as np
import pytest
import tensorflow as tf

from soilclay.contract import OUTPUTS
from soilclay.errors import BadInputError, FinalExternalError, TransientExternalError
from soilclay.model.export import load_serving
from soilclay.serving import predictor as pred
from soilclay.serving import tfserving
from soilclay.serving.predictor import InProcessPredictor, Predictor, TFServingPredictor
from tests.serving.conftest import MODEL_NAME, make_inputs

PROTOCOLS = ("grpc", "rest")


@pytest.fixture(scope="module")
def in_process(served):
    with InProcessPredictor(served.version_dir(1), 1, batch_size=4) as p:
        yield p


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Back-off delays, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(tfserving, "_sleep", recorded.append)
    return recorded


def _client(standin, protocol: str, version: int = 1, **kwargs) -> TFServingPredictor:
    target = standin.grpc_target if protocol == "grpc" else standin.rest_url
    return TFServingPredictor(target, MODEL_NAME, version, protocol=protocol, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- tensors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    np.array([[np.nan, np.inf, -0.0]], dtype=np.float32),
    np.array([True, False, True]),
    np.arange(6, dtype=np.int64).reshape(2, 3),
    np.zeros((0, 10), dtype=np.float32),
])
def test_tensor_protos_agree_with_tensorflow(array):
    np.testing.assert_array_equal(tf.make_ndarray(pred.to_tensor_proto(array)), array)
    np.testing.assert_array_equal(pred.from_tensor_proto(tf.make_tensor_proto(array)), array)
    assert pred.from_tensor_proto(pred.to_tensor_proto(array)).dtype == array.dtype


def test_tensor_protos_read_typed_fields_and_the_compact_form():
    proto = tf.make_tensor_proto(np.zeros(3, np.float32))
    proto.ClearField("tensor_content")
    proto.float_val.extend([1.5, 2.5])  # fewer values than elements: the last one repeats (TF's rule)
    np.testing.assert_array_equal(pred.from_tensor_proto(proto), np.array([1.5, 2.5, 2.5], np.float32))
    proto.float_val.extend([1.0, 2.0])
    with pytest.raises(ValueError, match="4 values for shape"):
        pred.from_tensor_proto(proto)
    with pytest.raises(BadInputError, match="cannot send dtype"):
        pred.to_tensor_proto(np.array(["a"]))


# --- in process -----------------------------------------------------------------------------------------------


def test_in_process_reads_the_signature_and_batches(served, in_process):
    assert isinstance(in_process, Predictor)
    assert in_process.inputs == ("optical", "sar", "coords") and in_process.version == 1
    x = make_inputs(10, seed=21, nan_rows=1)
    got = in_process.predict(x)
    assert {k: (v.dtype, v.shape) for k, v in got.items()} == {
        "clay": (np.float32, (10,)), "clay_lower": (np.float32, (10,)), "clay_upper": (np.float32, (10,)),
        "in_domain": (np.bool_, (10,))}
    serve = load_serving(served.version_dir(1))
    for rows in (slice(0, 4), slice(4, 8), slice(8, 10)):  # batch_size 4: three calls, the last one short
        direct = serve(**{k: tf.constant(v[rows]) for k, v in x.items()})
        for name in OUTPUTS:
            np.testing.assert_array_equal(got[name][rows], direct[name].numpy())
    whole = InProcessPredictor.from_base_path(served.base_path, 1).predict(x)  # one batch: same numbers
    for name in OUTPUTS:
        np.testing.assert_allclose(whole[name], got[name], rtol=1e-6)


def test_in_process_refuses_what_it_cannot_load(tmp_path):
    with pytest.raises(BadInputError, match="cannot load a SavedModel"):
        InProcessPredictor(tmp_path / "missing", 1)
    with pytest.raises(BadInputError, match="integer >= 1"):
        InProcessPredictor(tmp_path, 0)


def test_inputs_are_checked_before_anything_is_sent(standin, in_process):
    x = make_inputs(3, seed=22)
    with _client(standin, "grpc", inputs=("optical", "sar", "coords")) as client:
        for predictor in (in_process, client):
            with pytest.raises(BadInputError, match=r"missing \['sar'\], unexpected \[\]"):
                predictor.predict({k: v for k, v in x.items() if k != "sar"})
            with pytest.raises(BadInputError, match=r"unexpected \['ndvi'\]"):
                predictor.predict({**x, "ndvi": x["sar"]})
            with pytest.raises(BadInputError, match=r"'optical' must have shape \(n, 10\)"):
                predictor.predict({**x, "optical": x["optical"][:, :9]})
            with pytest.raises(BadInputError, match="same number of rows"):
                predictor.predict({**x, "coords": x["coords"][:2]})
            with pytest.raises(BadInputError, match="real numbers"):
                predictor.predict({**x, "sar": x["sar"].astype(str)})
            empty = predictor.predict({k: v[:0] for k, v in x.items()})
            assert all(v.shape == (0,) for v in empty.values()) and empty["in_domain"].dtype == np.bool_
    assert standin.count("Predict") == 0


# --- served == in process ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n", [1, 4, 10])
def test_served_predictions_are_identical_to_in_process(standin, in_process, protocol, n):
    x = make_inputs(n, seed=30 + n, nan_rows=min(n, 2) - 1)  # float64 inputs are cast to float32 by both
    x["coords"] = x["coords"].astype(np.float64)
    with _client(standin, protocol, batch_size=4) as client:
        assert isinstance(client, Predictor)
        assert client.inputs == in_process.inputs  # read from the served signature
        served = client.predict(x)
    local = in_process.predict(x)
    for name in OUTPUTS:
        assert served[name].dtype == local[name].dtype and served[name].shape == (n,)
        np.testing.assert_array_equal(served[name], local[name])  # exact, NaN == NaN
    assert standin.count("Predict", protocol) == -(-n // 4)  # one call per batch


# --- versions and readiness --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_version_that_is_not_loaded_is_a_final_error(standin, sleeps, protocol):
    x = make_inputs(2, seed=40)
    with _client(standin, protocol, version=2, inputs=("optical", "sar", "coords")) as client:
        with pytest.raises(FinalExternalError) as info:
            client.predict(x)
        message = str(info.value)
        server = standin.grpc_target if protocol == "grpc" else standin.rest_url
        assert message.startswith(f"model 'clay' version 2 on {protocol} server {server}: Predict (batch 1/1")
        assert "Servable not found for request: Specific(clay, 2)" in message
        with pytest.raises(FinalExternalError, match="Could not find version 2 of model clay.*models.config"):
            client.check_ready()
    assert standin.count("Predict") == 1 and sleeps == []  # no retries


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_readiness(standin, sleeps, protocol):
    with _client(standin, protocol) as client:
        status = client.check_ready()
        assert (status.version, status.state, status.error_code) == (1, "AVAILABLE", "OK")
        assert client.inputs == ("optical", "sar", "coords")
        standin.set_state(1, "LOADING")
        with pytest.raises(TransientExternalError, match="version 1 .* is LOADING .*still loading"):
            client.check_ready()
        standin.set_state(1, "END", "NOT_FOUND", "Could not load the SavedModel")
        with pytest.raises(FinalExternalError, match="is END \\(NOT_FOUND: Could not load the SavedModel\\)"):
            client.check_ready()
    with _client(standin, protocol, inputs=("optical", "coords")) as wrong:
        standin.reset()
        with pytest.raises(FinalExternalError, match=r"takes inputs \['optical', 'sar', 'coords'\]"):
            wrong.check_ready()


# --- retries ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_transient_errors_are_retried_with_backoff(standin, in_process, sleeps, protocol):
    x = make_inputs(6, seed=50)
    with _client(standin, protocol, batch_size=4, backoff_s=0.25) as client:
        client.check_ready()
        standin.fail_next(2, grpc.StatusCode.UNAVAILABLE, methods={"Predict"})
        got = client.predict(x)
    for name in OUTPUTS:
        np.testing.assert_array_equal(got[name], in_process.predict(x)[name])
    assert sleeps == [0.25, 0.5]
    assert standin.count("Predict") == 4  # batch 1: 2 failures + 1 success; batch 2: 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_too_many_transient_errors_end_as_transient_external_error(standin, sleeps, protocol, code):
    with _client(standin, protocol, retries=2, backoff_s=1.0, inputs=("optical", "sar", "coords")) as client:
        standin.fail_next(5, code, methods={"Predict"})
        with pytest.raises(TransientExternalError, match="Predict .* failed 3 time\\(s\\)") as info:
            client.predict(make_inputs(2, seed=51))
    assert "model 'clay' version 1" in str(info.value)
    assert sleeps == [1.0, 2.0] and standin.count("Predict") == 3


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_invalid_argument_is_final_at_once(standin, sleeps, protocol):
    x = make_inputs(2, seed=52)
    with _client(standin, protocol, inputs=("optical", "sar", "coords")) as client:
        standin.fail_next(1, grpc.StatusCode.INVALID_ARGUMENT, "bad input", methods={"Predict"})
        with pytest.raises(FinalExternalError, match="refused: .*bad input"):
            client.predict(x)
    # A real one: a client that believes the model takes no SAR; the server names what is missing.
    with _client(standin, protocol, inputs=("optical", "coords")) as wrong:
        with pytest.raises(FinalExternalError, match="sar"):
            wrong.predict({k: v for k, v in x.items() if k != "sar"})
    assert sleeps == [] and standin.count("Predict") == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unreachable_server_is_transient(sleeps, protocol):
    port = _free_port()
    target = f"127.0.0.1:{port}" if protocol == "grpc" else f"http://127.0.0.1:{port}"
    with TFServingPredictor(target, MODEL_NAME, 1, protocol=protocol, retries=1, timeout_s=5) as client:
        with pytest.raises(TransientExternalError, match=f"on {protocol} server .*127.0.0.1:{port}.* 2 time"):
            client.check_ready()
    assert len(sleeps) == 1


def test_credentials_in_the_rest_url_never_reach_messages_or_logs(sleeps, caplog):
    port = _free_port()
    with TFServingPredictor(f"http://svc:s3cret@127.0.0.1:{port}/", MODEL_NAME, 1, protocol="rest",
                            retries=1) as client:
        assert client.server == f"http://127.0.0.1:{port}"
        with caplog.at_level(logging.DEBUG), pytest.raises(TransientExternalError) as info:
            client.check_ready()
    assert "s3cret" not in str(info.value) and "s3cret" not in caplog.text and "s3cret" not in repr(client)
    assert "retry 1/1" in caplog.text


@pytest.mark.parametrize(("code", "details", "transient"), [
    ("UNAVAILABLE", "", True), ("DEADLINE_EXCEEDED", "", True), ("RESOURCE_EXHAUSTED", "queue full", True),
    ("RESOURCE_EXHAUSTED", "Received message larger than max (9 vs. 4)", False), ("INTERNAL", "", True),
    ("INVALID_ARGUMENT", "", False), ("NOT_FOUND", "", False), ("FAILED_PRECONDITION", "", False),
    ("PERMISSION_DENIED", "", False), ("UNIMPLEMENTED", "", False),
])
def test_grpc_error_classes(code, details, transient):
    assert pred.grpc_error_is_transient(code, details) is transient


@pytest.mark.parametrize(("status", "transient"), [
    (500, True), (502, True), (503, True), (504, True), (429, True), (408, True),
    (400, False), (401, False), (403, False), (404, False), (501, False),
])
def test_http_error_classes(status, transient):
    assert pred.http_error_is_transient(status) is transient


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("localhost:8500", "clay", 1), {"protocol": "http"}, "protocol must be"),
    (("localhost:8501", "clay", 1), {"protocol": "rest"}, "REST base URL"),
    (("http://localhost:8500", "clay", 1), {}, "host:port of the gRPC port"),
    (("localhost:8500", "clay", 0), {}, "integer >= 1"),
    (("localhost:8500", "clay/1", 1), {}, "model_name"),
    (("localhost:8500", "clay", 1), {"batch_size": 0}, "batch_size"),
    (("localhost:8500", "clay", 1), {"retries": -1}, "retries"),
    (("localhost:8500", "clay", 1), {"timeout_s": 0}, "timeout_s"),
    (("localhost:8500", "clay", 1), {"inputs": ("sar", "optical")}, "subset of"),
])
def test_tf_serving_predictor_refuses_bad_settings(args, kwargs, match):
    with pytest.raises(BadInputError, match=match):
        TFServingPredictor(*args, **kwargs)
