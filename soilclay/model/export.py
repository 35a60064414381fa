"""Export the trained clay model as one TF Serving-ready SavedModel, and publish it as a model version.

The ``serving_default`` signature (names, dtypes and columns in :mod:`soilclay.contract`) takes the raw inputs
the model uses (``optical`` [None, 10], ``sar`` [None, 3], ``coords`` [None, 2], all float32; normalisation lives
inside the Keras model) and returns, per row:

- ``clay`` float32 [None]: the prediction in %, clipped to 0..100;
- ``clay_lower``/``clay_upper`` float32 [None]: the split-conformal 90 % interval ``clay ∓ h``, clipped to
  0..100. It is centred on the *clipped* clay, so it never collapses to a point at the range ends and it still
  contains the raw conformal interval's part inside 0..100 (the true clay is in 0..100), so coverage holds;
- ``in_domain`` bool [None]: the Mahalanobis applicability check of :class:`~soilclay.model.domain.DomainModel`
  (computed in float64 so it agrees with the numpy one; NaN rows are out of the domain). A bool because that is
  what it means: TF Serving returns it as JSON ``true``/``false`` (REST) or ``bool_val`` (gRPC), and an int
  would invite arithmetic on a flag.

Interval and domain are constants baked into the graph, so TF Serving alone serves everything; the same
numbers are also written to ``assets.extra/soilclay_model.json`` (TF Serving's place for extra files, which
it ignores) for humans and the batch predictor.

How: Keras's own :class:`keras.export.ExportArchive`. It tracks exactly the variables the endpoint uses and
writes a plain SavedModel through ``tf.saved_model.save``; a hand-made ``tf.Module`` holding the Keras model
also works with Keras 3.15 + TF 2.21, but then ``tf.saved_model.save`` walks Keras 3's internal object graph,
which Keras does not promise to keep saveable. ``model.export()`` alone cannot add the interval and domain
outputs, hence an archive with our own endpoint function.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from soilclay.contract import (
    INPUT_DTYPE,
    INPUT_FEATURES,
    INPUT_UNITS,
    OUTPUT_DTYPES,
    OUTPUTS,
    SIGNATURE,
    check_inputs,
    check_model_version,
    input_columns,
)
from soilclay.errors import BadInputError
from soilclay.io.store import open_store
from soilclay.model.domain import DomainModel

INTERVAL_LEVEL = 0.9
CLAY_RANGE = (0.0, 100.0)
METADATA_DIR = "assets.extra"
METADATA_FILE = "soilclay_model.json"
METADATA_FORMAT = "soilclay-model/1"
_OUTPUT_UNITS: dict[str, dict[str, Any]] = {"clay": {"units": "%", "range": list(CLAY_RANGE)},
                                            "clay_lower": {"units": "%"}, "clay_upper": {"units": "%"}}


def _model_input_names(model: Any) -> set[str] | None:
    tensors = getattr(model, "inputs", None)
    if not tensors:
        return None
    return {str(getattr(t, "name", "")).split(":")[0] for t in tensors}


def _check_model(model: Any, inputs: tuple[str, ...]) -> None:
    if getattr(model, "built", True) is False:
        raise BadInputError("the Keras model must be built (called or created functionally) before export")
    names = _model_input_names(model)
    if names is not None and names != set(inputs):
        raise BadInputError(f"the Keras model's inputs are {sorted(names)}, but export was asked for {list(inputs)}")
    outputs = getattr(model, "outputs", None)
    if outputs:
        shapes = [tuple(o.shape) for o in outputs]
        if len(shapes) != 1 or len(shapes[0]) != 2 or shapes[0][-1] != 1:
            raise BadInputError(f"the Keras model must have one (N, 1) clay output, found output shapes {shapes}")


def _check_halfwidth(interval_halfwidth: float) -> float:
    try:
        h = float(interval_halfwidth)
    except (TypeError, ValueError):
        h = float("nan")
    if not (0 <= h < float("inf")) or isinstance(interval_halfwidth, bool):
        raise BadInputError(f"interval_halfwidth must be a finite number >= 0 (clay %), found {interval_halfwidth!r}")
    return h


def _serving_fn(model: Any, inputs: tuple[str, ...], halfwidth: float, domain: DomainModel) -> Callable:
    """The endpoint: Keras prediction, clipping, interval and domain check as one graph."""
    import tensorflow as tf

    lo, hi = CLAY_RANGE

    def serve(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        # Constants are made while tracing, so they are graph constants rather than captured eager tensors.
        mean = tf.constant(domain.mean, tf.float64)
        scale = tf.constant(domain.scale, tf.float64)
        components = tf.constant(domain.components, tf.float64)
        threshold = tf.constant(domain.threshold, tf.float64)
        h = tf.constant(halfwidth, tf.float32)
        raw = tf.reshape(model({name: batch[name] for name in inputs}, training=False), [-1])
        clay = tf.clip_by_value(tf.cast(raw, tf.float32), lo, hi)
        features = tf.concat([tf.cast(batch[name], tf.float64) for name in inputs], axis=1)
        z = tf.linalg.matmul((features - mean) / scale, components)
        distance = tf.sqrt(tf.reduce_sum(tf.square(z), axis=1))
        return {
            "clay": tf.identity(clay, name="clay"),
            "clay_lower": tf.clip_by_value(clay - h, lo, hi, name="clay_lower"),
            "clay_upper": tf.clip_by_value(clay + h, lo, hi, name="clay_upper"),
            "in_domain": tf.less_equal(distance, threshold, name="in_domain"),  # NaN compares False
        }

    return serve


def model_metadata(inputs: tuple[str, ...], interval_halfwidth: float, domain: DomainModel,
                   metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``assets.extra/soilclay_model.json``: what a client needs to call and trust the model."""
    import keras
    import tensorflow as tf

    return {
        "format": METADATA_FORMAT,
        "signature": SIGNATURE,
        "inputs": list(inputs),
        "input_specs": {name: {"shape": [None, len(INPUT_FEATURES[name])], "dtype": INPUT_DTYPE.name,
                               "features": list(INPUT_FEATURES[name]), "units": INPUT_UNITS[name]}
                        for name in inputs},
        "features": [f"{name}:{f}" for name in inputs for f in INPUT_FEATURES[name]],
        "outputs": {name: {"dtype": OUTPUT_DTYPES[name].name, "shape": [None], **_OUTPUT_UNITS.get(name, {})}
                    for name in OUTPUTS},
        "interval": {"method": "split-conformal", "level": INTERVAL_LEVEL, "halfwidth": interval_halfwidth,
                     "centre": "clipped clay"},
        "domain": domain.to_dict(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "metadata": dict(metadata or {}),
    }


def export_savedmodel(model: Any, inputs: tuple[str, ...], interval_halfwidth: float, domain: DomainModel,
                      out_dir: Path, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` with interval and domain check as a SavedModel to ``out_dir`` (new or empty); return it.

    ``metadata`` (e.g. metrics, config hash) is copied into ``soilclay_model.json`` and must be JSON-able.
    """
    import keras
    import tensorflow as tf

    inputs = check_inputs(inputs)
    halfwidth = _check_halfwidth(interval_halfwidth)
    if not isinstance(domain, DomainModel):
        raise BadInputError(f"domain must be a DomainModel, found {type(domain).__name__}")
    width = len(input_columns(inputs))
    if domain.n_features != width:
        raise BadInputError(f"the domain has {domain.n_features} features but inputs {list(inputs)} have {width}")
    _check_model(model, inputs)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInputError(f"export needs a new or empty directory, found existing content at {out}")
    try:
        meta_json = json.dumps(model_metadata(inputs, halfwidth, domain, metadata), indent=1, sort_keys=True,
                               allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"model metadata must be JSON-serialisable with finite numbers: {e}") from e

    signature = [{name: tf.TensorSpec([None, len(INPUT_FEATURES[name])], tf.as_dtype(INPUT_DTYPE), name=name)
                  for name in inputs}]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, _serving_fn(model, inputs, halfwidth, domain), input_signature=signature)
    archive.write_out(str(out), verbose=False)

    (out / METADATA_DIR).mkdir(exist_ok=True)
    (out / METADATA_DIR / METADATA_FILE).write_text(meta_json + "\n")
    return out


def _check_export_dir(local_dir: Path) -> Path:
    root = Path(local_dir)
    needed = ["saved_model.pb", "variables", f"{METADATA_DIR}/{METADATA_FILE}"]
    missing = [name for name in needed if not (root / name).exists()]
    if missing:
        raise BadInputError(f"{root} is not a soilclay SavedModel export: missing {missing}; "
                            "expected the output of export_savedmodel")
    return root


def publish_model(local_dir: Path, model_base_path: str, version: int) -> str:
    """Publish an export atomically as ``{model_base_path}/{version}/`` (TF Serving's layout); return its URI.

    Publishing the same tree again is a no-op (a retried task is harmless); a different tree under an existing
    version raises :class:`~soilclay.errors.FinalExternalError`, since versions are immutable once published.
    The tree appears whole or not at all, closed by a ``_COMPLETE`` marker (see :mod:`soilclay.io.store`).
    """
    version = check_model_version(version)
    root = _check_export_dir(local_dir)
    return open_store(model_base_path).publish_dir(root, str(version))


def load_serving(path: str | os.PathLike[str]) -> Callable[..., dict[str, Any]]:
    """The ``serving_default`` signature of a SavedModel; call it with keyword tensors, get a dict of tensors."""
    import tensorflow as tf

    return tf.saved_model.load(str(path)).signatures[SIGNATURE]
