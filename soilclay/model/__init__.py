"""The clay model: training and evaluation, and what happens to a trained model before serving.

After training:

- :mod:`soilclay.model.domain`: a Mahalanobis applicability domain fitted on training features (pure numpy).
- :mod:`soilclay.model.export`: the Keras model plus interval and domain check as one SavedModel signature,
  published as ``{model_base_path}/{version}/``.
- :mod:`soilclay.model.registry`: ``soilclay.model_versions`` rows, the pure promotion rule and its application.
"""
