"""The SavedModel serves what the Keras model predicts, plus interval and domain flag, under TF Serving's names."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from soilclay.contract import INPUT_FEATURES
from soilclay.errors import BadInputError
from soilclay.model.domain import DomainModel
from soilclay.model.export import export_savedmodel, load_serving, publish_model

HALFWIDTH = 12.5
ALL = ("optical", "sar", "coords")


def _raw(n: int, seed: int) -> dict[str, np.ndarray]:
    """Training-like raw inputs: reflectance DN, backscatter dB, lon/lat near Berlin."""
    rng = np.random.default_rng(seed)
    vv, vh = rng.normal(-11, 1.5, n), rng.normal(-18, 1.5, n)
    return {
        "optical": rng.uniform(500, 5000, (n, 10)).astype("float32"),
        "sar": np.column_stack([vv, vh, vv - vh]).astype("float32"),
        "coords": np.column_stack([rng.uniform(12.9, 13.1, n), rng.uniform(52.5, 52.7, n)]).astype("float32"),
    }


def _stand_in(inputs: tuple[str, ...], train: dict[str, np.ndarray], seed: int = 0) -> keras.Model:
    """A tiny model with the real model's contract: raw dict inputs, normalisation inside, (N, 1) clay."""
    tensors, normalised = {}, []
    for name in inputs:
        tensors[name] = keras.Input((len(INPUT_FEATURES[name]),), name=name)
        norm = keras.layers.Normalization()
        norm.adapt(train[name])
        normalised.append(norm(tensors[name]))
    x = keras.layers.Concatenate()(normalised) if len(normalised) > 1 else normalised[0]
    x = keras.layers.Dense(4, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    out = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(stddev=40.0, seed=seed),
                             bias_initializer=keras.initializers.Constant(50.0))(x)
    return keras.Model(tensors, out)


def _features(batch: dict[str, np.ndarray], inputs: tuple[str, ...]) -> np.ndarray:
    return np.concatenate([batch[name] for name in inputs], axis=1)


@pytest.fixture(scope="module")
def train() -> dict[str, np.ndarray]:
    return _raw(400, seed=1)


@pytest.fixture(scope="module")
def full(tmp_path_factory, train):
    """The three-input model, its domain and its export (built once: TF tracing is the slow part)."""
    model = _stand_in(ALL, train)
    domain = DomainModel.fit(_features(train, ALL))
    out = export_savedmodel(model, ALL, HALFWIDTH, domain, tmp_path_factory.mktemp("export") / "full",
                            metadata={"rmse": 4.2, "config_hash": "abc123"})
    return model, domain, out


def test_serving_gives_the_keras_clay_and_clipped_interval(full):
    model, _, out = full
    batch = _raw(256, seed=7)
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    got = {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in batch.items()}).items()}
    keras_clay = model.predict(batch, verbose=0).reshape(-1)
    clay = np.clip(keras_clay, 0, 100)
    # Every case occurs: below 0, above 100, near either end (interval clipped) and well inside.
    assert (keras_clay < 0).any() and (keras_clay > 100).any()
    assert ((clay > 0) & (clay < HALFWIDTH)).any() and ((clay < 100) & (clay > 100 - HALFWIDTH)).any()
    assert ((clay > HALFWIDTH) & (clay < 100 - HALFWIDTH)).any()
    np.testing.assert_allclose(got["clay"], clay, atol=1e-4)
    np.testing.assert_allclose(got["clay_lower"], np.clip(clay - HALFWIDTH, 0, 100), atol=1e-4)
    np.testing.assert_allclose(got["clay_upper"], np.clip(clay + HALFWIDTH, 0, 100), atol=1e-4)
    assert np.all((got["clay_lower"] <= got["clay"]) & (got["clay"] <= got["clay_upper"]))


def test_in_domain_matches_the_domain_model(full, train):
    _, domain, out = full
    serve = load_serving(out)
    like_training = _raw(200, seed=11)
    flags = serve(**{k: tf.constant(v) for k, v in like_training.items()})["in_domain"].numpy()
    assert flags.dtype == np.bool_
    assert flags.mean() > 0.9
    np.testing.assert_array_equal(flags, domain.in_domain(_features(like_training, ALL)))
    far = {**_raw(3, seed=12), "optical": np.full((3, 10), 60000, "float32")}
    assert not serve(**{k: tf.constant(v) for k, v in far.items()})["in_domain"].numpy().any()
    nan = {**_raw(1, seed=13), "sar": np.full((1, 3), np.nan, "float32")}
    assert not serve(**{k: tf.constant(v) for k, v in nan.items()})["in_domain"].numpy()[0]


