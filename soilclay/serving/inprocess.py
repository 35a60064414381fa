"""InProcessPredictor: the champion SavedModel loaded into this process."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from soilclay.contract import SIGNATURE, check_model_version
from soilclay.errors import BadInputError
from soilclay.serving.base import (
    DEFAULT_BATCH_SIZE,
    BatchedPredictor,
    check_batch_size,
    check_outputs,
    check_signature_outputs,
    signature_inputs,
)

log = logging.getLogger(__name__)


class InProcessPredictor(BatchedPredictor):
    """The SavedModel's ``serving_default`` signature loaded into this process (no server involved).

    ``model_dir`` is one version directory (``{base}/{version}``), local or a URL TensorFlow can read (e.g.
    ``gs://``; kept as a string, since ``Path`` would fold ``gs://`` into ``gs:/``).
    """

    def __init__(self, model_dir: str | Path, version: int, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        import tensorflow as tf

        self._version = check_model_version(version)
        self.batch_size = check_batch_size(batch_size)
        self.model_dir = str(model_dir)
        try:
            loaded = tf.saved_model.load(self.model_dir)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise BadInputError(f"cannot load a SavedModel from {self.model_dir} (expected the output of "
                                f"export_savedmodel, {{base}}/{{version}}/saved_model.pb): {e}") from e
        signatures = dict(loaded.signatures)
        if SIGNATURE not in signatures:
            raise BadInputError(f"{self.model_dir} has no {SIGNATURE!r} signature; found {sorted(signatures)}")
        fn = signatures[SIGNATURE]
        specs = fn.structured_input_signature[1]
        try:
            self._inputs = signature_inputs({n: (s.dtype.name, s.shape.as_list()) for n, s in specs.items()})
            check_signature_outputs({n: t.dtype.name for n, t in fn.structured_outputs.items()})
        except ValueError as e:
            raise BadInputError(f"{self.model_dir}: {e}") from e
        self._loaded: Any = loaded
        self._fn: Any = fn

    @classmethod
    def from_base_path(cls, model_base_path: str | Path, version: int, *,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> InProcessPredictor:
        """Load ``{model_base_path}/{version}`` (TF Serving's layout)."""
        return cls(f"{str(model_base_path).rstrip('/')}/{version}", version, batch_size=batch_size)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self._inputs

    @property
    def where(self) -> str:
        """``model /models/clay/3 version 3 in process``: how messages name the model."""
        return f"model {self.model_dir} version {self._version} in process"

    def predict(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._fn is None:
            raise RuntimeError(f"{self!r} is closed")
        return super().predict(arrays)

    def _predict_batch(self, batch: dict[str, np.ndarray], rows: int, what: str) -> dict[str, np.ndarray]:
        import tensorflow as tf

        raw = self._fn(**{name: tf.constant(arr) for name, arr in batch.items()})
        return check_outputs({k: v.numpy() for k, v in raw.items()}, rows)

    def close(self) -> None:
        self._fn = None
        self._loaded = None
