"""``wisata-retrain --engine spark``: Spark reads, ALS trains, the service serves the artifacts.

Real components throughout: a local Spark session (``local[2]``, one for the test session),
the session's moto S3 server, a real ``python -m service`` process that hot-reloads what the
job publishes, and the real PostgreSQL server for the JDBC reader. The job runs in-process
(joining the test session's Spark) where it trains, as a subprocess where it must fail before
Spark starts.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from jobs import db, retrain, status
from service import artifacts
from service.errors import DatasetError
from service.ml import spark_engine
from service.ml.datasets import Dataset, load_dataset
from service.ml.recommenders import MODEL_NAMES, Collaborative
from service.sample_data import SAMPLE_DATA_DIR
from service.serving.registry import Registry, artifact_key
from storage import StoreSettings, open_store
from tests.postgres import PostgresServer
from tests.s3server import free_port
from tests.serving import ServeProcess
from tests.spark.processes import job_process

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

KEY = "spark-engine-test-key"
SPARK = ("--engine", "spark", "--spark-master", "local[2]")


def run(job: Callable[[Sequence[str] | None], int], *argv: str) -> int:
    return job(list(argv))


def same_data(left: Dataset, right: Dataset) -> None:
    """The two reads hold the same catalogue and the same ratings."""
    pd.testing.assert_frame_equal(left.items, right.items)

    def rows(dataset: Dataset) -> pd.DataFrame:
        frame = dataset.interactions.astype({"user_id": str, "item_id": str})
        ordered = frame.sort_values(["user_id", "item_id"], ignore_index=True)
        return ordered[["user_id", "item_id", "rating"]]

    pd.testing.assert_frame_equal(rows(left), rows(right))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("WISATA_")]:
        monkeypatch.delenv(name)
    env = {"WISATA_STORAGE": str(tmp_path / "models"), "WISATA_ARTIFACT_KEY": KEY}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


# --- training and serving -----------------------------------------------------------------------


async def test_a_spark_training_of_the_demo_data_is_hot_reloaded_and_served(
    spark: SparkSession,
    s3_endpoint: str,
    clean_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {
        **clean_env,
        "WISATA_STORAGE": f"s3://spark-{uuid.uuid4().hex[:12]}/models",
        "WISATA_S3_ENDPOINT": s3_endpoint,
        "WISATA_DATA": str(SAMPLE_DATA_DIR),
        "WISATA_RELOAD_INTERVAL": "0.5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with ServeProcess(env) as server:
        assert server.request("GET", "/readyz")[0] == 503  # nothing trained yet

        assert await asyncio.to_thread(run, retrain.main, *SPARK) == 0

        out = capsys.readouterr().out
        async with open_store(env["WISATA_STORAGE"], StoreSettings(endpoint=s3_endpoint)) as store:
            stored = {name: (await store.get(artifact_key(name)))[0] for name in MODEL_NAMES}
        headers = {
            name: artifacts.verify(data, KEY.encode(), expected_model=name)
            for name, data in stored.items()
        }
        for name in MODEL_NAMES:
            assert f"published {name}: NDCG@10" in out
        # The standard collaborative model, not a Spark type: the service needs no pyspark.
        model, _ = artifacts.load(stored["collaborative"], KEY.encode())
        assert type(model) is Collaborative
        assert model.item_factors_.shape[1] == 62
        assert headers["hybrid"].parents["collaborative"] == headers["collaborative"].payload_sha256

        deadline = time.monotonic() + 30
        while True:
            models = server.json("GET", "/api/ml/status")["models"]
            if all(models[n]["checksum"] == headers[n].payload_sha256 for n in MODEL_NAMES):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the service did not hot-reload the Spark models:\n{server.log()}")
            await asyncio.sleep(0.2)
        assert server.request("GET", "/readyz")[0] == 200
        for algorithm in ("collaborative", "hybrid"):
            answer = server.json(
                "GET", f"/api/frontend/recommendations?user_id=u001&algorithm={algorithm}&limit=5"
            )
            assert not answer["cold_start"] and len(answer["items"]) == 5
        rated = [{"item_id": "1", "rating": 5}, {"item_id": "2", "rating": 4}]
        folded = server.json(
            "POST", "/api/recommendations", {"ratings": rated, "algorithm": "collaborative"}
        )
        shown = {item["id"] for item in folded["items"]}
        assert shown and not shown & {"1", "2"}

    # The same verification a deployment's health check runs: every artifact loads and checks.
    assert await asyncio.to_thread(run, status.main) == 0


def test_the_spark_model_set_ranks_its_sub_models_in_the_hybrids_pass(spark: SparkSession) -> None:
    # As fit_model_set does: one pass over the users ranks the three models' shortlists.
    demo = load_dataset(SAMPLE_DATA_DIR)
    template = spark_engine.AlsCollaborative(rank=8)
    fitted = spark_engine.fit_model_set(demo, collaborative=template, hybrid_weight=0.6).models
    collaborative = fitted["collaborative"]
    assert type(collaborative) is Collaborative  # the standard model, holding the pass's tables
    for name in ("content_based", "collaborative"):
        model = fitted[name]
        alone = copy.copy(model)  # the same learned state, ranked by its own pass
        alone._build_shortlists()
        alone._build_neighbours()
        for table in ("shortlist_", "shortlist_scores_", "neighbours_", "neighbour_scores_"):
            ranked, expected = getattr(model, table), getattr(alone, table)
            assert ranked is not None and np.array_equal(ranked, expected), (name, table)
    # The hybrid kept its own tables when it was attached to the standard collaborative model.
    hybrid = fitted["hybrid"]
    assert hybrid.collaborative_ is collaborative and hybrid.shortlist_ is not None
    assert hybrid.neighbours_ is not None


def synthetic(folder: Path, users: int = 300, items: int = 80, seed: int = 3) -> Path:
    """A small seeded data set in the wisata layout: popular items, users with tastes."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    taste = rng.integers(0, 4, users)
    kinds = rng.integers(0, 4, items)
    popularity = 1.0 / np.arange(1, items + 1)
    rows = []
    for user in range(users):
        weights = popularity * np.where(kinds == taste[user], 4.0, 1.0)
        chosen = rng.choice(
            items, int(rng.integers(5, 25)), replace=False, p=weights / weights.sum()
        )
        for item in chosen:
            liked = kinds[item] == taste[user]
            rows.append(
                (f"s{user}", f"p{item}", float(rng.integers(3, 6) if liked else rng.integers(1, 4)))
            )
    pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(items)],
            "name": [f"Place {i}" for i in range(items)],
            "description": [f"kind{k} tempat {k} wisata" for k in kinds],
            "categories": [f"kind{k}" for k in kinds],
            "city": "Bandung",
            "price": 10.0,
        }
    ).to_csv(folder / "items.csv", index=False)
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]).to_csv(
        folder / "ratings.csv", index=False
    )
    return folder