def test_signature_names_dtypes_and_shapes(full):
    serve = load_serving(full[2])
    args, kwargs = serve.structured_input_signature
    assert args == ()
    assert {k: (v.dtype, v.shape.as_list()) for k, v in kwargs.items()} == {
        "optical": (tf.float32, [None, 10]), "sar": (tf.float32, [None, 3]), "coords": (tf.float32, [None, 2])}
    assert {k: (v.dtype, v.shape.as_list()) for k, v in serve.structured_outputs.items()} == {
        "clay": (tf.float32, [None]), "clay_lower": (tf.float32, [None]), "clay_upper": (tf.float32, [None]),
        "in_domain": (tf.bool, [None])}


def test_metadata_sits_in_assets_extra(full):
    _, domain, out = full
    meta = json.loads((out / "assets.extra" / "soilclay_model.json").read_text())
    assert meta["inputs"] == list(ALL)
    assert meta["interval"]["halfwidth"] == HALFWIDTH and meta["interval"]["level"] == 0.9
    assert DomainModel.from_dict(meta["domain"]) == domain
    assert meta["input_specs"]["sar"]["features"] == ["VV", "VH", "VV_VH"]
    assert meta["metadata"] == {"rmse": 4.2, "config_hash": "abc123"}


def test_model_without_sar_exports_a_signature_without_sar(tmp_path, train):
    inputs = ("optical", "coords")
    model = _stand_in(inputs, train, seed=3)
    domain = DomainModel.fit(_features(train, inputs))
    serve = load_serving(export_savedmodel(model, inputs, 5.0, domain, tmp_path / "nosar"))
    assert set(serve.structured_input_signature[1]) == {"optical", "coords"}
    batch = {k: v for k, v in _raw(8, seed=4).items() if k in inputs}
    got = serve(**{k: tf.constant(v) for k, v in batch.items()})["clay"].numpy()
    np.testing.assert_allclose(got, np.clip(model.predict(batch, verbose=0).reshape(-1), 0, 100), atol=1e-4)


def test_export_refuses_mismatches(tmp_path, full, train):
    model, domain, _ = full
    with pytest.raises(BadInputError, match="subset of"):
        export_savedmodel(model, ("sar", "optical"), 1.0, domain, tmp_path / "a")
    with pytest.raises(BadInputError, match="Keras model's inputs"):
        export_savedmodel(model, ("optical", "coords"), 1.0, DomainModel.fit(_features(train, ("optical", "coords"))),
                          tmp_path / "b")
    with pytest.raises(BadInputError, match="domain has 12 features"):
        export_savedmodel(model, ALL, 1.0, DomainModel.fit(_features(train, ("optical", "coords"))), tmp_path / "c")
    with pytest.raises(BadInputError, match="interval_halfwidth"):
        export_savedmodel(model, ALL, float("nan"), domain, tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "stale.txt").write_text("x")
    with pytest.raises(BadInputError, match="existing content"):
        export_savedmodel(model, ALL, 1.0, domain, tmp_path / "e")


def test_publish_is_tf_serving_layout_idempotent_and_immutable(tmp_path, full, train):
    _, domain, out = full
    base = tmp_path / "models" / "clay"
    uri = publish_model(out, str(base), 3)
    assert uri == str(base / "3")
    assert (base / "3" / "saved_model.pb").is_file()
    assert (base / "3" / "variables" / "variables.index").is_file()
    assert (base / "3" / "assets.extra" / "soilclay_model.json").is_file()
    assert (base / "3" / "_COMPLETE").is_file()
    assert publish_model(out, f"file://{base}", 3) == uri  # same tree again: a no-op
    served = load_serving(base / "3")
    assert set(served.structured_outputs) == {"clay", "clay_lower", "clay_upper", "in_domain"}

    other = export_savedmodel(_stand_in(ALL, train, seed=9), ALL, HALFWIDTH, domain, tmp_path / "other")
    with pytest.raises(BadInputError, match="already exists"):  # a write contradicting what is stored
        publish_model(other, str(base), 3)
    assert publish_model(other, str(base), 4) == str(base / "4")
    assert sorted(p.name for p in base.iterdir() if not p.name.startswith(".")) == ["3", "4"]


@pytest.mark.parametrize("version", [0, -1, "3", True, 2.0])
def test_publish_refuses_non_integer_versions(tmp_path, full, version):
    with pytest.raises(BadInputError, match="integer >= 1"):
        publish_model(full[2], str(tmp_path), version)


def test_publish_refuses_a_tree_that_is_not_an_export(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(BadInputError, match="missing"):
        publish_model(tmp_path / "x", str(tmp_path / "base"), 1)
