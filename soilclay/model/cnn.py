"""The multi-input CNN for clay (after Tziolas et al. 2020, Remote Sensing 12:1389).

- ``optical``: the ordered bare-soil spectrum (the 10 :data:`~soilclay.contract.S2_BANDS`) as a 1-D signal
  through Conv1D blocks (convolution, batch normalisation, leaky ReLU, max pooling);
- ``sar`` (VV, VH, VV−VH in dB) and ``coords`` (lon, lat): dense branches;
- concatenated, dense layers with dropout, one output: clay in %.

Normalisation layers (adapted on the training data) and the target rescaling live inside the model,
so it takes raw values (reflectance DN, dB, degrees) and returns clay in %: serving needs nothing else.
"""

from __future__ import annotations

import os

import numpy as np

from soilclay.contract import INPUT_FEATURES
from soilclay.model.config import CnnConfig
from soilclay.model.features import Features

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter (no GPU here, etc.)
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _keras():
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf.config.experimental.enable_op_determinism()
    return keras


def build_cnn(config: CnnConfig, train: Features, y: np.ndarray, seed: int):
    """The model, with its normalisation layers adapted on ``train`` and target scaling from ``y``."""
    keras = _keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    model_inputs, branches = [], []
    for name, values in train.arrays.items():
        inp = keras.Input(shape=(values.shape[1],), name=name, dtype="float32")
        norm = layers.Normalization(axis=-1, name=f"{name}_norm")
        norm.adapt(values)
        x = norm(inp)
        if name == "optical":
            x = layers.Reshape((values.shape[1], 1), name="spectrum")(x)
            for i, filters in enumerate(config.filters):
                x = layers.Conv1D(filters, config.kernel_size, padding="same", name=f"conv{i}")(x)
                x = layers.BatchNormalization(name=f"bn{i}")(x)
                x = layers.LeakyReLU(negative_slope=config.leaky_alpha, name=f"act{i}")(x)
                x = layers.MaxPooling1D(config.pool_size, padding="same", name=f"pool{i}")(x)
            x = layers.Flatten(name="spectrum_features")(x)
        else:
            x = layers.Dense(config.branch_units, name=f"{name}_dense")(x)
            x = layers.LeakyReLU(negative_slope=config.leaky_alpha, name=f"{name}_act")(x)
        model_inputs.append(inp)
        branches.append(x)
    x = layers.Concatenate(name="merge")(branches) if len(branches) > 1 else branches[0]
    for i, units in enumerate(config.dense_units):
        x = layers.Dense(units, name=f"dense{i}")(x)
        x = layers.LeakyReLU(negative_slope=config.leaky_alpha, name=f"dense{i}_act")(x)
        if config.dropout > 0:
            x = layers.Dropout(config.dropout, seed=seed + i, name=f"dropout{i}")(x)
    x = layers.Dense(1, name="clay_scaled")(x)
    mean, std = float(np.mean(y)), float(np.std(y) or 1.0)
    out = layers.Rescaling(scale=std, offset=mean, name="clay")(x)
    model = keras.Model(inputs=model_inputs, outputs=out, name="clay_cnn")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate), loss="mse")
    return model


def _fit_one(config: CnnConfig, train: Features, y: np.ndarray, seed: int):
    keras = _keras()
    rng = np.random.default_rng([seed, 11])
    order = rng.permutation(len(y))
    n_val = max(1, int(round(len(y) * config.validation_split)))
    val, fit = order[:n_val], order[n_val:]
    model = build_cnn(config, train.take(fit), y[fit], seed)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    batch_size = config.batch_size or int(np.clip(len(fit) // 32, 16, 128))
    history = model.fit(train.take(fit).arrays, y[fit].astype(np.float32),
                        validation_data=(train.take(val).arrays, y[val].astype(np.float32)),
                        epochs=config.epochs, batch_size=batch_size, shuffle=True, verbose=0,
                        callbacks=[stop])
    return model, len(history.history["loss"])


def fit_cnn(config: CnnConfig, train: Features, y: np.ndarray, seed: int):
    """Train with early stopping on a random validation split of the training data (restoring the best
    weights); returns (model, epochs run). With ``config.ensemble`` > 1, that many networks (seeds
    ``seed``, ``seed + 1``, ...; each with its own validation split) are averaged inside one model."""
    if config.ensemble == 1:
        return _fit_one(config, train, y, seed)
    keras = _keras()
    members, epochs = [], 0
    for k in range(config.ensemble):
        member, n = _fit_one(config, train, y, seed + 1000 * k)
        member.name = f"member{k}"
        members.append(member)
        epochs += n
    inputs = {name: keras.Input(shape=(values.shape[1],), name=name, dtype="float32")
              for name, values in train.arrays.items()}
    outputs = [member([inputs[n] for n in train.arrays]) for member in members]
    mean = keras.layers.Average(name="clay")(outputs)
    return keras.Model(inputs=list(inputs.values()), outputs=mean, name="clay_cnn_ensemble"), epochs


def predict_cnn(model, features: Features, batch_size: int = 16384) -> np.ndarray:
    """Direct calls in batches: no per-model tf.function tracing as ``model.predict`` would do."""
    out = []
    for start in range(0, len(features), batch_size):
        part = {k: v[start:start + batch_size] for k, v in features.arrays.items()}
        out.append(np.asarray(model(part, training=False)).ravel())
    return np.concatenate(out) if out else np.empty(0)


def spectral_attribution(model, features: Features) -> dict[str, float]:
    """Gradient × input over the optical bands, relative to the mean spectrum of ``features``, averaged
    in absolute value over ``features`` and normalised to sum to 1."""
    import tensorflow as tf

    baseline = tf.constant(features.arrays["optical"].mean(axis=0, keepdims=True), tf.float32)
    tensors = {k: tf.constant(v) for k, v in features.arrays.items()}
    with tf.GradientTape() as tape:
        tape.watch(tensors["optical"])
        pred = model(tensors, training=False)
    grad = tape.gradient(pred, tensors["optical"])
    attribution = np.abs((grad * (tensors["optical"] - baseline)).numpy()).mean(axis=0)
    total = attribution.sum() or 1.0
    return {band: float(v / total) for band, v in zip(INPUT_FEATURES["optical"], attribution, strict=True)}
