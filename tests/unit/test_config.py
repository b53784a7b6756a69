"""Configuration from ``WISATA_*`` variables, and how ``wisata-serve`` reports a bad one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from service.__main__ import main
from service.config import Config, ConfigError
from service.sample_data import SAMPLE_DATA_DIR


def test_defaults() -> None:
    config = Config.from_env({})
    assert config.data_dir == SAMPLE_DATA_DIR
    assert config.storage == "./data/models"
    assert (config.s3_endpoint, config.s3_region) == (None, None)
    assert config.s3_create_bucket is True
    assert (config.host, config.port) == ("127.0.0.1", 8080)
    assert (config.admin_token, config.artifact_key) == (None, None)
    assert config.reload_interval == 30.0
    assert config.cors_origins == ()
    assert config.training_workers == 1
    assert config.hybrid_weight == "auto"
    assert config.log_level == "INFO"
    assert config.response_cache == 2048


def test_every_variable_is_read(tmp_path: Path) -> None:
    config = Config.from_env(
        {
            "WISATA_DATA": str(tmp_path),
            "WISATA_STORAGE": "s3://models/wisata",
            "WISATA_S3_ENDPOINT": "http://minio:9000",
            "WISATA_S3_REGION": "eu-west-1",
            "WISATA_S3_CREATE_BUCKET": "false",
            "WISATA_HOST": "0.0.0.0",
            "WISATA_PORT": "9000",
            "WISATA_ADMIN_TOKEN": "tok-123",
            "WISATA_ARTIFACT_KEY": "kunci rahasia é",
            "WISATA_RELOAD_INTERVAL": "0",
            "WISATA_CORS_ORIGINS": "https://a.example, http://localhost:3000/",
            "WISATA_TRAINING_WORKERS": "2",
            "WISATA_HYBRID_WEIGHT": "0.6",
            "WISATA_LOG_LEVEL": "debug",
            "WISATA_RESPONSE_CACHE": "0",
        }
    )
    assert config.data_dir == tmp_path
    assert config.storage == "s3://models/wisata"
    assert config.s3_endpoint == "http://minio:9000"
    assert config.s3_region == "eu-west-1"
    assert config.s3_create_bucket is False
    assert (config.host, config.port) == ("0.0.0.0", 9000)
    assert config.admin_token == "tok-123"
    assert config.artifact_key == "kunci rahasia é".encode()
    assert config.reload_interval == 0.0
    assert config.cors_origins == ("https://a.example", "http://localhost:3000")
    assert config.training_workers == 2
    assert config.hybrid_weight == 0.6
    assert config.log_level == "DEBUG"
    assert config.response_cache == 0


def test_empty_variables_take_the_defaults() -> None:
    assert Config.from_env({"WISATA_PORT": "", "WISATA_ADMIN_TOKEN": ""}) == Config.from_env({})


def test_secrets_stay_out_of_repr() -> None:
    config = Config.from_env({"WISATA_ADMIN_TOKEN": "tok-123", "WISATA_ARTIFACT_KEY": "k3y"})
    assert "tok-123" not in repr(config) and "k3y" not in repr(config)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WISATA_PORT", "eighty"),
        ("WISATA_PORT", "0"),
        ("WISATA_PORT", "70000"),
        ("WISATA_PORT", "-1"),
        ("WISATA_S3_CREATE_BUCKET", "maybe"),
        ("WISATA_RELOAD_INTERVAL", "soon"),
        ("WISATA_RELOAD_INTERVAL", "-5"),
        ("WISATA_RELOAD_INTERVAL", "inf"),
        ("WISATA_RELOAD_INTERVAL", "nan"),
        ("WISATA_TRAINING_WORKERS", "0"),
        ("WISATA_TRAINING_WORKERS", "1.5"),
        ("WISATA_HYBRID_WEIGHT", "1.2"),
        ("WISATA_HYBRID_WEIGHT", "heavy"),
        ("WISATA_HYBRID_WEIGHT", "nan"),
        ("WISATA_LOG_LEVEL", "LOUD"),
        ("WISATA_RESPONSE_CACHE", "-1"),
        ("WISATA_RESPONSE_CACHE", "lots"),
        ("WISATA_RESPONSE_CACHE", "99999999"),
        ("WISATA_DATA", "mysql://site@db/wisata"),
        ("WISATA_DATA", "file:///srv/data"),
        ("WISATA_STORAGE", "s3://Bad_Bucket/x"),
        ("WISATA_STORAGE", "ftp://host/models"),
        ("WISATA_S3_ENDPOINT", "minio:9000"),
        ("WISATA_CORS_ORIGINS", "https://a.example/path"),
        ("WISATA_CORS_ORIGINS", "app.example.com"),
        ("WISATA_HOST", "local host"),
        ("WISATA_ADMIN_TOKEN", "two words"),
        ("WISATA_ADMIN_TOKEN", "tökén"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({variable: value})
    assert variable in str(caught.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "wisata.example.com"])
def test_a_public_host_needs_the_admin_token(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"WISATA_HOST": host})
    message = str(caught.value)
    assert "WISATA_ADMIN_TOKEN" in message and "WISATA_HOST" in message
    assert "retrain" in message  # says why
    assert Config.from_env({"WISATA_HOST": host, "WISATA_ADMIN_TOKEN": "t0ken"}).host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_token(host: str) -> None:
    assert Config.from_env({"WISATA_HOST": host}).host == host


def test_replace_validates_the_result() -> None:
    config = Config.from_env({})
    assert config.replace(port=9999).port == 9999
    with pytest.raises(ConfigError, match="WISATA_ADMIN_TOKEN"):
        config.replace(host="0.0.0.0")


def test_log_level_number() -> None:
    assert Config.from_env({"WISATA_LOG_LEVEL": "warning"}).log_level_number == 30


def test_hybrid_weight_is_a_number() -> None:
    weight = Config.from_env({"WISATA_HYBRID_WEIGHT": "0.25"}).hybrid_weight
    assert isinstance(weight, float) and math.isclose(weight, 0.25)


# --- wisata-serve -------------------------------------------------------------------------------


def test_serve_reports_a_bad_variable_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WISATA_PORT", "eighty")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: WISATA_PORT")
    assert "Traceback" not in err


def test_serve_refuses_a_public_host_from_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WISATA_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("WISATA_HOST", raising=False)
    assert main(["--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "WISATA_ADMIN_TOKEN" in err


def test_serve_rejects_a_port_flag_out_of_range(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WISATA_PORT", raising=False)
    assert main(["--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--port" in err


@pytest.mark.parametrize(
    "url", ["postgresql://site:s3cr3t@db.example/", "mysql://site:s3cr3t@db.example/wisata"]
)
def test_a_bad_database_url_is_shown_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"WISATA_DATA": url})
    shown = str(caught.value)
    assert shown.startswith("WISATA_DATA=")
    assert "s3cr3t" not in shown
    assert "site:***@db.example" in shown
