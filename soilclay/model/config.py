"""Model and training configuration: a frozen, validated spec whose hash is part of the lineage."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from soilclay.contract import INPUT_NAMES
from soilclay.errors import BadInputError
from soilclay.io.jsonfile import read_json_object

Protocol = Literal["holdout", "kfold", "spatial"]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CnnConfig(_Spec):
    """The multi-input CNN (Tziolas et al. 2020 style): Conv1D blocks over the spectrum, dense SAR and
    coordinate branches, concatenated into a dense head."""

    filters: tuple[int, ...] = Field((32, 64), min_length=1, max_length=4)
    kernel_size: int = Field(3, ge=2, le=7)
    pool_size: int = Field(2, ge=1, le=3)
    leaky_alpha: float = Field(0.1, ge=0, lt=1)
    branch_units: int = Field(16, ge=2, le=256, description="units of the sar and coords dense branches")
    dense_units: tuple[int, ...] = Field((64, 32), min_length=1, max_length=4)
    dropout: float = Field(0.1, ge=0, lt=0.9)
    learning_rate: float = Field(2e-3, gt=0, le=1)
    batch_size: int | None = Field(None, ge=8, le=4096,
                                   description="None: n_train / 32 within 16..128 (small data sets need small batches)")
    epochs: int = Field(400, ge=1, le=5000)
    patience: int = Field(40, ge=1, le=1000, description="early stopping on the validation split")
    validation_split: float = Field(0.15, gt=0, lt=0.5)
    ensemble: int = Field(1, ge=1, le=20, description="average of this many CNNs trained with different seeds")


class RfConfig(_Spec):
    n_estimators: int = Field(300, ge=10, le=5000)
    min_samples_leaf: int = Field(2, ge=1, le=100)
    max_features: float = Field(0.5, gt=0, le=1.0, description="share of features tried per split")


class AnnConfig(_Spec):
    hidden: tuple[int, ...] = Field((64, 32), min_length=1, max_length=4)
    alpha: float = Field(1e-3, ge=0, le=10, description="L2 penalty")
    learning_rate: float = Field(1e-3, gt=0, le=1)
    max_iter: int = Field(2000, ge=10, le=20000)


class ModelConfig(_Spec):
    """Everything that defines how models are trained and validated."""

    inputs: tuple[str, ...] = Field(INPUT_NAMES, min_length=1, description="model inputs used when the data has them")
    seed: int = Field(42, ge=0)
    folds: int = Field(5, ge=2, le=20, description="k for k-fold and spatial block CV without predefined folds")
    holdout_fraction: float = Field(0.2, gt=0, lt=0.5, description="the paper's 80/20 calibration/validation split")
    block_size_m: float = Field(1000.0, gt=0, description="spatial block CV: square block side in metres")
    interval_coverage: float = Field(0.9, gt=0.5, lt=1.0)
    domain_quantile: float = Field(0.99, gt=0.5, lt=1.0, description="training distance quantile of the domain")
    cnn: CnnConfig = CnnConfig()
    rf: RfConfig = RfConfig()
    ann: AnnConfig = AnnConfig()

    @field_validator("inputs")
    @classmethod
    def _known_inputs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [v for v in value if v not in INPUT_NAMES]
        if unknown or "optical" not in value:
            raise ValueError(f"inputs must include 'optical' and come from {INPUT_NAMES}, found {list(value)}")
        return tuple(n for n in INPUT_NAMES if n in value)

    def hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:32]

    @classmethod
    def parse(cls, data: dict) -> ModelConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
            raise BadInputError(f"invalid model config: {problems}") from exc

    @classmethod
    def from_file(cls, path: str | Path | None, *, what: str = "model config") -> ModelConfig:
        """The config in a JSON file (None or "": the defaults); a missing file, bad JSON or a field
        the spec refuses is one :class:`BadInputError` line naming the file."""
        if not path:
            return cls.parse({})
        data = read_json_object(path, what)
        try:
            return cls.parse(data)
        except BadInputError as exc:
            raise BadInputError(f"{path}: {exc}") from None

    def with_inputs(self, available: tuple[str, ...]) -> ModelConfig:
        """The config restricted to the inputs a data set has (optional inputs are simply not used)."""
        return self.model_copy(update={"inputs": tuple(n for n in self.inputs if n in available)})
