"""Serving the clay model: predictors and TensorFlow Serving's configuration.

- :mod:`soilclay.serving.predictor`: the :class:`~soilclay.serving.predictor.Predictor` protocol, with the
  SavedModel loaded in process (:class:`~soilclay.serving.predictor.InProcessPredictor`) or behind TensorFlow
  Serving over gRPC or REST (:class:`~soilclay.serving.predictor.TFServingPredictor`), pinned to one version,
  in batches, with retries for transient failures. Their shared checks and batch loop are in
  :mod:`soilclay.serving.base`, the TF Serving calls in :mod:`soilclay.serving.transports` and
  :mod:`soilclay.serving.wire`; what a model takes and returns is :mod:`soilclay.contract`.
- :mod:`soilclay.serving.config`: ``models.config`` pinning the champion version (TF Serving would otherwise serve
  the highest version directory, which may be a rejected model) and ``monitoring.config`` for Prometheus.

Nothing here imports :mod:`soilclay.model`. The deployment itself is ``docker/compose.serving.yaml``. Modules import
TensorFlow lazily where they can: ``tensorflow_serving.apis`` imports ``tensorflow`` whatever one does.
"""
