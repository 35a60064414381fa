"""TensorFlow Serving's configuration files: ``models.config`` (which versions to serve) and ``monitoring.config``.

Why a pinned version: without ``model_version_policy`` TF Serving serves the *highest* version directory under
the base path, which may be a candidate or a rejected model. ``models.config`` therefore pins exactly the
champion (``specific { versions: N }``, ``N = registry.servable_version(...)``) and names it with the
``champion`` label, so clients may also ask for ``/labels/champion`` (soilclay's own clients pin the number).

Label rules of TF Serving (``ServerCore::UpdateModelVersionLabelMap``) that shape how a champion is swapped:

- a label may only point at a version that is already AVAILABLE. At start-up nothing is loaded yet, so the
  server must run with ``--allow_version_labels_for_unavailable_models=true`` (see ``docker/compose.serving.yaml``);
- even with that flag, *moving* an existing label to a version that is not loaded yet is refused, and the whole
  new config with it (the server keeps the old one and logs FAILED_PRECONDITION on every poll). Swap in two
  steps: ``write_models_config(..., version=OLD, also_load=[NEW])``, wait until NEW is AVAILABLE
  (:meth:`soilclay.serving.predictor.TFServingPredictor.check_ready`), then ``write_models_config(..., version=NEW)``.

Both files are TF Serving's text-format protos; they are built as protos, written atomically (a temporary
file in the same directory, fsync, rename: the server polls the file and must never read half of it) and
parsed back to prove the server will read what was meant. Mount the *directory* into the container, not the
file: a rename replaces the directory entry, and a single-file bind mount keeps showing the old inode.

The pip package ``tensorflow-serving-api`` ships ``model_server_config_pb2`` but not ``monitoring_config_pb2``;
:func:`monitoring_config_class` declares those two small messages exactly as in
``tensorflow_serving/config/monitoring_config.proto``.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from soilclay.contract import check_model_version
from soilclay.errors import BadInputError

DEFAULT_MODEL_NAME = "clay"
CHAMPION_LABEL = "champion"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
MODEL_PLATFORM = "tensorflow"

# TF Serving's REST routes take the model name from `/v1/models/([^/:]+)`; keep names URL- and file-safe.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MONITORING_CLASS: Any = None


def _check_name(model_name: Any) -> str:
    if not isinstance(model_name, str) or not _NAME_RE.match(model_name):
        raise BadInputError(f"model_name must be 1-128 letters, digits, '_', '.' or '-' (it appears in "
                            f"/v1/models/NAME), found {model_name!r}")
    return model_name


def _check_base_path(base_path: Any) -> str:
    text = str(base_path) if isinstance(base_path, str | os.PathLike) else None
    if not text or not (text.startswith("/") or _SCHEME_RE.match(text)):
        raise BadInputError("base_path must be an absolute path as the server sees it (e.g. /models/clay inside "
                            f"the container) or a URL such as gs://bucket/models, found {base_path!r}")
    return text.rstrip("/") if len(text) > 1 else text


def models_config(*, model_name: str, base_path: str | os.PathLike[str], version: int,
                  also_load: Iterable[int] = (), label: str = CHAMPION_LABEL) -> Any:
    """The ``ModelServerConfig`` serving ``version`` (plus ``also_load``) of one model, ``label`` -> ``version``."""
    from tensorflow_serving.config import model_server_config_pb2

    name = _check_name(model_name)
    base = _check_base_path(base_path)
    version = check_model_version(version)
    extra = sorted({check_model_version(v, "model version in also_load") for v in also_load} - {version})
    if not isinstance(label, str) or not _NAME_RE.match(label):
        raise BadInputError(f"label must be a short name of letters, digits, '_', '.' or '-', found {label!r}")

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base
    model.model_platform = MODEL_PLATFORM
    model.model_version_policy.specific.versions.extend(sorted([version, *extra]))
    model.version_labels[label] = version
    return config


def write_models_config(path: str | os.PathLike[str], *, model_name: str, base_path: str | os.PathLike[str],
                        version: int, also_load: Iterable[int] = (), label: str = CHAMPION_LABEL) -> Path:
    """Write TF Serving's ``--model_config_file`` pinning ``version`` (labelled ``champion``); return its path.

    ``base_path`` is where the *server* finds ``{base_path}/{version}/saved_model.pb``. ``also_load`` keeps
    other versions loaded too (e.g. the next champion while it loads; see the module docstring).
    """
    from tensorflow_serving.config import model_server_config_pb2

    config = models_config(model_name=model_name, base_path=base_path, version=version, also_load=also_load,
                           label=label)
    return _write_checked(Path(path), config, model_server_config_pb2.ModelServerConfig)


def read_models_config(path: str | os.PathLike[str]) -> Any:
    """Parse a ``models.config`` file into a ``ModelServerConfig``; a syntax error names the file."""
    from tensorflow_serving.config import model_server_config_pb2

    return _parse(Path(path), model_server_config_pb2.ModelServerConfig)


def served_versions(config: Any, model_name: str) -> tuple[tuple[int, ...], dict[str, int]]:
    """The pinned versions and the labels of ``model_name`` in a ``ModelServerConfig``.

    Raises :class:`BadInputError` unless the model is there with a ``specific`` version policy: any other
    policy lets the server pick versions by itself, which is what the pinning is for.
    """
    for model in config.model_config_list.config:
        if model.name == model_name:
            if model.model_version_policy.WhichOneof("policy_choice") != "specific":
                raise BadInputError(f"model {model_name!r} has no 'specific' version policy in the config; "
                                    "expected the champion pinned as model_version_policy { specific { ... } }")
            return tuple(model.model_version_policy.specific.versions), dict(model.version_labels)
    found = [m.name for m in config.model_config_list.config]
    raise BadInputError(f"model {model_name!r} is not in the config; found models {found}")


def monitoring_config_class() -> Any:
    """The message class ``tensorflow.serving.MonitoringConfig`` (declared here; see the module docstring)."""
    global _MONITORING_CLASS
    if _MONITORING_CLASS is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        proto = descriptor_pb2.FileDescriptorProto(name="tensorflow_serving/config/monitoring_config.proto",
                                                   package="tensorflow.serving", syntax="proto3")
        field = descriptor_pb2.FieldDescriptorProto
        prometheus = proto.message_type.add(name="PrometheusConfig")
        prometheus.field.add(name="enable", number=1, type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL)
        prometheus.field.add(name="path", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
        monitoring = proto.message_type.add(name="MonitoringConfig")
        monitoring.field.add(name="prometheus_config", number=1, type=field.TYPE_MESSAGE,
                             label=field.LABEL_OPTIONAL, type_name=".tensorflow.serving.PrometheusConfig")
        pool = descriptor_pool.DescriptorPool()  # private: never clashes with a real monitoring_config_pb2
        pool.Add(proto)
        _MONITORING_CLASS = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))
    return _MONITORING_CLASS


def write_monitoring_config(path: str | os.PathLike[str], *, metrics_path: str = PROMETHEUS_PATH) -> Path:
    """Write TF Serving's ``--monitoring_config_file`` exposing Prometheus metrics at ``metrics_path``.

    The metrics are served on the REST port (``--rest_api_port``), e.g. ``http://host:8501{metrics_path}``.
    """
    if not isinstance(metrics_path, str) or not re.match(r"^/[A-Za-z0-9_./-]*$", metrics_path):
        raise BadInputError(f"metrics_path must be a URL path starting with '/', found {metrics_path!r}")
    cls = monitoring_config_class()
    config = cls()
    config.prometheus_config.enable = True
    config.prometheus_config.path = metrics_path
    return _write_checked(Path(path), config, cls)


def read_monitoring_config(path: str | os.PathLike[str]) -> Any:
    """Parse a ``monitoring.config`` file into a ``MonitoringConfig`` message."""
    return _parse(Path(path), monitoring_config_class())


def _parse(path: Path, cls: Any) -> Any:
    from google.protobuf import text_format

    try:
        text = path.read_text()
    except OSError as e:
        raise BadInputError(f"cannot read TF Serving config {path}: {e}") from e
    try:
        return text_format.Parse(text, cls())
    except text_format.ParseError as e:
        raise BadInputError(f"{path} is not a text-format {cls.DESCRIPTOR.full_name}: {e}") from e


def _write_checked(path: Path, message: Any, cls: Any) -> Path:
    """Write ``message`` as text format atomically, then parse the file back and compare."""
    from google.protobuf import text_format

    _write_atomic(path, text_format.MessageToString(message))
    parsed = _parse(path, cls)
    if parsed != message:
        raise BadInputError(f"{path} did not read back as written: expected {message}, found {parsed}")
    return path


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # some filesystems cannot open directories; the rename is done either way
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
