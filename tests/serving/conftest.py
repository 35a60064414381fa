"""Fixtures for the serving tests: a tiny exported clay model published as versions 1 and 2, and the stand-in
TF Serving started on it with a ``models.config`` that pins version 1 (version 2 is on disk but not served, like a
rejected challenger)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from soilclay.contract import INPUT_FEATURES  # noqa: E402
from soilclay.model.domain import DomainModel  # noqa: E402
from soilclay.model.export import export_savedmodel, publish_model  # noqa: E402
from soilclay.serving.config import write_models_config  # noqa: E402
from tests.serving.standin import StandInServing  # noqa: E402

MODEL_NAME = "clay"
ALL = ("optical", "sar", "coords")
HALFWIDTH = 7.5


def make_inputs(n: int, seed: int, *, nan_rows: int = 0) -> dict[str, np.ndarray]:
    """Raw inputs like the model's: reflectance DN, backscatter dB, lon/lat near Berlin; some rows NaN SAR."""
    rng = np.random.default_rng(seed)
    vv, vh = rng.normal(-11, 1.5, n), rng.normal(-18, 1.5, n)
    arrays = {
        "optical": rng.uniform(500, 5000, (n, 10)).astype("float32"),
        "sar": np.column_stack([vv, vh, vv - vh]).astype("float32"),
        "coords": np.column_stack([rng.uniform(12.9, 13.1, n), rng.uniform(52.5, 52.7, n)]).astype("float32"),
    }
    arrays["sar"][:nan_rows] = np.nan
    return arrays


def _tiny_model(train: dict[str, np.ndarray]) -> keras.Model:
    """The export tests' stand-in model: raw dict inputs, normalisation inside, one (N, 1) clay output."""
    tensors, normalised = {}, []
    for name in ALL:
        tensors[name] = keras.Input((len(INPUT_FEATURES[name]),), name=name)
        norm = keras.layers.Normalization()
        norm.adapt(train[name])
        normalised.append(norm(tensors[name]))
    x = keras.layers.Concatenate()(normalised)
    x = keras.layers.Dense(4, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(0))(x)
    out = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(stddev=40.0, seed=0),
                             bias_initializer=keras.initializers.Constant(50.0))(x)
    return keras.Model(tensors, out)


@dataclass(frozen=True)
class Served:
    """The published model and the running stand-in."""

    server: StandInServing
    base_path: Path
    models_config: Path

    def version_dir(self, version: int) -> Path:
        return self.base_path / str(version)


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serving")
    train = make_inputs(300, seed=1)
    domain = DomainModel.fit(np.concatenate([train[n] for n in ALL], axis=1))
    export = export_savedmodel(_tiny_model(train), ALL, HALFWIDTH, domain, root / "export")
    base = root / "models"
    publish_model(export, str(base), 1)
    publish_model(export, str(base), 2)  # on disk, but models.config pins version 1 only
    config = write_models_config(root / "config" / "models.config", model_name=MODEL_NAME, base_path=str(base),
                                 version=1)
    server = StandInServing(models_config=config, model_name=MODEL_NAME).start()
    try:
        yield Served(server, base, config)
    finally:
        server.stop()


@pytest.fixture
def standin(served) -> Iterator[StandInServing]:
    """The session's stand-in, with injected failures, faked states and recorded calls cleared around a test."""
    served.server.reset()
    yield served.server
    served.server.reset()
