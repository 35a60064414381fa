"""One settings object, read from ``SOILCLAY_*`` environment variables.

Library functions take the values they need as arguments; only entry points (CLI, DAGs) build a
:class:`Settings`. Secrets (passwords and credential query values inside any URL setting) are never printed: use
:meth:`Settings.describe`; the object's ``repr`` is masked the same way (:mod:`soilclay.redact`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from soilclay.redact import redact, secrets_of

#: Where geometries are stored in PostGIS (WGS 84 longitude/latitude). Inputs in any CRS are
#: reprojected to it; metric work happens in the data's projected CRS, not in the database.
STORAGE_SRID = 4326

DEFAULT_DATABASE_URL = "postgresql+psycopg:///soilclay?host=/var/run/postgresql"


class Settings(BaseSettings):
    """Runtime configuration. Every field maps to ``SOILCLAY_<FIELD NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SOILCLAY_", frozen=True, extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        repr=False,
        description="SQLAlchemy URL of the PostGIS database (psycopg 3 driver).",
    )
    store_url: str = Field(
        "var/store",
        description="Object store root for composites and reports: a local path or gs://bucket/prefix.",
    )
    model_base_path: str = Field(
        "var/models",
        description="TensorFlow Serving model base path ({base}/{version}/saved_model.pb): local or gs://.",
    )
    demo_dir: Path = Field(Path("var/demo"), description="Where `make demo` generates the demo world.")
    scene_archive: str = Field(
        "var/demo/scenes",
        description="Local scene source: a directory of STAC Item JSON files (the demo world's scenes/).",
    )
    work_dir: Path = Field(Path("var/work"), description="Scratch space for intermediate files.")
    model_config_file: str = Field("", description="Model config JSON used by scheduled retraining (empty: defaults).")
    tf_serving_grpc: str = Field("localhost:8500", description="TF Serving gRPC address (host:port).")
    tf_serving_rest: str = Field("http://localhost:8501", description="TF Serving REST base URL.")
    tf_serving_model: str = Field("clay", description="Model name in TF Serving's models.config.")
    tf_serving_config_dir: Path = Field(Path("var/tf-serving"),
                                        description="Where models.config and monitoring.config are written.")
    tf_serving_base_path: str = Field("/models/clay", description="The model base path as TF Serving sees it.")
    ee_project: str = Field("", description="Google Cloud project for Earth Engine (required by that backend).")
    ee_service_account: str = Field("", description="Earth Engine service-account e-mail (else default credentials).")
    ee_key_file: str = Field("", repr=False, description="Path of the service account's JSON key file.")
    log_level: str = Field("INFO", description="Python logging level for the CLI.")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        url = make_url(value)
        if not url.drivername.startswith("postgresql"):
            raise ValueError(f"SOILCLAY_DATABASE_URL must be a postgresql URL, found driver {url.drivername!r}")
        if url.drivername == "postgresql":
            # Plain "postgresql://" would pick psycopg2, which is not installed: use psycopg 3.
            value = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        allowed = {"DEBUG", "INFO", "WARNING", "ERROR"}
        if value.upper() not in allowed:
            raise ValueError(f"SOILCLAY_LOG_LEVEL must be one of {sorted(allowed)}, found {value!r}")
        return value.upper()

    @property
    def safe_database_url(self) -> str:
        """The database URL with any password masked, for logs and summaries."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    def describe(self) -> dict[str, str]:
        """Settings as printable strings, every credential in every URL masked."""
        values = {name: redact(str(getattr(self, name))) for name in type(self).model_fields}
        values["database_url"] = self.safe_database_url
        return values

    def secrets(self) -> list[str]:
        """The clear credentials held in the settings (for a log masker such as Airflow's)."""
        found = [make_url(self.database_url).password or ""]
        found += [s for name in type(self).model_fields for s in secrets_of(str(getattr(self, name)))]
        return sorted({s for s in found if s})

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, redact(value) if isinstance(value, str) else value
