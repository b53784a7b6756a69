"""The service's configuration: one frozen dataclass read from ``WISATA_*`` variables.

:meth:`Config.from_env` reads and validates every variable once, at start; a bad value raises
:class:`ConfigError` naming the variable, what was wrong and what to set instead. Nothing else in
the service reads the environment (the AWS credential chain aside, which boto reads itself).

==========================  ===================  =================================================
Variable                    Default              Meaning
==========================  ===================  =================================================
WISATA_DATA                 packaged demo data   dataset folder, read only to train
WISATA_STORAGE              ./data/models        ``s3://bucket/prefix``, ``file:///abs`` or a path
WISATA_S3_ENDPOINT          (AWS)                S3 endpoint URL, e.g. ``http://minio:9000``
WISATA_S3_REGION            (AWS chain)          S3 region
WISATA_S3_CREATE_BUCKET     true                 create a missing bucket and turn on versioning
WISATA_HOST                 127.0.0.1            address to listen on
WISATA_PORT                 8080                 port to listen on
WISATA_ADMIN_TOKEN          (none)               bearer token for train / reload / rollback
WISATA_ARTIFACT_KEY         (none)               HMAC key signing and checking artifacts
WISATA_RELOAD_INTERVAL      30                   seconds between artifact checks; 0 turns them off
WISATA_CORS_ORIGINS         (none)               comma-separated origins allowed on public routes
WISATA_TRAINING_WORKERS     1                    training worker processes
WISATA_HYBRID_WEIGHT        auto                 hybrid content weight in 0..1, or ``auto``
WISATA_LOG_LEVEL            INFO                 DEBUG, INFO, WARNING, ERROR or CRITICAL
WISATA_RESPONSE_CACHE       2048                 recent answers kept per process; 0 turns it off
==========================  ===================  =================================================
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from service.errors import ConfigError
from service.sample_data import SAMPLE_DATA_DIR
from storage import StoreSettings, open_store

__all__ = ["Config", "ConfigError"]

DEFAULT_STORAGE = "./data/models"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MAX_WORKERS = 64
_MAX_INTERVAL = 24 * 3600.0
_MAX_CACHE = 1_000_000


@dataclass(frozen=True)
class Config:
    """Everything the service reads from its environment, validated.

    Build it with :meth:`from_env`; the constructor does not validate. Secrets (the admin
    token and the artifact key) are left out of ``repr``.

    Attributes
    ----------
    data_dir : Path
        Dataset folder (``WISATA_DATA``); read only when training.
    storage : str
        Artifact store URL (``WISATA_STORAGE``).
    s3_endpoint, s3_region : str or None
        S3 endpoint URL and region (``WISATA_S3_ENDPOINT``, ``WISATA_S3_REGION``).
    s3_create_bucket : bool
        Create a missing bucket and turn on its versioning (``WISATA_S3_CREATE_BUCKET``).
    host : str
        Address to listen on (``WISATA_HOST``).
    port : int
        Port to listen on (``WISATA_PORT``).
    admin_token : str or None
        Bearer token the admin routes require (``WISATA_ADMIN_TOKEN``); None: no check.
    artifact_key : bytes or None
        HMAC key for artifact signatures (``WISATA_ARTIFACT_KEY``, UTF-8 encoded).
    reload_interval : float
        Seconds between checks for new artifacts (``WISATA_RELOAD_INTERVAL``); 0: never.
    cors_origins : tuple of str
        Origins allowed to call the public routes from a browser (``WISATA_CORS_ORIGINS``).
    training_workers : int
        Worker processes for training (``WISATA_TRAINING_WORKERS``).
    hybrid_weight : float or "auto"
        The hybrid's content weight (``WISATA_HYBRID_WEIGHT``).
    log_level : str
        Root log level name (``WISATA_LOG_LEVEL``).
    response_cache : int
        How many recent GET answers to keep (``WISATA_RESPONSE_CACHE``); 0: none.
    """

    data_dir: Path = SAMPLE_DATA_DIR
    storage: str = DEFAULT_STORAGE
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_create_bucket: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token: str | None = field(default=None, repr=False)
    artifact_key: bytes | None = field(default=None, repr=False)
    reload_interval: float = 30.0
    cors_origins: tuple[str, ...] = ()
    training_workers: int = 1
    hybrid_weight: float | Literal["auto"] = "auto"
    log_level: str = "INFO"
    response_cache: int = 2048

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Config:
        """Read and validate the ``WISATA_*`` variables of ``environ``.

        Unset and empty variables take their defaults.

        Raises
        ------
        ConfigError
            If a value is not valid; the message names the variable and what to set.
        """
        env = environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        data = get("WISATA_DATA")
        token = env.get("WISATA_ADMIN_TOKEN", "")
        key = env.get("WISATA_ARTIFACT_KEY", "")
        weight = get("WISATA_HYBRID_WEIGHT")
        config = cls(
            data_dir=Path(data).expanduser() if data else SAMPLE_DATA_DIR,
            storage=get("WISATA_STORAGE") or DEFAULT_STORAGE,
            s3_endpoint=get("WISATA_S3_ENDPOINT"),
            s3_region=get("WISATA_S3_REGION"),
            s3_create_bucket=_boolean("WISATA_S3_CREATE_BUCKET", get("WISATA_S3_CREATE_BUCKET")),
            host=get("WISATA_HOST") or "127.0.0.1",
            port=_integer("WISATA_PORT", get("WISATA_PORT"), 8080),
            admin_token=token or None,
            artifact_key=key.encode("utf-8") if key else None,
            reload_interval=_seconds("WISATA_RELOAD_INTERVAL", get("WISATA_RELOAD_INTERVAL")),
            cors_origins=_origins(get("WISATA_CORS_ORIGINS")),
            training_workers=_integer("WISATA_TRAINING_WORKERS", get("WISATA_TRAINING_WORKERS"), 1),
            hybrid_weight=_weight(weight),
            log_level=(get("WISATA_LOG_LEVEL") or "INFO").upper(),
            response_cache=_integer("WISATA_RESPONSE_CACHE", get("WISATA_RESPONSE_CACHE"), 2048),
        )
        config.validate()
        return config

    def replace(self, **changes: object) -> Config:
        """Return a validated copy with ``changes`` applied (e.g. ``host`` from a flag)."""
        config = dataclasses.replace(self, **changes)  # type: ignore[arg-type]
        config.validate()
        return config

    def store_settings(self) -> StoreSettings:
        """The artifact store's settings: endpoint, region, and bucket creation and versioning.

        Raises
        ------
        ValueError
            If the endpoint is not valid (a validated configuration never raises).
        """
        return StoreSettings(
            endpoint=self.s3_endpoint,
            region=self.s3_region,
            create_bucket=self.s3_create_bucket,
            versioning=self.s3_create_bucket,
        )

    @property
    def log_level_number(self) -> int:
        """The log level as the number :mod:`logging` uses."""
        return logging.getLevelNamesMapping()[self.log_level]

    def validate(self) -> None:
        """Check the values together; raise :class:`ConfigError` naming the variable."""
        _check_storage(self.storage, self.s3_endpoint)
        _check_host(self.host)
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"WISATA_PORT={self.port} is not a port; use 1 to 65535")
        if self.admin_token is not None:
            _check_token(self.admin_token)
        elif not _is_loopback(self.host):
            raise ConfigError(
                f"WISATA_HOST={self.host} listens beyond this machine, but WISATA_ADMIN_TOKEN is "
                "not set, so anyone who reaches the port could retrain, reload or roll back "
                "the models; set WISATA_ADMIN_TOKEN to a long random secret, or set "
                "WISATA_HOST=127.0.0.1"
            )
        if not 0 <= self.reload_interval <= _MAX_INTERVAL:
            raise ConfigError(
                f"WISATA_RELOAD_INTERVAL={self.reload_interval:g} is out of range; use seconds "
                f"from 0 (never) to {_MAX_INTERVAL:g}"
            )
        if not 1 <= self.training_workers <= _MAX_WORKERS:
            raise ConfigError(
                f"WISATA_TRAINING_WORKERS={self.training_workers} is out of range; "
                f"use 1 to {_MAX_WORKERS}"
            )
        if not 0 <= self.response_cache <= _MAX_CACHE:
            raise ConfigError(
                f"WISATA_RESPONSE_CACHE={self.response_cache} is out of range; use 0 (off) "
                f"to {_MAX_CACHE} answers"
            )
        if self.log_level not in _LOG_LEVELS:
            raise ConfigError(
                f"WISATA_LOG_LEVEL={self.log_level} is not a level; use one of "
                + ", ".join(_LOG_LEVELS)
            )


def _boolean(name: str, raw: str | None, default: bool = True) -> bool:
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={raw} is not a boolean; use true or false")


def _integer(name: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ConfigError(f"{name}={raw} is not a whole number; e.g. {name}={default}")
    return int(raw)


def _seconds(name: str, raw: str | None, default: float = 30.0) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw} is not a number of seconds; e.g. {name}=30") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw} is not a finite number of seconds; e.g. {name}=30")
    return value


def _weight(raw: str | None) -> float | Literal["auto"]:
    if raw is None or raw.lower() == "auto":
        return "auto"
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"WISATA_HYBRID_WEIGHT={raw} is not valid; use a content weight from 0 to 1 "
            "(e.g. 0.6) or auto"
        )
    return value


def _origins(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    origins = tuple(part.strip() for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username
        ):
            raise ConfigError(
                f"WISATA_CORS_ORIGINS: {origin!r} is not an origin; list scheme://host[:port] "
                "entries separated by commas, without paths (e.g. https://app.example.com), "
                "or * for any origin"
            )
    return tuple(origin.rstrip("/") for origin in origins)


def _check_storage(url: str, endpoint: str | None) -> None:
    try:
        settings = StoreSettings(endpoint=endpoint)
    except ValueError as e:
        raise ConfigError(f"WISATA_S3_ENDPOINT: {e}") from e
    try:
        # Builds the store without opening it: no I/O, only the URL is checked.
        open_store(url, settings)
    except ValueError as e:
        raise ConfigError(f"WISATA_STORAGE: {e}") from e


def _check_host(host: str) -> None:
    if any(c.isspace() for c in host) or "/" in host:
        raise ConfigError(
            f"WISATA_HOST={host!r} is not a host name or address; e.g. 127.0.0.1 or 0.0.0.0"
        )


def _check_token(token: str) -> None:
    # The token travels in an HTTP header: it must be printable ASCII without spaces.
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ConfigError(
            "WISATA_ADMIN_TOKEN holds spaces or characters outside printable ASCII; "
            "use letters, digits and punctuation only (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
