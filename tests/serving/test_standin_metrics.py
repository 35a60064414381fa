"""The stand-in's Prometheus page: TF Serving's names, types and labels (soilclay.monitoring.tf_serving),
counts by status and latency histograms after real REST and gRPC calls, model load attempts."""

from __future__ import annotations

import re

import grpc
import pytest
import requests
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from soilclay.monitoring.tf_serving import LATENCY_BUCKETS_US, PROMETHEUS_PATH, TF_SERVING_BY_NAME, TF_SERVING_METRICS
from soilclay.serving.config import write_monitoring_config
from tests.serving.conftest import make_inputs
from tests.serving.standin import StandInServing


@pytest.fixture(scope="module")
def monitored(served, tmp_path_factory):
    """A stand-in of its own (fresh counters) started with a monitoring.config as soilclay writes it."""
    config = write_monitoring_config(tmp_path_factory.mktemp("monitoring") / "monitoring.config")
    with StandInServing(models_config=served.models_config, model_name="clay", monitoring_config=config) as server:
        yield server


def _scrape(server: StandInServing) -> dict[str, object]:
    r = requests.get(server.metrics_url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def _rows(body: dict) -> list[dict]:
    return [{k: v[i].tolist() for k, v in body.items()} for i in range(len(next(iter(body.values()))))]


def _value(family, suffix: str = "", **labels) -> float:
    # prometheus_client's parser names a counter's samples NAME_total; the page itself has no suffix
    names = {family.name + suffix} | ({family.name + "_total"} if family.type == "counter" else set())
    found = [s.value for s in family.samples if s.name in names
             and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (family.name + suffix, labels, family.samples)
    return found[0]


def test_the_list_names_what_real_tf_serving_writes():
    names = [m.name for m in TF_SERVING_METRICS]
    assert len(names) == len(set(names))
    for m in TF_SERVING_METRICS:
        assert re.fullmatch(r":tensorflow:[a-z_]+(:[a-z_]+)+", m.name), m.name  # '/' turned into ':'
        assert m.kind in ("counter", "gauge", "histogram") and m.help
    assert TF_SERVING_BY_NAME[":tensorflow:serving:request_count"].labels == ("model_name", "status")
    assert TF_SERVING_BY_NAME[":tensorflow:serving:request_latency"].labels == ("model_name", "API", "entrypoint")
    assert TF_SERVING_BY_NAME[":tensorflow:cc:saved_model:load_attempt_count"].labels == ("model_path", "status")
    assert PROMETHEUS_PATH == "/monitoring/prometheus/metrics"
    assert len(LATENCY_BUCKETS_US) == 33 and LATENCY_BUCKETS_US[:2] == (10, 18.0)


def test_no_metrics_page_without_a_monitoring_config(standin):
    assert standin.metrics_url is None
    assert requests.get(f"{standin.rest_url}{PROMETHEUS_PATH}", timeout=10).status_code == 404


def test_requests_latencies_and_loads_are_counted_as_tf_serving_does(monitored, served):
    before = _scrape(monitored)
    ok_before = (_value(before[":tensorflow:serving:request_count"], model_name="clay", status="OK")
                 if any(s.labels.get("status") == "OK" for s in before[":tensorflow:serving:request_count"].samples)
                 else 0)
    body = {"instances": _rows(make_inputs(3, seed=5))}
    for _ in range(3):
        assert requests.post(f"{monitored.rest_url}/v1/models/clay:predict", json=body, timeout=30).status_code == 200
    assert requests.post(f"{monitored.rest_url}/v1/models/clay/versions/9:predict", json=body,
                         timeout=30).status_code == 404
    assert requests.post(f"{monitored.rest_url}/v1/models/clay:predict", json={"inputs": {}},
                         timeout=30).status_code == 400
    channel = grpc.insecure_channel(monitored.grpc_target)
    try:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "clay"
        for key, arr in make_inputs(2, seed=6).items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(arr))
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    finally:
        channel.close()

    families = _scrape(monitored)
    # every family on the page is one of the list, with its type; and what the stand-in emits is all there
    for name, family in families.items():
        assert name in TF_SERVING_BY_NAME, name
        assert family.type == TF_SERVING_BY_NAME[name].kind, name
    assert {m.name for m in TF_SERVING_METRICS if m.standin} <= set(families)
    for name, family in families.items():
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(TF_SERVING_BY_NAME[name].labels), (name, sample)

    count = families[":tensorflow:serving:request_count"]
    assert _value(count, model_name="clay", status="OK") == ok_before + 4  # 3 REST + 1 gRPC
    assert _value(count, model_name="clay", status="NOT_FOUND") == 1
    assert _value(count, model_name="clay", status="INVALID_ARGUMENT") == 1

    latency = families[":tensorflow:serving:request_latency"]
    assert _value(latency, "_count", model_name="clay", API="predict", entrypoint="REST") == 3  # failures not timed
    assert _value(latency, "_count", model_name="clay", API="Predict", entrypoint="GRPC") == 1
    assert _value(latency, "_sum", model_name="clay", API="predict", entrypoint="REST") > 0
    buckets = [s for s in latency.samples if s.name.endswith("_bucket") and s.labels["entrypoint"] == "REST"
               and s.labels["API"] == "predict"]
    assert len(buckets) == 34 and buckets[0].labels["le"] == "10" and buckets[-1].labels["le"] == "+Inf"
    assert [b.value for b in buckets] == sorted(b.value for b in buckets) and buckets[-1].value == 3

    runtime = families[":tensorflow:serving:runtime_latency"]
    assert _value(runtime, "_count", model_name="clay", API="Predict", runtime="TF1") >= 4

    loads = families[":tensorflow:cc:saved_model:load_attempt_count"]
    assert _value(loads, model_path=str(served.version_dir(1)), status="success") == 1
    assert not any(s.labels["model_path"].endswith("/2") for s in loads.samples)  # on disk, not in models.config
    stages = families[":tensorflow:cc:saved_model:load_latency_by_stage"]
    assert {s.labels["stage"] for s in stages.samples} == {"restore_graph", "init_graph"}
    assert _value(families[":tensorflow:cc:saved_model:load_latency"], model_path=str(served.version_dir(1))) > 0


def test_a_model_that_fails_to_load_counts_a_failed_attempt(served, tmp_path):
    broken = tmp_path / "models"
    (broken / "3").mkdir(parents=True)
    (broken / "3" / "saved_model.pb").write_bytes(b"not a saved model")
    config = write_monitoring_config(tmp_path / "monitoring.config", metrics_path="/custom/metrics")
    with StandInServing(broken, versions=[3], monitoring_config=config) as server:
        assert server.metrics_url.endswith("/custom/metrics")
        families = _scrape(server)
    loads = families[":tensorflow:cc:saved_model:load_attempt_count"]
    assert _value(loads, model_path=str(broken / "3"), status="fail") == 1
    assert not [s for s in families[":tensorflow:cc:saved_model:load_latency_by_stage"].samples]
