"""The optional Spark stack (docker/docker-compose.spark.yml), read as Compose reads it.

No Docker engine runs it here: what is checked is the wiring a user relies on. The default
stack (docker-compose.yml) and the Docker stage's tests do not see these services.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SPARK_FILE = ROOT / "docker" / "docker-compose.spark.yml"


def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(SPARK_FILE.read_text())["services"]
    return found


def test_every_spark_service_is_in_the_spark_profile_only() -> None:
    assert {name: s["profiles"] for name, s in services().items()} == {
        "spark-master": ["spark"],
        "spark-worker": ["spark"],
        "retrain-spark": ["spark"],
    }


def test_the_scheduler_trains_on_the_master_with_the_stacks_settings() -> None:
    spark = services()
    assert "spark://spark-master:7077" in spark["spark-worker"]["command"]
    retrain = spark["retrain-spark"]
    base = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())["services"]
    # The same store, database and keys as the stack's own scheduler.
    sklearn = base["retrain"]["environment"]
    for name, value in sklearn.items():
        assert retrain["environment"][name] == value, name
    assert retrain["command"][:3] == ["wisata-retrain", "--engine", "spark"]
    assert retrain["environment"]["WISATA_SPARK_MASTER"] == "spark://spark-master:7077"
    assert (ROOT / retrain["build"]["dockerfile"]).is_file()


def test_the_clusters_spark_is_the_pinned_pyspark() -> None:
    spark = services()
    image = spark["spark-master"]["image"]
    assert image == spark["spark-worker"]["image"] and image.startswith("spark:")
    version = image.split(":", 1)[1].split("-", 1)[0]
    assert f"pyspark=={version}\n" in (ROOT / "constraints.txt").read_text()
