"""How training, memory, artifacts, startup and latency grow with the data.

Usage: python -m bench.scale [--sizes 10k:2k:200k 100k:20k:5M 200k:60k:20M] [--seed 0]
       [--users 2000] [--visitors 300] [--memory-limit-gb 20] [--json FILE]
       [--hybrid-weight auto|W] [--engine sklearn|spark] [--spark-master local[2]]
       [--spark-conf KEY=VALUE ...] [--als-rank N] [--collaborative-only]

Each size (users:items:interactions) runs in three fresh processes, one after the other:

1. generate: a seeded synthetic dataset (``bench.synthetic``) written as ``wisata`` CSV files;
2. train: what a training worker does, ``load_dataset`` on that folder then ``build_artifacts``
   (content, collaborative, and the hybrid with its shipped ``content_weight="auto"``, whose
   search refits the collaborative model twice, or a fixed ``--hybrid-weight``); the artifacts
   are published to a local store in a temporary folder;
3. serve: ``Registry.load_all()`` on that store (startup to ready), then ``recommend`` for random
   known users and ``recommend_for_ratings`` for random visitors (fold-in, 3 to 20 random
   ratings each) on every model, called in process (no HTTP), one at a time.

Peak RSS is ``ru_maxrss`` of each process (its children included, though none are started), so
the training figure includes the dataset as read from the CSV files, as in a worker.

With ``--engine spark`` the train step is ``wisata-retrain --engine spark``'s: Spark reads the
ratings CSV (``service.ml.spark_engine.read_dataset``), ALS fits the collaborative model (and
the hybrid's validation refits) on ``--spark-master`` at the engine's rank or ``--als-rank``,
content and the hybrid are built on the driver, then ``build_artifacts`` serialises them. The
driver's peak RSS is the Python process's; the JVM's (``VmHWM`` of the Spark gateway process,
read before the session stops; in local mode it holds the executors too) is reported beside it.

A step that fails (out of memory under ``--memory-limit-gb``, which keeps a too-large size from
starving the rest of the machine, or any error) is reported as such and the next size runs.
Prints markdown tables; ``--json`` also keeps the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from service.ml.model_set import HybridWeight
    from service.ml.recommenders import Recommender

GB = 1e9
MB = 1e6
_SUFFIXES = {"k": 1_000, "m": 1_000_000}
DEFAULT_SIZES = ("10k:2k:200k", "100k:20k:5M", "200k:60k:20M")


def parse_size(text: str) -> tuple[int, int, int]:
    """``"100k:20k:5M"`` -> ``(100000, 20000, 5000000)``."""
    parts = text.lower().split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"size {text!r} is not USERS:ITEMS:INTERACTIONS")
    values = []
    for part in parts:
        scale = _SUFFIXES.get(part[-1:], 1)
        number = part[:-1] if part[-1:] in _SUFFIXES else part
        try:
            values.append(int(float(number) * scale))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} in size {text!r} is not a number") from None
    return values[0], values[1], values[2]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss() -> int:
    """Peak resident set size in bytes of this process or any child it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * 1024  # Linux reports kilobytes


# --- the generating and training processes -----------------------------------------------------


def make_data(size: tuple[int, int, int], seed: int, data_dir: str) -> dict[str, Any]:
    """Generate a dataset and write it as CSV files; return the figures."""
    from bench.synthetic import SyntheticSpec, generate, write_wisata

    start = time.perf_counter()
    dataset = generate(SyntheticSpec(*size, seed=seed))
    generated = time.perf_counter() - start
    start = time.perf_counter()
    write_wisata(dataset, data_dir)
    return {
        "generate_s": generated,
        "write_s": time.perf_counter() - start,
        "csv_bytes": sum(f.stat().st_size for f in Path(data_dir).iterdir()),
        "rss_peak_generate": peak_rss(),
    }


