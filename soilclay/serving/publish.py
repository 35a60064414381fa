"""Pointing TF Serving at a newly promoted champion: its ``models.config`` and ``monitoring.config``.

:class:`ServingConfigTarget` names where the configuration goes (the directory TF Serving polls, the model
name, the base path as the server sees it); :func:`write_serving_config` writes it after a promotion, with
the files of :mod:`soilclay.serving.config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soilclay.errors import BadInputError


@dataclass(frozen=True)
class ServingConfigTarget:
    """Where a promotion writes TF Serving's configuration."""

    config_dir: Path
    model: str = "clay"
    base_path: str = "/models/clay"

    def __post_init__(self) -> None:
        if not isinstance(self.config_dir, str | Path) or not str(self.config_dir).strip():
            raise BadInputError(f"serving config_dir must be a directory path, found {self.config_dir!r}")
        object.__setattr__(self, "config_dir", Path(self.config_dir))
        for name in ("model", "base_path"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise BadInputError(f"serving {name} must be a non-empty string, found {value!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> ServingConfigTarget:
        """The target of ``SOILCLAY_TF_SERVING_CONFIG_DIR``, ``_MODEL`` and ``_BASE_PATH``."""
        return cls(settings.tf_serving_config_dir, settings.tf_serving_model, settings.tf_serving_base_path)

    def publish(self, champion: int, previous: int | None) -> None:
        """:func:`write_serving_config` for this target."""
        write_serving_config(self.config_dir, self.model, self.base_path, champion, previous)


def write_serving_config(config_dir: Path, model: str, base_path: str, champion: int, previous: int | None) -> None:
    """TF Serving's models.config (and monitoring.config) after a promotion. With a previous champion the
    label stays on it while the new version loads (TF Serving refuses to move a label to a version not yet
    loaded); :func:`soilclay.serving.config.write_models_config` with the new version alone completes the
    swap once it is ready (``soilclay predict --serving tfserving`` does so)."""
    from soilclay.serving.config import write_models_config, write_monitoring_config

    config_dir.mkdir(parents=True, exist_ok=True)
    if previous is None:
        write_models_config(config_dir / "models.config", model_name=model, base_path=base_path, version=champion)
    else:
        write_models_config(config_dir / "models.config", model_name=model, base_path=base_path, version=previous,
                            also_load=[champion])
    write_monitoring_config(config_dir / "monitoring.config")
