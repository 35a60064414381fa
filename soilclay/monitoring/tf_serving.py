"""The metrics real TensorFlow Serving publishes on its REST port when started with
``--monitoring_config_file`` (``prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }``).

Names are TensorFlow's monitoring names with every character outside ``[a-zA-Z0-9_]`` turned into ``:``
(``/tensorflow/serving/request_count`` -> ``:tensorflow:serving:request_count``), see
``tensorflow_serving/util/prometheus_exporter.cc`` (``GetPrometheusMetricName``). The server writes only
``# TYPE`` lines (no ``# HELP``), counters without a ``_total`` suffix, histograms as ``_bucket{le=...}``,
``_sum`` and ``_count``; latencies are in MICROSECONDS. Histogram buckets of the latency samplers are
``Buckets::Exponential(10, 1.8, 33)``: 10, 18, 32.4, ... (33 limits) then ``+Inf``.

Label values: ``status`` of ``request_count`` is the canonical error code name (``OK``,
``INVALID_ARGUMENT``, ``NOT_FOUND``, ...); ``API`` is the REST method (``predict``, ``classify``,
``regress``) or the gRPC one (``Predict``, ...); ``entrypoint`` is ``REST`` or ``GRPC``; over REST the
request latency is only observed for successful requests. ``status`` of ``load_attempt_count`` is
``success`` or ``fail``; ``stage`` of ``load_latency_by_stage`` is ``restore_graph`` or ``init_graph``.

Sources (tensorflow/serving and tensorflow/tensorflow on GitHub) are cited per metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TfKind = Literal["counter", "gauge", "histogram"]

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath


@dataclass(frozen=True)
class TfServingMetric:
    name: str
    kind: TfKind
    labels: tuple[str, ...]
    help: str
    standin: bool = False  # True when tests/serving/standin.py emits it too


# Scale of 10, power of 1.8, 33 buckets (~20 minutes), in microseconds.
LATENCY_BUCKETS_US: tuple[float, ...] = tuple(10 * 1.8**i for i in range(33))

TF_SERVING_METRICS: tuple[TfServingMetric, ...] = (
    # tensorflow_serving/servables/tensorflow/util.cc (model_request_status_count_total)
    TfServingMetric(":tensorflow:serving:request_count", "counter", ("model_name", "status"),
                    "The total number of requests.", standin=True),
    # tensorflow_serving/servables/tensorflow/util.cc (request_latency; recorded in model_servers/http_server.cc)
    TfServingMetric(":tensorflow:serving:request_latency", "histogram", ("model_name", "API", "entrypoint"),
                    "Distribution of wall time (in microseconds) for Tensorflow Serving request.", standin=True),
    # tensorflow_serving/servables/tensorflow/util.cc (runtime_latency; recorded in .../tensorflow/predict_util.cc)
    TfServingMetric(":tensorflow:serving:runtime_latency", "histogram", ("model_name", "API", "runtime"),
                    "Distribution of wall time (in microseconds) for Tensorflow runtime.", standin=True),
    # tensorflow_serving/servables/tensorflow/util.cc (example_counts; classify/regress with tf.Examples)
    TfServingMetric(":tensorflow:serving:request_example_counts", "histogram", ("model",),
                    "The number of tensorflow.Examples per request."),
    # tensorflow_serving/servables/tensorflow/util.cc (example_count_total)
    TfServingMetric(":tensorflow:serving:request_example_count_total", "counter", ("model",),
                    "The total number of tensorflow.Examples."),
    # tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc (model_warm_up_latency)
    TfServingMetric(":tensorflow:serving:model_warmup_latency", "histogram", ("model_path", "status"),
                    "Distribution of wall time (in microseconds) for warming up the model."),
    # tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc (model_warmup_records_read)
    TfServingMetric(":tensorflow:serving:model_warmup_records_read", "counter", ("model_path", "status"),
                    "Total number of warmup records read during model warmup."),
    # tensorflow_serving/core/request_logger.cc (request_log_count; only with request logging configured)
    TfServingMetric(":tensorflow:serving:request_log_count", "counter", ("model_name", "status_code"),
                    "The total number of requests logged from the model server."),
    # tensorflow/cc/saved_model/loader.cc (load_attempt_count; status "success"/"fail")
    TfServingMetric(":tensorflow:cc:saved_model:load_attempt_count", "counter", ("model_path", "status"),
                    "The number of times a SavedModel was successfully loaded.", standin=True),
    # tensorflow/cc/saved_model/loader.cc (load_latency)
    TfServingMetric(":tensorflow:cc:saved_model:load_latency", "counter", ("model_path",),
                    "Latency in microseconds for SavedModels that were successfully loaded.", standin=True),
    # tensorflow/cc/saved_model/loader.cc (load_latency_by_stage; stage "restore_graph"/"init_graph")
    TfServingMetric(":tensorflow:cc:saved_model:load_latency_by_stage", "histogram", ("model_path", "stage"),
                    "Distribution of wall time spent (in microseconds) in each stage when loading the model.",
                    standin=True),
)

TF_SERVING_BY_NAME = {m.name: m for m in TF_SERVING_METRICS}