def train(data_dir: str, store_dir: str, weight: HybridWeight = "auto") -> dict[str, Any]:
    """Read the CSV files and train the three models as a training worker does; publish them.

    ``build_artifacts(path)`` is what the worker calls; reading first and passing the dataset
    does the same work and times the read apart.
    """
    from service.ml.datasets import load_dataset
    from service.serving.trainer import build_artifacts

    start = time.perf_counter()
    dataset = load_dataset(data_dir)
    read = time.perf_counter() - start
    rss_read = peak_rss()
    start = time.perf_counter()
    result = build_artifacts(dataset, hybrid_weight=weight)
    build = time.perf_counter() - start
    rss_train = peak_rss()
    cpu = cpu_seconds()
    asyncio.run(_publish(store_dir, result.artifacts))
    return {
        "engine": "sklearn",
        "cpu_s": cpu,
        "users": dataset.n_users,
        "items": dataset.n_items,
        "interactions": dataset.n_interactions,
        "read_s": read,
        "build_s": build,
        "train_total_s": read + build,
        "fit_s": result.seconds,
        "weights": artifacts_weights(result.artifacts),
        "artifact_bytes": {name: len(data) for name, data in result.artifacts.items()},
        "rss_after_read": rss_read,
        "rss_peak_train": rss_train,
    }


def train_spark(
    data_dir: str,
    store_dir: str,
    master: str,
    conf: list[str],
    weight: HybridWeight = "auto",
    rank: int | None = None,
) -> dict[str, Any]:
    """The train step on Spark: read with Spark, fit ALS there, build the rest on the driver."""
    from service.ml import spark_engine
    from service.ml.spark_engine import AlsCollaborative, SparkSettings
    from service.serving.building import build_artifacts

    settings = SparkSettings(master, tuple((k, v) for k, _, v in (c.partition("=") for c in conf)))
    start = time.perf_counter()
    with spark_engine.spark_session(settings) as spark:
        session_s = time.perf_counter() - start
        start = time.perf_counter()
        dataset = spark_engine.read_dataset(spark, data_dir)
        read = time.perf_counter() - start
        rss_read = peak_rss()
        start = time.perf_counter()
        template = AlsCollaborative() if rank is None else AlsCollaborative(rank=rank)
        fitted = spark_engine.fit_model_set(dataset, collaborative=template, hybrid_weight=weight)
        result = build_artifacts(dataset, hybrid_weight=weight, fitted=fitted)
        build = time.perf_counter() - start
        rss_train = peak_rss()
        jvm = jvm_peak_rss(spark)
        cpu = cpu_seconds() + jvm_cpu_seconds(spark)
    asyncio.run(_publish(store_dir, result.artifacts))
    return {
        "engine": f"spark {master}, ALS rank {template.rank}",
        "cpu_s": cpu,
        "users": dataset.n_users,
        "items": dataset.n_items,
        "interactions": dataset.n_interactions,
        "session_s": session_s,
        "read_s": read,
        "build_s": build,
        "train_total_s": read + build,
        "fit_s": result.seconds,
        "weights": artifacts_weights(result.artifacts),
        "artifact_bytes": {name: len(data) for name, data in result.artifacts.items()},
        "rss_after_read": rss_read,
        "rss_peak_train": rss_train,
        "jvm_peak_rss": jvm,
    }


def fit_spark_collaborative(
    data_dir: str, master: str, conf: list[str], rank: int | None = None
) -> dict[str, Any]:
    """Only the distributed part: Spark reads the ratings, ALS fits them (no shortlists)."""
    from service.ml import spark_engine
    from service.ml.spark_engine import AlsCollaborative, SparkSettings

    settings = SparkSettings(master, tuple((k, v) for k, _, v in (c.partition("=") for c in conf)))
    with spark_engine.spark_session(settings) as spark:
        start = time.perf_counter()
        dataset = spark_engine.read_dataset(spark, data_dir)
        read = time.perf_counter() - start
        start = time.perf_counter()
        als = (
            AlsCollaborative(shortlist=0)
            if rank is None
            else AlsCollaborative(shortlist=0, rank=rank)
        )
        als.fit(dataset)
        fit = time.perf_counter() - start
        return {
            "engine": f"spark {master}, ALS rank {als.rank} only",
            "interactions": dataset.n_interactions,
            "read_s": read,
            "als_fit_s": fit,
            "rss_peak_train": peak_rss(),
            "jvm_peak_rss": jvm_peak_rss(spark),
            "cpu_s": cpu_seconds() + jvm_cpu_seconds(spark),
        }