async def test_a_synthetic_parquet_set_trains_on_spark_and_the_registry_serves_it(
    spark: SparkSession, tmp_path: Path, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = synthetic(tmp_path / "csv")
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    shutil.copy(csv / "items.csv", parquet / "items.csv")
    pd.read_csv(csv / "ratings.csv", dtype=str).to_parquet(parquet / "ratings.parquet")

    # Spark reads both forms into the dataset the driver's own reader makes of the CSV files.
    expected = load_dataset(csv)
    same_data(await asyncio.to_thread(spark_engine.read_dataset, spark, parquet), expected)
    same_data(await asyncio.to_thread(spark_engine.read_dataset, spark, csv), expected)

    monkeypatch.setenv("WISATA_DATA", str(parquet))
    monkeypatch.setenv("WISATA_HYBRID_WEIGHT", "0.6")
    assert await asyncio.to_thread(run, retrain.main, *SPARK, "--als-rank", "12") == 0

    async with open_store(clean_env["WISATA_STORAGE"]) as store:
        registry = Registry(store, key=KEY.encode())
        await registry.load_all()
        assert not registry.missing()
        model = registry.model("collaborative")
        assert model.item_factors_.shape == (12, 80)  # --als-rank 12 factors per item
        answer = model.recommend("s1", 5)
        assert not answer.cold_start and len(answer.items) == 5
        seen = set(expected.interactions.query("user_id == 's1'")["item_id"].astype(str))
        assert not {item for item, _ in answer.items} & seen
        hybrid = registry.model("hybrid").recommend_for_ratings([("p0", 5.0)], 5)
        assert len(hybrid.items) == 5


def test_spark_reads_the_site_database_over_jdbc_as_the_driver_does(
    spark: SparkSession, postgres: PostgresServer, clean_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    url = postgres.create_database()
    monkeypatch.setenv("WISATA_DATA", url)
    assert run(db.main, "init") == 0
    assert run(db.main, "import", str(SAMPLE_DATA_DIR)) == 0

    read = spark_engine.read_dataset(spark, url)
    expected = load_dataset(url)
    same_data(read, expected)
    assert read.layout == "database"
    assert read.rating_range == expected.rating_range
    assert read.watermark == expected.watermark


def test_a_bad_rating_row_is_refused_with_the_file_and_the_row(
    spark: SparkSession, tmp_path: Path
) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(SAMPLE_DATA_DIR / "items.csv", folder / "items.csv")
    ratings = pd.read_csv(SAMPLE_DATA_DIR / "ratings.csv", dtype=str)
    ratings.loc[5, "rating"] = "lima"
    ratings.to_csv(folder / "ratings.csv", index=False)

    with pytest.raises(DatasetError) as caught:
        spark_engine.read_dataset(spark, folder)
    message = str(caught.value)
    assert "ratings.csv" in message and "'lima'" in message and "1 rating row" in message


# --- what a user gets when the engine cannot run -------------------------------------------------


def test_an_unreachable_master_is_an_error_that_names_it(clean_env: dict[str, str]) -> None:
    master = f"spark://127.0.0.1:{free_port()}"
    env = {**os.environ, "WISATA_SPARK_MASTER": master}
    done = job_process(env, "--engine", "spark")
    assert done.returncode == 1, done.stderr
    assert f"the Spark master {master}" in done.stderr and "does not answer" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_java_the_job_says_what_to_install(clean_env: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's scripts, no java
    done = job_process(env, *SPARK)
    assert done.returncode == 2, done.stderr
    assert "needs Java" in done.stderr and "default-jre-headless" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_pyspark_the_job_says_to_install_the_extra(
    clean_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(spark_engine.session, "_pyspark_installed", lambda: False)
    assert run(retrain.main, *SPARK) == 2
    assert "pip install 'wisata[spark]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (("--spark-master", "local[2]"), "apply to --engine spark"),
        (("--als-rank", "64"), "apply to --engine spark"),
        (("--engine", "spark", "--als-rank", "0"), "not a rank"),
        (("--engine", "spark", "--spark-master", "http://spark:7077"), "not a Spark master URL"),
        (("--engine", "spark", "--spark-conf", "executor.memory"), "not a Spark setting"),
    ],
)
def test_bad_spark_options_are_usage_errors(
    argv: tuple[str, ...],
    said: str,
    clean_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(retrain.main, *argv) == 2
    assert said in capsys.readouterr().err
