"""Build the predictor for a champion: in-process SavedModel, or TensorFlow Serving pinned to its version.

:func:`predictor_factory` turns a :class:`ServingChoice` (plain values, usually
:meth:`ServingChoice.from_settings`) into ``factory(champion) -> Predictor``, the callable that
:func:`soilclay.predict.run.predict_aoi` calls once it knows the champion (anything with ``version``
and ``artefact_uri``, e.g. :class:`soilclay.model.registry.ChampionInfo`).

With TF Serving the predictor first waits for the version to be AVAILABLE (``check_ready``). When the
choice names a ``config_dir``, the factory then completes the champion swap that a promotion began
(:func:`soilclay.serving.publish.write_serving_config` leaves the ``champion`` label on the previous
version while the new one loads; TF Serving refuses to move a label to a version not loaded yet):
it rewrites ``models.config`` with :func:`soilclay.serving.config.write_models_config` to serve the
champion alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from soilclay.errors import BadInputError

if TYPE_CHECKING:
    from soilclay.serving.base import Predictor
    from soilclay.settings import Settings

KINDS = ("local", "tfserving")
PROTOCOLS = ("grpc", "rest")


class Champion(Protocol):
    """What the factory needs of the champion model."""

    @property
    def version(self) -> int: ...

    @property
    def artefact_uri(self) -> str: ...


@dataclass(frozen=True)
class ServingChoice:
    """How predictions are served: ``kind`` ``local`` (the SavedModel at the champion's artefact URI, in this
    process) or ``tfserving`` over ``protocol`` ``grpc`` (``grpc_target``, host:port) or ``rest``
    (``rest_url``), for the model ``model_name``. ``config_dir`` (TF Serving only): where ``models.config``
    lives, rewritten to serve the champion once it is ready; None leaves the file alone. ``base_path`` is the
    model base path as the server sees it (written into ``models.config``)."""

    kind: Literal["local", "tfserving"] = "local"
    protocol: Literal["grpc", "rest"] = "grpc"
    grpc_target: str = "localhost:8500"
    rest_url: str = "http://localhost:8501"
    model_name: str = "clay"
    base_path: str = "/models/clay"
    config_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BadInputError(f"serving must be one of {', '.join(KINDS)}, found {self.kind!r}")
        if self.protocol not in PROTOCOLS:
            raise BadInputError(f"protocol must be one of {', '.join(PROTOCOLS)}, found {self.protocol!r}")

    @classmethod
    def from_settings(cls, settings: Settings, kind: str = "local", protocol: str = "grpc") -> ServingChoice:
        """The choice ``kind``/``protocol`` with addresses, model name, base path and config directory
        (``SOILCLAY_TF_SERVING_*``) from ``settings``."""
        return cls(kind=kind, protocol=protocol, grpc_target=settings.tf_serving_grpc,  # type: ignore[arg-type]
                   rest_url=settings.tf_serving_rest, model_name=settings.tf_serving_model,
                   base_path=settings.tf_serving_base_path, config_dir=Path(settings.tf_serving_config_dir))

    @property
    def target(self) -> str:
        """The TF Serving address for the protocol."""
        return self.grpc_target if self.protocol == "grpc" else self.rest_url


def predictor_factory(choice: ServingChoice, **predictor_options: Any) -> Callable[[Champion], Predictor]:
    """``factory(champion) -> Predictor`` for ``choice``; ``predictor_options`` (e.g. ``batch_size``) go to
    the predictor's constructor."""

    def build(champion: Champion) -> Predictor:
        if choice.kind == "local":
            from soilclay.serving.inprocess import InProcessPredictor

            return InProcessPredictor(champion.artefact_uri, champion.version, **predictor_options)
        from soilclay.serving.tfserving import TFServingPredictor

        predictor = TFServingPredictor(choice.target, choice.model_name, champion.version,
                                       protocol=choice.protocol, **predictor_options)
        try:
            predictor.check_ready()
            if choice.config_dir is not None:
                serve_only(choice, champion.version)
        except BaseException:
            predictor.close()
            raise
        return predictor

    return build


def serve_only(choice: ServingChoice, version: int) -> Path:
    """Rewrite ``models.config`` in ``choice.config_dir`` to serve ``version`` alone, labelled ``champion``
    (the second step of a champion swap, once ``version`` is loaded)."""
    from soilclay.serving.config import write_models_config

    if choice.config_dir is None:
        raise BadInputError("serve_only needs the TF Serving config directory (config_dir), found None")
    return write_models_config(Path(choice.config_dir) / "models.config", model_name=choice.model_name,
                               base_path=choice.base_path, version=version)