def jvm_peak_rss(spark: Any) -> int:
    """Peak RSS in bytes of the Spark gateway JVM (0 when it cannot be read)."""
    try:
        pid = spark.sparkContext._gateway.proc.pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (AttributeError, OSError, ValueError):
        pass
    return 0


def jvm_cpu_seconds(spark: Any) -> float:
    """User + system CPU seconds of the Spark gateway JVM so far (0 when unreadable)."""
    try:
        pid = spark.sparkContext._gateway.proc.pid
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (AttributeError, OSError, ValueError, IndexError):
        return 0.0


def artifacts_weights(built: dict[str, bytes]) -> str:
    """The hybrid's chosen (content, collaborative) weights, from its artifact header."""
    from service import artifacts

    header = artifacts.read_header(built["hybrid"]) if "hybrid" in built else None
    return header.params.get("weights", "") if header else ""


async def _publish(store_dir: str, built: dict[str, bytes]) -> None:
    from service import artifacts
    from service.serving.registry import artifact_key
    from storage import open_store

    async with open_store(store_dir) as store:
        await store.ensure_ready()
        for name, data in built.items():
            metadata = artifacts.to_metadata(artifacts.read_header(data))
            await store.put(artifact_key(name), data, metadata)


# --- the serving process ----------------------------------------------------------------------


def serve(store_dir: str, seed: int, users: int, visitors: int) -> dict[str, Any]:
    """Time startup to ready, then recommendation latency of every model; return the figures."""
    return asyncio.run(_serve(store_dir, seed, users, visitors))


async def _serve(store_dir: str, seed: int, users: int, visitors: int) -> dict[str, Any]:
    start = time.perf_counter()
    from service.ml.recommenders import MODEL_NAMES  # imported here so the imports are timed
    from service.serving.registry import Registry
    from storage import open_store

    imports = time.perf_counter() - start
    rss_before = peak_rss()
    async with open_store(store_dir) as store:
        start = time.perf_counter()
        registry = Registry(store)
        await registry.load_all()
        ready = time.perf_counter() - start
        missing = registry.missing()
        if missing:
            raise RuntimeError(f"models not ready after load_all: {missing}")
        rss_ready = peak_rss()
        latency = {
            name: _latency(registry.model(name), seed, users, visitors) for name in MODEL_NAMES
        }
    return {
        "ready_s": ready,
        "import_s": imports,
        "rss_before_load": rss_before,
        "rss_ready": rss_ready,
        "rss_peak_serve": peak_rss(),
        "latency_ms": latency,
    }


