"""The stand-in answers like TensorFlow Serving: raw gRPC stubs and raw HTTP against it, no soilclay client."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from soilclay.contract import OUTPUTS
from soilclay.model.export import load_serving
from tests.serving.conftest import make_inputs
from tests.serving.standin import StandInServing, json_to_array, tf_decimal


@pytest.fixture
def stubs(standin):
    channel = grpc.insecure_channel(standin.grpc_target)
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


@pytest.fixture(scope="module")
def direct(served):
    """The signature called directly, as the reference for what the server must return."""
    serve = load_serving(served.version_dir(1))

    def call(arrays):
        return {k: v.numpy() for k, v in serve(**{k: tf.constant(a) for k, a in arrays.items()}).items()}

    return call


def _request(arrays, *, version=None, label=None, name="clay", output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for key, arr in arrays.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(arr))
    request.output_filter.extend(output_filter)
    return request


def _abort(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_grpc_predict_answers_typed_fields_and_names_the_version(stubs, direct):
    prediction, _ = stubs
    x = make_inputs(6, seed=3, nan_rows=1)
    response = prediction.Predict(_request(x, version=1), timeout=10)
    assert (response.model_spec.name, response.model_spec.version.value) == ("clay", 1)
    assert response.model_spec.signature_name == "serving_default"
    assert set(response.outputs) == set(OUTPUTS)
    clay = response.outputs["clay"]
    assert clay.dtype == tf.float32.as_datatype_enum and not clay.tensor_content and len(clay.float_val) == 6
    assert len(response.outputs["in_domain"].bool_val) == 6
    expected = direct(x)
    for name in OUTPUTS:
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs[name]), expected[name])


def test_grpc_versions_labels_and_latest(stubs):
    prediction, _ = stubs
    x = make_inputs(2, seed=4)
    assert prediction.Predict(_request(x, label="champion"), timeout=10).model_spec.version.value == 1
    assert prediction.Predict(_request(x), timeout=10).model_spec.version.value == 1  # latest loaded
    error = _abort(lambda: prediction.Predict(_request(x, version=2), timeout=10))  # on disk, not pinned
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Specific(clay, 2)"
    error = _abort(lambda: prediction.Predict(_request(x, name="silt"), timeout=10))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Latest(silt)"
    error = _abort(lambda: prediction.Predict(_request(x, label="canary"), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Unrecognized servable version label: canary" in error.details()


def test_grpc_refuses_inputs_that_do_not_match_the_signature(stubs):
    prediction, _ = stubs
    x = make_inputs(3, seed=5)
    cases = [
        ({k: v for k, v in x.items() if k != "sar"}, "Send extra: {}. Missing but required: {sar}."),
        ({**x, "ndvi": x["coords"]}, "Send extra: {ndvi}. Missing but required: {}."),
        ({**x, "sar": x["sar"].astype("float64")}, "to be float but double is provided"),
        ({**x, "optical": x["optical"][:, :9]}, "input optical: shape [3, 9] is incompatible"),
        ({**x, "coords": x["coords"][:2]}, "Dimension 0"),
    ]
    for arrays, message in cases:
        error = _abort(lambda arrays=arrays: prediction.Predict(_request(arrays, version=1), timeout=10))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, message
        assert message in error.details()
    error = _abort(lambda: prediction.Predict(_request(x, version=1, output_filter=["silt"]), timeout=10))
    assert "output tensor alias not found in signature: silt" in error.details()
    only = prediction.Predict(_request(x, version=1, output_filter=["clay"]), timeout=10)
    assert list(only.outputs) == ["clay"]


def test_grpc_model_status_and_metadata(stubs):
    prediction, models = stubs
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "clay"
    (status,) = models.GetModelStatus(request, timeout=10).model_version_status
    assert (status.version, status.state, status.status.error_code, status.status.error_message) == (1, 30, 0, "")
    request.model_spec.version.value = 2
    error = _abort(lambda: models.GetModelStatus(request, timeout=10))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "Could not find version 2 of model clay")
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "silt"
    error = _abort(lambda: models.GetModelStatus(request, timeout=10))
    assert error.details() == "Could not find any versions of model silt"

    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "clay"
    response = prediction.GetModelMetadata(metadata, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    sig = signatures.signature_def["serving_default"]
    assert sorted(sig.inputs) == ["coords", "optical", "sar"] and sorted(sig.outputs) == sorted(OUTPUTS)
    assert [d.size for d in sig.inputs["optical"].tensor_shape.dim] == [-1, 10]


def test_rest_row_format_gives_one_object_per_row(standin, direct):
    x = make_inputs(3, seed=6, nan_rows=1)
    instances = [{k: v[i].tolist() for k, v in x.items()} for i in range(3)]
    r = requests.post(f"{standin.rest_url}/v1/models/clay/versions/1:predict",
                      data=json.dumps({"signature_name": "serving_default", "instances": instances}), timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    predictions = r.json()["predictions"]
    assert len(predictions) == 3 and all(set(p) == set(OUTPUTS) for p in predictions)
    assert "NaN" in r.text and predictions[0]["in_domain"] is False  # NaN SAR: NaN clay, out of the domain
    expected = direct(x)
    for name in OUTPUTS:
        got = np.array([p[name] for p in predictions], dtype=expected[name].dtype)
        np.testing.assert_array_equal(got, expected[name])


def test_rest_columnar_format_gives_one_list_per_output(standin, direct):
    x = make_inputs(5, seed=7)
    body = {"inputs": {k: v.tolist() for k, v in x.items()}}
    r = requests.post(f"{standin.rest_url}/v1/models/clay/labels/champion:predict", json=body, timeout=10)
    assert r.status_code == 200
    outputs = r.json()["outputs"]
    assert set(outputs) == set(OUTPUTS)
    expected = direct(x)
    for name in OUTPUTS:
        np.testing.assert_array_equal(np.array(outputs[name], dtype=expected[name].dtype), expected[name])
    # Extra names are ignored in the columnar format, as TF Serving's json_tensor.cc does.
    extra = requests.post(f"{standin.rest_url}/v1/models/clay:predict",
                          json={"inputs": {**body["inputs"], "ndvi": [1.0]}}, timeout=10)
    assert extra.status_code == 200


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/v1/models/silt:predict", {"inputs": {}}, 404, "Servable not found for request: Latest(silt)"),
    ("/v1/models/clay/versions/2:predict", {"inputs": {}}, 404, "Servable not found for request: Specific(clay, 2)"),
    ("/v1/models/clay/labels/canary:predict", {"inputs": {}}, 400, "Unrecognized servable version label: canary"),
    ("/v1/models/clay:predict", {"inputs": {"optical": [[1.0] * 10]}}, 400, "Missing named input: coords"),
    ("/v1/models/clay:predict", {"inputs": {}, "instances": []}, 400, "expecting only one of 'inputs' or 'instances'"),
    ("/v1/models/clay:predict", {"instances": []}, 400, "No values in 'instances' array"),
    ("/v1/models/clay:predict", {"instances": [{"optical": [1.0] * 10}]}, 400,
     "must only have keys: coords,optical,sar"),
    ("/v1/models/clay:predict", {"instances": [[1.0] * 10]}, 400, "instances is a plain list"),
    ("/v1/models/clay:predict", {"signature_name": "regress", "inputs": {}}, 400,
     'Serving signature name: "regress" not found in signature def'),
    ("/v1/models/clay:predict", {"predict": 1}, 400, "Missing 'inputs' or 'instances' key"),
    ("/v1/models/clay/versions/one:predict", {}, 400, "Malformed request: POST /v1/models/clay/versions/one:predict"),
])
def test_rest_errors_are_json_with_tf_serving_statuses(standin, path, body, status, message):
    r = requests.post(standin.rest_url + path, json=body, timeout=10)
    assert r.status_code == status
    assert message in r.json()["error"]


def test_rest_value_errors(standin):
    x = make_inputs(2, seed=8)
    ragged = {**{k: v.tolist() for k, v in x.items()}, "sar": [[1.0, 2.0, 3.0], [1.0, 2.0]]}
    r = requests.post(f"{standin.rest_url}/v1/models/clay:predict", json={"inputs": ragged}, timeout=10)
    assert r.status_code == 400 and "Encountered list at unexpected size: 2 at level: 1" in r.json()["error"]
    typed = {**{k: v.tolist() for k, v in x.items()}, "sar": [[True, 2.0, 3.0], [1.0, 2.0, 3.0]]}
    r = requests.post(f"{standin.rest_url}/v1/models/clay:predict", json={"inputs": typed}, timeout=10)
    assert r.status_code == 400 and "Type: True is not of expected type: float" in r.json()["error"]
    r = requests.post(f"{standin.rest_url}/v1/models/clay:predict", data="{", timeout=10)
    assert r.status_code == 400 and r.json()["error"].startswith("JSON Parse error")
    assert requests.get(f"{standin.rest_url}/metrics", timeout=10).status_code == 404  # outside /v1/


def test_rest_status_and_metadata(standin):
    r = requests.get(f"{standin.rest_url}/v1/models/clay", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert requests.get(f"{standin.rest_url}/v1/models/clay/labels/champion", timeout=10).json() == r.json()
    r = requests.get(f"{standin.rest_url}/v1/models/clay/versions/2", timeout=10)
    assert (r.status_code, r.json()) == (404, {"error": "Could not find version 2 of model clay"})
    meta = requests.get(f"{standin.rest_url}/v1/models/clay/versions/1/metadata", timeout=10).json()
    assert meta["model_spec"] == {"name": "clay", "version": "1", "signature_name": ""}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["sar"]["dtype"] == "DT_FLOAT"
    assert sig["outputs"]["in_domain"]["dtype"] == "DT_BOOL"


def test_injected_failures_and_faked_states(standin, stubs):
    prediction, _ = stubs
    x = make_inputs(2, seed=9)
    standin.fail_next(2, grpc.StatusCode.UNAVAILABLE, methods={"Predict"})
    assert _abort(lambda: prediction.Predict(_request(x), timeout=10)).code() == grpc.StatusCode.UNAVAILABLE
    r = requests.post(f"{standin.rest_url}/v1/models/clay:predict", json={"inputs": {}}, timeout=10)
    assert (r.status_code, r.json()) == (503, {"error": "injected failure"})
    assert prediction.Predict(_request(x), timeout=10).model_spec.version.value == 1
    assert standin.count("Predict") == 3 and standin.count("Predict", "rest") == 1

    standin.fail_next(1, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert requests.get(f"{standin.rest_url}/v1/models/clay", timeout=10).status_code == 429

    standin.set_state(1, "LOADING")
    status = requests.get(f"{standin.rest_url}/v1/models/clay/versions/1", timeout=10).json()
    assert status["model_version_status"][0]["state"] == "LOADING"
    assert _abort(lambda: prediction.Predict(_request(x, version=1), timeout=10)).code() == grpc.StatusCode.NOT_FOUND


def test_models_config_decides_what_is_loaded(served, tmp_path):
    from soilclay.serving.config import write_models_config

    config = write_models_config(tmp_path / "models.config", model_name="clay", base_path=str(served.base_path),
                                 version=2, also_load=[1, 7])  # 7 is not on disk: never appears, as in TF Serving
    with StandInServing(models_config=config) as server:
        status = requests.get(f"{server.rest_url}/v1/models/clay", timeout=10).json()
        assert [s["version"] for s in status["model_version_status"]] == ["2", "1"]
        assert server.labels == {"champion": 2}
    with StandInServing(served.base_path, model_name="clay") as server:  # no config: the highest version
        assert [s["version"] for s in requests.get(f"{server.rest_url}/v1/models/clay", timeout=10)
                .json()["model_version_status"]] == ["2"]


def test_json_helpers_follow_tf_serving():
    assert tf_decimal(np.float32(0.1)) == "0.1"
    assert tf_decimal(np.float32(100.0)) == "100.0"
    assert tf_decimal(np.float32(1e-5)) == "1e-05"
    assert np.float32(float(tf_decimal(np.float32(35.708603)))) == np.float32(35.708603)
    assert tf_decimal(np.float32("nan")) == "NaN" and tf_decimal(np.float32("-inf")) == "-Infinity"
    assert json_to_array([[1, 2.5], [3, 4]], tf.float32.as_datatype_enum).dtype == np.float32
