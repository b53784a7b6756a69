"""``wisata-status``: are the stored models there, intact and consistent? READY or NOT READY.

For each model it reports whether its object exists, its size, version and metadata (what the
artifact says about itself: when and on what it was trained, its holdout metrics), then loads
it the way the service would, read-only (:func:`service.serving.inspection.inspect`: size,
sha256 and signature checked before anything is unpickled; the hybrid only with the very
sub-models it was built with) and lists its learned components and their shapes.

Exit statuses: 0 READY (all three models load and are consistent), 1 NOT READY or the store
cannot be reached, 2 bad usage or configuration. So it works as a container health check.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jobs.cli import ExitCode, error, open_config_store, run_job
from service.config import Config
from service.db import Database
from service.db.bulk import count_since
from service.errors import DatasetError
from service.ml.recommenders import MODEL_NAMES
from service.serving.inspection import inspect
from service.serving.journal import artifact_key
from service.serving.status import ModelStatus, StoredArtifact
from storage import ObjectInfo, StorageError

__all__ = ["build_parser", "collect", "main", "render"]


async def collect(config: Config) -> dict[str, Any]:
    """Look at the configured store and return the status report as JSON-ready data.

    The store is opened read-only: a missing bucket is reported, never created.

    Raises
    ------
    StorageError
        If the store cannot be reached or refuses the credentials.
    """
    async with open_config_store(config, writable=False) as store:
        await store.ensure_ready()
        found = await inspect(store, config.artifact_key)
        location = dataclasses.asdict(store.describe())
    missing = found.missing()
    unfinished = found.unfinished_publish
    report = {
        "ready": not missing,
        "store": location,
        "models": {name: _model(found.models[name], found.current[name]) for name in MODEL_NAMES},
        "problems": [f"{name}: {reason}" for name, reason in missing.items()],
        "unfinished_publish": None if unfinished is None else unfinished.model_dump(mode="json"),
    }
    if config.database is not None:
        report["database"] = await asyncio.to_thread(_database, config.database, found.models)
    return report


def _database(database: Database, models: dict[str, ModelStatus]) -> dict[str, Any]:
    """The data watermark of the stored models, and how many ratings arrived since."""
    marks = [
        (status.header or {}).get("dataset", {}).get("latest_rating_at")
        for status in models.values()
    ]
    known = [datetime.fromisoformat(mark) for mark in marks if mark]
    watermark = min(known) if known and len(known) == len(marks) else None
    report: dict[str, Any] = {"location": database.describe(), "watermark": None}
    if watermark is not None:
        report["watermark"] = watermark.isoformat()
    try:
        report["ratings_since"] = count_since(database, watermark)
        report["error"] = None
    except DatasetError as e:
        report["ratings_since"], report["error"] = None, str(e)
    return report


def _model(status: ModelStatus, info: ObjectInfo | None) -> dict[str, Any]:
    stored = StoredArtifact.of(info) if info is not None else None
    return {
        "state": status.state.value,
        "reason": status.reason,
        "exists": stored is not None,
        "object": stored.model_dump(mode="json") if stored is not None else None,
        "trained_at": status.trained_at or (stored.decoded.trained_at if stored else None),
        "checksum": status.checksum,
        "components": status.components,
        "metadata": stored.model_dump(mode="json")["decoded"] if stored is not None else None,
    }


def render(report: dict[str, Any]) -> str:
    """The report as text an operator reads at a glance."""
    lines = [f"store: {report['store']['location']}"]
    for name, model in report["models"].items():
        state = model["state"].upper().replace("_", " ")
        lines.append("")
        lines.append(f"{name}: {state}" + (f": {model['reason']}" if model["reason"] else ""))
        lines.extend(f"  {line}" for line in _details(model, name))
    lines.append("")
    unfinished = report["unfinished_publish"]
    if unfinished is not None:
        lines.append(
            f"UNFINISHED PUBLISH {unfinished['set_id'][:12]} (started {unfinished['started_at']}): "
            f"the versions before it are loaded for {', '.join(unfinished['held_back'])}; "
            "the next training publishes a whole set again"
        )
    database = report.get("database")
    if database is not None:
        since = database["watermark"] or "the start (a model was not trained from it)"
        count = database["ratings_since"]
        counted = f"{count} ratings since {since}" if count is not None else database["error"]
        lines.append(f"database {database['location']}: {counted}")
    if report["ready"]:
        lines.append("READY: the three models load, verify and belong together")
    else:
        lines.append("NOT READY: " + "; ".join(report["problems"]))
    return "\n".join(lines)


def _details(model: dict[str, Any], name: str) -> list[str]:
    info = model["object"]
    if info is None:
        return [f"object      {artifact_key(name)}: missing"]
    lines = [
        f"object      {info['key']}: {info['size']} bytes, version {info['version_id'] or '-'}, "
        f"modified {info['last_modified']}"
    ]
    meta = model["metadata"] or {}
    if model["trained_at"]:
        counts = ", ".join(
            f"{meta[field]} {field}"
            for field in ("interactions", "users", "items")
            if meta.get(field) is not None
        )
        lines.append(f"trained     {model['trained_at']}" + (f" on {counts}" if counts else ""))
    if model["checksum"]:
        lines.append(f"sha256      {model['checksum']}")
    if meta.get("metrics"):
        lines.append("metrics     " + _pairs(meta["metrics"], number=True))
    if meta.get("parents"):
        lines.append("built with  " + _pairs({k: v[:12] for k, v in meta["parents"].items()}))
    if meta.get("params"):
        lines.append("params      " + _pairs(meta["params"]))
    if meta.get("libraries"):
        lines.append("libraries   " + _pairs(meta["libraries"]))
    lines.extend(f"component   {part}: {shape}" for part, shape in model["components"].items())
    return lines


def _pairs(values: dict[str, Any], *, number: bool = False) -> str:
    return ", ".join(
        f"{key} {value:.4f}" if number else f"{key}={value}" for key, value in values.items()
    )


async def _run(config: Config, args: argparse.Namespace) -> int:
    try:
        report = await collect(config)
    except StorageError as e:
        message = f"cannot read the store: {e}"
        if args.json:
            print(json.dumps({"ready": False, "error": message}, indent=2))
        error(message)
        return ExitCode.ERROR
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    if report["ready"]:
        return ExitCode.OK
    return ExitCode.ERROR


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``wisata-status`` (its flags and their checks)."""
    parser = argparse.ArgumentParser(
        prog="wisata-status",
        description="Check the stored models: each one's object, metadata and a verified load. "
        "Settings come from the WISATA_* variables, as for the service.",
        epilog="Exit status: 0 READY, 1 NOT READY or storage unreachable, 2 bad usage or "
        "configuration.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wisata-status``; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    """
    return run_job(build_parser(), list(argv) if argv is not None else None, _run)


if __name__ == "__main__":
    sys.exit(main())
