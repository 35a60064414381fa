"""models.config and monitoring.config: what TF Serving will parse, the champion pinned, written atomically."""

from __future__ import annotations

import os

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from soilclay.errors import BadInputError
from soilclay.serving import config as cfg


def _parse_models(path) -> object:
    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def test_models_config_pins_the_champion_and_labels_it(tmp_path):
    path = cfg.write_models_config(tmp_path / "models.config", model_name="clay", base_path="/models/clay", version=3)
    parsed = _parse_models(path)  # TF Serving's own proto, not our reader
    (model,) = parsed.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("clay", "/models/clay", "tensorflow")
    assert model.model_version_policy.WhichOneof("policy_choice") == "specific"
    assert list(model.model_version_policy.specific.versions) == [3]
    assert dict(model.version_labels) == {"champion": 3}
    assert cfg.served_versions(parsed, "clay") == ((3,), {"champion": 3})
    assert parsed == cfg.read_models_config(path) == cfg.models_config(model_name="clay", base_path="/models/clay",
                                                                       version=3)
    text = path.read_text()
    assert "specific {\n        versions: 3\n      }" in text
    assert 'version_labels {\n      key: "champion"\n      value: 3\n    }' in text


def test_models_config_can_keep_the_next_version_loading_while_the_label_stays(tmp_path):
    path = cfg.write_models_config(tmp_path / "models.config", model_name="clay", base_path="gs://bucket/models/",
                                   version=3, also_load=[4, 3])
    versions, labels = cfg.served_versions(cfg.read_models_config(path), "clay")
    assert versions == (3, 4) and labels == {"champion": 3}
    assert _parse_models(path).model_config_list.config[0].base_path == "gs://bucket/models"


def test_rewriting_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "config" / "models.config"
    cfg.write_models_config(path, model_name="clay", base_path="/models/clay", version=1)
    cfg.write_models_config(path, model_name="clay", base_path="/models/clay", version=2)
    assert cfg.served_versions(cfg.read_models_config(path), "clay")[0] == (2,)
    assert sorted(p.name for p in path.parent.iterdir()) == ["models.config"]

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        cfg.write_models_config(path, model_name="clay", base_path="/models/clay", version=5)
    assert cfg.served_versions(cfg.read_models_config(path), "clay")[0] == (2,)  # the old file, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["models.config"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"version": 0}, "integer >= 1"),
    ({"version": True}, "integer >= 1"),
    ({"version": "3"}, "integer >= 1"),
    ({"also_load": [0]}, "version in also_load"),
    ({"model_name": "clay/v2"}, "model_name"),
    ({"model_name": ""}, "model_name"),
    ({"base_path": "var/models"}, "absolute path"),
    ({"label": "champion label"}, "label"),
])
def test_models_config_refuses_bad_values_naming_them(tmp_path, kwargs, match):
    args = {"model_name": "clay", "base_path": "/models/clay", "version": 1, **kwargs}
    with pytest.raises(BadInputError, match=match):
        cfg.write_models_config(tmp_path / "models.config", **args)
    assert not (tmp_path / "models.config").exists()


def test_served_versions_refuses_unpinned_or_missing_models(tmp_path):
    latest = model_server_config_pb2.ModelServerConfig()
    entry = latest.model_config_list.config.add(name="clay", base_path="/models/clay", model_platform="tensorflow")
    with pytest.raises(BadInputError, match="no 'specific' version policy"):
        cfg.served_versions(latest, "clay")
    entry.model_version_policy.specific.versions.append(2)
    with pytest.raises(BadInputError, match=r"'soil' is not in the config; found models \['clay'\]"):
        cfg.served_versions(latest, "soil")


def test_reading_a_broken_config_names_the_file(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { nam: 'clay' } }")
    with pytest.raises(BadInputError, match="models.config is not a text-format tensorflow.serving.ModelServerConfig"):
        cfg.read_models_config(path)
    with pytest.raises(BadInputError, match="cannot read"):
        cfg.read_models_config(tmp_path / "missing.config")


def test_monitoring_config_enables_prometheus(tmp_path):
    path = cfg.write_monitoring_config(tmp_path / "monitoring.config")
    assert path.read_text() == 'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n'
    parsed = cfg.read_monitoring_config(path)
    assert parsed.prometheus_config.enable is True
    assert parsed.prometheus_config.path == cfg.PROMETHEUS_PATH
    assert parsed.DESCRIPTOR.full_name == "tensorflow.serving.MonitoringConfig"
    # Field numbers as in tensorflow_serving/config/monitoring_config.proto, so the binary form matches too.
    path_bytes = cfg.PROMETHEUS_PATH.encode()
    inner = b"\x08\x01" + b"\x12" + bytes([len(path_bytes)]) + path_bytes  # enable = 1, path = 2
    assert parsed.SerializeToString() == b"\x0a" + bytes([len(inner)]) + inner  # prometheus_config = 1
    with pytest.raises(BadInputError, match="metrics_path"):
        cfg.write_monitoring_config(tmp_path / "m.config", metrics_path="metrics")
