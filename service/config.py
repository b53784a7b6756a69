"""The service's configuration: one frozen pydantic-settings object read from ``WISATA_*``.

:meth:`Config.from_env` reads and validates every variable once, at start; a bad value raises
:class:`~service.errors.ConfigError` naming the variable, what was wrong and what to set
instead. Each setting's variable, default, limits and an example are written once, in its
field below (the README's configuration table lists them for operators). Nothing else in the
service reads the environment (the AWS credential chain aside, which boto reads itself); lower
layers get plain settings objects (:meth:`Config.store_settings`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from service.db import Database, is_database
from service.errors import ConfigError
from service.sample_data import SAMPLE_DATA_DIR
from storage import StoreSettings, open_store

__all__ = ["Config", "ConfigError"]

PREFIX = "WISATA_"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Weight = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
WorkerCount = Annotated[int, Field(ge=1, le=64)]


class Config(BaseSettings):
    """Everything the service and the jobs read from their environment, validated.

    Build it with :meth:`from_env`. Secrets (the admin token and the artifact key) are left
    out of ``repr``.
    """

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_ignore_empty=True,  # an empty variable takes the default, as if unset
        frozen=True,
        extra="ignore",
        populate_by_name=True,
    )

    data: str = Field(
        default=str(SAMPLE_DATA_DIR),
        description="The dataset: a folder, or the site's database (sqlite:///path, "
        "postgresql://...).",
        examples=["sqlite:///./data/wisata.db"],
    )
    storage: str = Field(
        default="./data/models",
        description="Artifact store: s3://bucket/prefix, file:///abs/path or a path.",
        examples=["s3://wisata/models"],
    )
    s3_endpoint: str | None = Field(
        default=None, description="S3 endpoint URL.", examples=["http://minio:9000"]
    )
    s3_region: str | None = Field(default=None, description="S3 region.", examples=["us-east-1"])
    s3_create_bucket: bool = Field(
        default=True,
        description="Create a missing bucket and turn on its versioning.",
        examples=["false"],
    )
    host: str = Field(
        default="127.0.0.1", description="Address to listen on.", examples=["0.0.0.0"]
    )
    port: int = Field(default=8080, ge=1, le=65535, description="Port.", examples=["8080"])
    admin_token: str | None = Field(
        default=None, repr=False, description="Bearer token of the admin routes."
    )
    feedback_token: str | None = Field(
        default=None,
        repr=False,
        description="Bearer token of POST /api/ratings (the admin token is accepted too).",
    )
    artifact_key: bytes | None = Field(
        default=None, repr=False, description="HMAC key (UTF-8) signing and checking artifacts."
    )
    reload_interval: float = Field(
        default=30.0,
        ge=0.0,
        le=24 * 3600.0,
        allow_inf_nan=False,
        description="Seconds between checks for new artifact versions; 0 turns them off.",
        examples=["30"],
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated origins allowed on the public read routes, or *.",
        examples=["https://app.example.com"],
    )
    workers: WorkerCount | Literal["auto"] = Field(
        default=1,
        description="Serving processes on the port (SO_REUSEPORT), or auto: one per core.",
        examples=["2"],
    )
    training_workers: int = Field(
        default=1, ge=1, le=64, description="Training worker processes.", examples=["2"]
    )
    hybrid_weight: Weight | Literal["auto"] = Field(
        default="auto",
        description="The hybrid's content weight from 0 to 1, or auto.",
        examples=["0.6"],
    )
    log_level: LogLevel = Field(default="INFO", description="Root log level.", examples=["INFO"])
    response_cache: int = Field(
        default=2048,
        ge=0,
        le=1_000_000,
        description="Recent GET answers kept per process; 0 turns the cache off.",
        examples=["2048"],
    )
    spark_master: str | None = Field(
        default=None,
        description="The Spark master wisata-retrain --engine spark trains on (default "
        "local[*]); --spark-master overrides it.",
        examples=["spark://spark-master:7077"],
    )

    # --- reading ------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Config:
        """Read and validate the ``WISATA_*`` variables of ``environ``.

        Unset and empty variables take their defaults.

        Raises
        ------
        ConfigError
            If a value is not valid; the message names the variable and what to set.
        """
        # Each known variable is looked up by name: nothing else in ``environ`` is read.
        given = {
            name: value for name in cls.variables() if (value := environ.get(name)) is not None
        }
        source = EnvSettingsSource(cls)
        source.env_vars = parse_env_vars(
            given, source.case_sensitive, source.env_ignore_empty, source.env_parse_none_str
        )
        return cls._validated(source())

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Every variable the configuration reads, with the setting it gives."""
        return {_variable(name): name for name in cls.model_fields}

    def replace(self, **changes: Any) -> Config:
        """Return a validated copy with ``changes`` applied (e.g. ``host`` from a flag)."""
        return self._validated({**self.model_dump(), **changes})

    @classmethod
    def _validated(cls, values: Mapping[str, Any]) -> Config:
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            raise _config_error(cls, e) from None

    # --- derived ------------------------------------------------------------------------------

    @property
    def worker_count(self) -> int:
        """How many serving processes ``workers`` asks for (``auto``: the usable cores)."""
        if self.workers == "auto":
            return max(1, len(os.sched_getaffinity(0)))
        return int(self.workers)

    @property
    def data_dir(self) -> Path:
        """``WISATA_DATA`` as a folder path (meaningful when it is not a database URL)."""
        return Path(self.data).expanduser()

    @property
    def database(self) -> Database | None:
        """The database ``WISATA_DATA`` names; None when it is a folder."""
        return Database.parse(self.data) if is_database(self.data) else None

    @property
    def log_level_number(self) -> int:
        """The log level as the number :mod:`logging` uses."""
        return logging.getLevelNamesMapping()[self.log_level]

    def store_settings(self) -> StoreSettings:
        """The artifact store's settings: endpoint, region, and bucket creation and versioning."""
        return StoreSettings(
            endpoint=self.s3_endpoint,
            endpoint_source=f"{PREFIX}S3_ENDPOINT",
            region=self.s3_region,
            create_bucket=self.s3_create_bucket,
            versioning=self.s3_create_bucket,
        )

    # --- checks -------------------------------------------------------------------------------

    @field_validator("hybrid_weight", "log_level", mode="before")
    @classmethod
    def _spelling(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, str):
            return value
        return value.lower() if info.field_name == "hybrid_weight" else value.upper()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        origins = tuple(part.strip() for part in value.split(",") if part.strip())
        for origin in origins:
            if origin != "*" and not _is_origin(origin):
                raise ValueError(
                    f"{origin!r} is not an origin; list scheme://host[:port] entries separated "
                    "by commas, without paths (e.g. https://app.example.com), or * for any origin"
                )
        return tuple(origin.rstrip("/") for origin in origins)

    @field_validator("host")
    @classmethod
    def _host(cls, host: str) -> str:
        if any(c.isspace() for c in host) or "/" in host:
            raise ValueError("is not a host name or address; e.g. 127.0.0.1 or 0.0.0.0")
        return host

    @field_validator("admin_token", "feedback_token")
    @classmethod
    def _token(cls, token: str | None) -> str | None:
        # The token travels in an HTTP header: it must be printable ASCII without spaces.
        if token is not None and (
            not token.isascii() or not token.isprintable() or any(c.isspace() for c in token)
        ):
            raise ValueError(
                "holds spaces or characters outside printable ASCII; use letters, digits and "
                "punctuation only (e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return token

    @field_validator("data")
    @classmethod
    def _source(cls, value: str) -> str:
        if is_database(value):
            Database.parse(value)  # its ValueError says what a URL should look like
            return value
        if "://" in value:  # a URL of something else (mysql://, file://...): not a folder
            scheme = value.split("://", 1)[0]
            raise ValueError(
                f"{scheme}:// is not a dataset source; give a folder as a plain path, or a "
                "database as sqlite:///path/to/wisata.db or postgresql://user@host:5432/wisata"
            )
        return str(Path(value).expanduser())

    @field_validator("spark_master")
    @classmethod
    def _spark_master(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Imported here: only a Spark training needs the engine's module.
        from service.ml.spark_engine import SparkSetupError, check_master

        try:
            return check_master(value)
        except SparkSetupError as e:
            raise ValueError(str(e)) from None

    @model_validator(mode="after")
    def _together(self) -> Self:
        try:
            settings = StoreSettings(endpoint=self.s3_endpoint)
        except ValueError as e:
            raise ValueError(f"{PREFIX}S3_ENDPOINT: {e}") from e
        try:
            open_store(self.storage, settings)  # builds the store without opening it: no I/O
        except ValueError as e:
            raise ValueError(f"{PREFIX}STORAGE: {e}") from e
        if self.admin_token is None and not _is_loopback(self.host):
            raise ValueError(
                f"{PREFIX}HOST={self.host} listens beyond this machine, but {PREFIX}ADMIN_TOKEN "
                "is not set, so anyone who reaches the port could retrain, reload or roll back "
                f"the models; set {PREFIX}ADMIN_TOKEN to a long random secret, or set "
                f"{PREFIX}HOST=127.0.0.1"
            )
        return self


def _config_error(config: type[Config], error: ValidationError) -> ConfigError:
    """The first problem of ``error`` as one line naming the variable and what to set."""
    first = error.errors(include_url=False)[0]
    if first["type"] == "value_error":
        reason = str(first["ctx"]["error"])
    else:
        reason = first["msg"][:1].lower() + first["msg"][1:]
    if not first["loc"]:  # a check of several settings together names them itself
        return ConfigError(reason)
    name = str(first["loc"][0])
    field = config.model_fields.get(name)
    variable = _variable(name)
    secret = field is not None and not field.repr
    given = variable if secret else f"{variable}={_masked(first['input'])}"
    example = field.examples[0] if field and field.examples and "e.g." not in reason else None
    hint = f"; e.g. {variable}={example}" if example is not None else ""
    return ConfigError(f"{given}: {reason}{hint}")


_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


def _masked(value: object) -> str:
    """A value as an error shows it, a URL's password replaced by ``***`` (logs keep errors)."""
    return _PASSWORD.sub(r"\1***@", str(value))


def _variable(name: str) -> str:
    """The environment variable of setting ``name``."""
    return f"{PREFIX}{name.upper()}"


def _is_origin(origin: str) -> bool:
    parts = urlsplit(origin)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
        and not parts.username
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