def _latency(model: Recommender, seed: int, users: int, visitors: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    known = [str(u) for u in rng.choice(np.asarray(model.user_ids_), users, replace=True)]
    n_items = len(model.catalogue_)
    item_ids = np.asarray(model.catalogue_.ids)
    baskets = [
        [
            (str(item_ids[i]), float(rng.integers(1, 6)))
            for i in rng.choice(n_items, min(n_items, int(rng.integers(3, 21))), replace=False)
        ]
        for _ in range(visitors)
    ]
    for user in known[:20]:  # build what is built on first use (the user index's hash table)
        model.recommend(user, n=10)
    known_ms = _timed(lambda user: model.recommend(user, n=10), known)
    fold_in_ms = _timed(lambda ratings: model.recommend_for_ratings(ratings, n=10), baskets)
    return {
        "known_p50": float(np.percentile(known_ms, 50)),
        "known_p99": float(np.percentile(known_ms, 99)),
        "known_max": float(np.max(known_ms)),
        "fold_in_p50": float(np.percentile(fold_in_ms, 50)),
        "fold_in_p99": float(np.percentile(fold_in_ms, 99)),
    }


def _timed(call: Callable[[Any], object], arguments: Sequence[Any]) -> list[float]:
    times = []
    for argument in arguments:
        start = time.perf_counter()
        call(argument)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


# --- the driver -------------------------------------------------------------------------------


def _child(
    args: list[str], memory_limit_gb: float, engine: list[str]
) -> tuple[dict[str, Any] | None, str]:
    """Run ``python -m bench.scale --child ...``; its JSON figures, or None and why it failed."""
    command = [
        sys.executable, "-m", "bench.scale", "--memory-limit-gb", str(memory_limit_gb), *engine
    ]  # fmt: skip
    done = subprocess.run([*command, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        if done.returncode < 0:
            tail = f"killed by signal {-done.returncode} ({tail})"
        return None, tail
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def measure(
    size: tuple[int, int, int],
    seed: int,
    users: int,
    visitors: int,
    limit: float,
    engine: Sequence[str] = (),
) -> dict[str, Any]:
    """Generate, train and serve one size, each step in a fresh process.

    Returns the figures of the steps that ran, with ``error`` naming the step that failed.
    """
    label = ":".join(str(v) for v in size)
    figures: dict[str, Any] = {"size": size, "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="wisata-scale-") as folder:
        data_dir, store_dir = str(Path(folder) / "data"), str(Path(folder) / "models")
        sampling = ["--seed", str(seed), "--users", str(users), "--visitors", str(visitors)]
        steps = [
            ("generating", ["generate", label, data_dir, *sampling]),
            ("training", ["train", data_dir, store_dir]),
            ("serving", ["serve", store_dir, "-", *sampling]),
        ]
        if "--collaborative-only" in engine:
            steps = steps[:2]  # nothing is published to serve
        for step, arguments in steps:
            start = time.perf_counter()
            found, error = _child(["--child", *arguments], limit, list(engine))
            if found is None:
                figures["error"] = (
                    f"{step} failed after {time.perf_counter() - start:.0f} s: {error}"
                )
                return figures
            figures.update(found)
    return figures


def _figure(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def _megabytes(size: int) -> str:
    return f"{size / MB:.1f}" if size >= 0.1 * MB else f"{size / MB:.3f}"


def _label(result: dict[str, Any]) -> str:
    return " x ".join(f"{v:,}" for v in result["size"])


def markdown(results: list[dict[str, Any]]) -> str:
    """Two tables (one row per size; one per size and model) and the failures, if any."""
    lines = [
        "| users x items x interactions | engine | generate s | read s | train all s (read + "
        "fit + serialise) | train CPU s | peak RSS training GB (driver; JVM) | artifacts MB "
        "| startup-to-ready s | RSS serving GB | hybrid weights |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if "train_total_s" not in r:
            continue
        ready = f"{r['ready_s']:.2f} (+{r['import_s']:.1f} imports)" if "ready_s" in r else "-"
        serving = _figure(r["rss_ready"] / GB, 2) if "rss_ready" in r else "-"
        rss = _figure(r["rss_peak_train"] / GB, 2)
        if r.get("jvm_peak_rss"):
            rss += f"; {_figure(r['jvm_peak_rss'] / GB, 2)}"
        lines.append(
            f"| {_label(r)} | {r.get('engine', 'sklearn')} | {_figure(r['generate_s'])} "
            f"| {_figure(r['read_s'])} | {_figure(r['train_total_s'])} "
            f"| {_figure(r['cpu_s']) if 'cpu_s' in r else '-'} | {rss} "
            f"| {_figure(sum(r['artifact_bytes'].values()) / MB)} | {ready} | {serving} "
            f"| {r['weights']} |"
        )
    lines += [
        "",
        "| users x items x interactions | model | fit s | artifact MB | recommend p50 / p99 ms "
        "| fold-in p50 / p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for name, seconds in r.get("fit_s", {}).items():
            lat = r.get("latency_ms", {}).get(name)
            known = f"{lat['known_p50']:.2f} / {lat['known_p99']:.2f}" if lat else "-"
            fold = f"{lat['fold_in_p50']:.2f} / {lat['fold_in_p99']:.2f}" if lat else "-"
            lines.append(
                f"| {_label(r)} | {name} | {_figure(seconds)} "
                f"| {_megabytes(r['artifact_bytes'][name])} | {known} | {fold} |"
            )
    lines.append("")
    lines += [
        f"- {_label(r)}, {r['engine']}: read {r['read_s']:.1f} s, ALS fit {r['als_fit_s']:.1f} s, "
        f"CPU {r['cpu_s']:.0f} s, peak RSS driver {r['rss_peak_train'] / GB:.2f} GB, "
        f"JVM {r['jvm_peak_rss'] / GB:.2f} GB"
        for r in results
        if "als_fit_s" in r
    ]
    lines += [f"- {_label(r)}: {r['error']}" for r in results if "error" in r]
    return "\n".join(lines).rstrip() + "\n"


def _weight(text: str) -> HybridWeight:
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: write auto or a number from 0 to 1")
    return value


def _limit_memory(gigabytes: float) -> None:
    # RLIMIT_DATA covers the heap and anonymous mappings (numpy's large arrays): past it an
    # allocation raises MemoryError in this process instead of the kernel's OOM killer picking
    # some process on the machine.
    limit = int(gigabytes * GB)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=2000, help="known users timed per model")
    parser.add_argument("--visitors", type=int, default=300, help="fold-in visitors per model")
    parser.add_argument("--memory-limit-gb", type=float, default=20.0)
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument("--engine", choices=("sklearn", "spark"), default="sklearn")
    parser.add_argument(
        "--collaborative-only",
        action="store_true",
        help="with --engine spark: time only Spark's read and the ALS fit (no serve step)",
    )
    parser.add_argument("--spark-master", default="local[2]", help="with --engine spark")
    parser.add_argument(
        "--spark-conf", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    parser.add_argument(
        "--hybrid-weight",
        type=_weight,
        default="auto",
        help="the hybrid's content weight: auto (the shipped search, two validation refits of "
        "the collaborative model) or a number in [0, 1] (no refits)",
    )
    parser.add_argument(
        "--als-rank", type=int, help="with --engine spark: ALS rank (default: the engine's)"
    )
    parser.add_argument("--child", nargs=3, metavar=("ROLE", "A", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _limit_memory(args.memory_limit_gb)
        role, first, second = args.child
        if role == "generate":
            figures = make_data(parse_size(first), args.seed, second)
        elif role == "train" and args.collaborative_only:
            figures = fit_spark_collaborative(
                first, args.spark_master, args.spark_conf, args.als_rank
            )
        elif role == "train" and args.engine == "spark":
            figures = train_spark(
                first, second, args.spark_master, args.spark_conf, args.hybrid_weight,
                args.als_rank,
            )  # fmt: skip
        elif role == "train":
            figures = train(first, second, args.hybrid_weight)
        else:
            figures = serve(first, args.seed, args.users, args.visitors)
        print(json.dumps(figures))
        return
    sizes = [parse_size(text) for text in args.sizes]
    print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    results = []
    for size in sizes:
        start = time.perf_counter()
        engine = ["--engine", args.engine, "--spark-master", args.spark_master]
        engine += ["--collaborative-only"] if args.collaborative_only else []
        engine += [f"--spark-conf={c}" for c in args.spark_conf]
        engine += ["--hybrid-weight", str(args.hybrid_weight)]
        engine += ["--als-rank", str(args.als_rank)] if args.als_rank else []
        results.append(
            measure(size, args.seed, args.users, args.visitors, args.memory_limit_gb, engine)
        )
        print(f"{size}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
