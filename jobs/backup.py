"""``wisata-backup``: copy the published artifacts aside, list the copies, put one back.

Bucket versioning is the first line of defence (``POST /api/ml/models/{name}/rollback``); a
backup is a named, complete set of the three artifacts that survives lifecycle rules, a deleted
bucket (with ``--to`` another bucket) or a bad week of retraining.

Layout: ``<backups>/<NAME>/<model>.pkl`` for each model present, then ``<backups>/<NAME>/
backup.json``, the manifest, written last: a backup without its manifest was interrupted and is
never restored. ``<backups>`` is ``backups/`` inside ``WISATA_STORAGE`` or the store given with
``--to``; ``NAME`` is the UTC time of the backup, e.g. ``2026-11-27T031500Z``. Each copy keeps the
artifact's metadata (model, trained-at, sha256, metrics...), so it reads in the MinIO console as
the original does.

A restore reads a complete backup, verifies every artifact (size, sha256, signature, that the
hybrid was built with the backed-up sub-models) before changing anything, then publishes them
through :class:`service.serving.publisher.Publisher`, the path a training uses (one set, each
artifact through a temporary key, then copied into place). A running service loads them at
its next reload.

Exit statuses: 0 done, 1 error (nothing to back up, no such backup, a damaged artifact),
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobs.cli import ExitCode, JobError, error, open_config_store, run_job
from service import artifacts
from service.artifacts import ArtifactError, ArtifactHeader
from service.config import Config
from service.ml.recommenders import MODEL_NAMES, Hybrid
from service.serving.journal import artifact_key, survey
from service.serving.publisher import Publisher
from storage import ArtifactStore, NotFound, ObjectInfo, validate_key
from storage.keys import MAX_METADATA_BYTES

__all__ = [
    "MANIFEST",
    "BackupPlace",
    "build_parser",
    "create_backup",
    "list_backups",
    "main",
    "restore_backup",
]

logger = logging.getLogger(__name__)

MANIFEST = "backup.json"
"""Name of the manifest object, written last in each backup."""
DEFAULT_BASE = "backups/"
"""Where backups go inside ``WISATA_STORAGE`` when no ``--to`` is given."""
_FORMAT = 1


@dataclass(frozen=True)
class BackupPlace:
    """A store and the key prefix under which its backups live (``""`` or ending in ``/``)."""

    store: ArtifactStore
    base: str

    def key(self, name: str, key: str) -> str:
        """The key of ``key`` inside backup ``name``."""
        return f"{self.base}{name}/{key}"


def _backup_name(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H%M%SZ")


async def _unused_name(place: BackupPlace, now: datetime) -> str:
    """A name from the time, with a suffix if a backup of the same second exists."""
    stem = _backup_name(now)
    taken = {_split(place, info.key)[0] for info in await place.store.list(place.base)}
    name, number = stem, 1
    while name in taken:
        number += 1
        name = f"{stem}-{number}"
    return name


def _split(place: BackupPlace, key: str) -> tuple[str, str]:
    """(backup name, key inside the backup) of a listed key, or ("", "") if not a backup key."""
    name, _, rest = key[len(place.base) :].partition("/")
    return (name, rest) if rest and "/" not in rest else ("", "")


def _with(metadata: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """``metadata`` plus ``extra`` when all of it fits S3's metadata limit, else unchanged."""
    merged = {**metadata, **extra}
    size = sum(len(k) + len(v) for k, v in merged.items())
    return merged if size <= MAX_METADATA_BYTES else dict(metadata)


async def create_backup(
    source: ArtifactStore, place: BackupPlace, key: bytes | None, *, now: datetime | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Copy the current artifacts of ``source`` into a new backup at ``place``.

    Where a publish is unfinished, the versions readers serve (those before it) are copied.

    Artifacts that fail verification are copied all the same (a backup copies what is there)
    and marked ``verified: false`` in the manifest, with a warning.

    Returns
    -------
    tuple
        The backup's name and its manifest entries.

    Raises
    ------
    JobError
        If the store holds no artifact at all.
    """
    name = await _unused_name(place, now or datetime.now(UTC))
    entries: list[dict[str, Any]] = []
    found = await survey(source)
    for model in MODEL_NAMES:
        version_id = found.served_version(model)
        if version_id is not None:
            logger.warning("%s: backing up the version served before an unfinished publish", model)
        try:
            data, info = await source.get(artifact_key(model), version_id)
        except NotFound:
            logger.warning("%s: no artifact to back up", model)
            continue
        problem = _problem(data, key, model)
        if problem is not None:
            logger.warning("%s: backing up an artifact that does not verify: %s", model, problem)
        extra = {"backup-of": info.key, "backup-name": name}
        if info.version_id:
            extra["backup-of-version"] = info.version_id
        copy = await place.store.put(
            place.key(name, info.key), data, _with(dict(info.metadata), extra)
        )
        entries.append(_entry(model, info, copy, problem))
        logger.info("%s: copied to %s", model, copy.key)
    if not entries:
        raise JobError(
            f"nothing to back up: {source.describe().location} holds no model artifact; "
            "train first (wisata-retrain)"
        )
    manifest = {
        "format": _FORMAT,
        "name": name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source.describe().location,
        "artifacts": entries,
    }
    body = json.dumps(manifest, indent=2).encode("utf-8")
    await place.store.put(
        place.key(name, MANIFEST),
        body,
        {"backup-name": name, "artifacts": str(len(entries)), "content": "wisata backup manifest"},
    )
    return name, entries


def _entry(model: str, info: ObjectInfo, copy: ObjectInfo, problem: str | None) -> dict[str, Any]:
    summary = artifacts.from_metadata(info.metadata)
    return {
        "model": model,
        "key": info.key,
        "size": info.size,
        "sha256": summary.sha256,
        "trained_at": summary.trained_at,
        "source_version_id": info.version_id,
        "source_etag": info.etag,
        "etag": copy.etag,
        "verified": problem is None,
        "problem": problem,
    }


def _problem(data: bytes, key: bytes | None, model: str) -> str | None:
    try:
        artifacts.verify(data, key, expected_model=model)
    except ArtifactError as e:
        return f"{type(e).__name__}: {e}"
    return None


async def list_backups(place: BackupPlace) -> list[dict[str, Any]]:
    """Every backup at ``place``, oldest first: name, complete or not, and what it holds."""
    found: dict[str, dict[str, Any]] = {}
    for info in await place.store.list(place.base):
        name, inner = _split(place, info.key)
        if not name:
            continue
        backup = found.setdefault(name, {"name": name, "complete": False, "artifacts": []})
        if inner == MANIFEST:
            backup["complete"] = True
            backup["created_at"] = info.last_modified.isoformat(timespec="seconds")
        elif inner.endswith(".pkl"):
            summary = artifacts.from_metadata(info.metadata)
            backup["artifacts"].append(
                {
                    "model": summary.model or inner.removesuffix(".pkl"),
                    "size": info.size,
                    "trained_at": summary.trained_at,
                    "interactions": summary.interactions,
                }
            )
    order = {model: position for position, model in enumerate(MODEL_NAMES)}
    for backup in found.values():
        backup["artifacts"].sort(key=lambda a: order.get(a["model"], len(order)))
    return [found[name] for name in sorted(found)]


async def restore_backup(
    place: BackupPlace, name: str, target: ArtifactStore, key: bytes | None
) -> list[str]:
    """Verify every artifact of backup ``name``, then publish them to ``target``.

    Returns
    -------
    list of str
        The restored models, in publishing order.

    Raises
    ------
    JobError
        If there is no complete backup ``name``, an artifact fails verification or differs
        from the manifest, or the hybrid was not built with the backed-up sub-models. Nothing is
        published then.
    """
    manifest = await _manifest(place, name)
    checked: dict[str, tuple[bytes, ArtifactHeader]] = {}
    for entry in manifest["artifacts"]:
        model = str(entry["model"])
        data, _ = await place.store.get(place.key(name, artifact_key(model)))
        try:
            header = artifacts.verify(data, key, expected_model=model)
        except ArtifactError as e:
            raise JobError(
                f"backup {name}: {model} does not verify ({type(e).__name__}: {e}); "
                "nothing was restored; choose another backup (wisata-backup --list)"
            ) from e
        if entry.get("sha256") and header.payload_sha256 != entry["sha256"]:
            raise JobError(
                f"backup {name}: {model} holds sha256 {header.payload_sha256[:12]} but the "
                f"manifest records {str(entry['sha256'])[:12]}; nothing was restored"
            )
        checked[model] = (data, header)
    _check_hybrid(name, checked)
    result = await Publisher(target).publish({model: data for model, (data, _) in checked.items()})
    if result.error is not None:
        raise JobError(
            f"restoring backup {name} failed for {', '.join(checked)}: {result.error}; "
            "run the restore again once the store is reachable"
        )
    return [model for model in MODEL_NAMES if model in checked]


async def _manifest(place: BackupPlace, name: str) -> dict[str, Any]:
    try:
        validate_key(name)
    except ValueError as e:
        raise JobError(f"{name!r} is not a backup name; see wisata-backup --list") from e
    try:
        raw, _ = await place.store.get(place.key(name, MANIFEST))
    except NotFound:
        listed = await place.store.list(place.key(name, ""))
        if listed:
            raise JobError(
                f"backup {name} is incomplete (it has no {MANIFEST}: the backup was "
                "interrupted); choose another one (wisata-backup --list)"
            ) from None
        raise JobError(f"there is no backup {name}; see wisata-backup --list") from None
    try:
        manifest: dict[str, Any] = json.loads(raw)
        manifest["artifacts"] = [dict(entry) for entry in manifest["artifacts"]]
    except (ValueError, KeyError, TypeError) as e:
        raise JobError(f"the manifest of backup {name} is not readable ({e})") from e
    return manifest


def _check_hybrid(name: str, checked: dict[str, tuple[bytes, ArtifactHeader]]) -> None:
    if Hybrid.name not in checked:
        return
    header = checked[Hybrid.name][1]
    for parent, wanted in header.parents.items():
        if parent in checked and checked[parent][1].payload_sha256 != wanted:
            raise JobError(
                f"backup {name}: its hybrid was built with {parent} {wanted[:12]}, but the "
                f"backed-up {parent} is {checked[parent][1].payload_sha256[:12]}; the set does "
                "not belong together, so nothing was restored"
            )


def _render_list(backups: list[dict[str, Any]], where: str) -> str:
    if not backups:
        return f"no backups in {where}"
    lines = [f"backups in {where}:"]
    for backup in backups:
        state = "" if backup["complete"] else "  INCOMPLETE (interrupted; cannot be restored)"
        models = ", ".join(
            f"{a['model']} (trained {a['trained_at'] or '?'}, {a['size']} bytes)"
            for a in backup["artifacts"]
        )
        lines.append(f"  {backup['name']}: {models or 'no artifacts'}{state}")
    return "\n".join(lines)


async def _run(config: Config, args: argparse.Namespace) -> int:
    async with open_config_store(config) as store:
        await store.ensure_ready()
        if args.to is None:
            return await _act(config, args, store, BackupPlace(store, DEFAULT_BASE))
        try:
            target = open_config_store(config, args.to)
        except ValueError as e:
            error(f"--to: {e}")
            return ExitCode.USAGE
        async with target as other:
            await other.ensure_ready()
            return await _act(config, args, store, BackupPlace(other, ""))


async def _act(
    config: Config, args: argparse.Namespace, store: ArtifactStore, place: BackupPlace
) -> int:
    where = place.store.describe().location + (f" under {place.base}" if place.base else "")
    if args.list:
        backups = await list_backups(place)
        print(json.dumps(backups, indent=2) if args.json else _render_list(backups, where))
        return ExitCode.OK
    if args.restore is not None:
        restored = await restore_backup(place, args.restore, store, config.artifact_key)
        print(f"restored backup {args.restore}: {', '.join(restored)}")
        if len(restored) < len(MODEL_NAMES):
            logger.warning(
                "backup %s held only %s; the other models were left as they are",
                args.restore,
                ", ".join(restored),
            )
        return ExitCode.OK
    name, entries = await create_backup(store, place, config.artifact_key)
    print(f"backup {name} in {where}: {', '.join(entry['model'] for entry in entries)}")
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``wisata-backup`` (its flags and their checks)."""
    parser = argparse.ArgumentParser(
        prog="wisata-backup",
        description="Back up the published artifacts of WISATA_STORAGE to a dated backup, list "
        "the backups, or restore one. Settings come from the WISATA_* variables.",
        epilog="Exit status: 0 done, 1 error, 2 bad usage or configuration.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list the backups")
    action.add_argument(
        "--restore",
        metavar="NAME",
        help="verify backup NAME and publish it as the current artifacts",
    )
    parser.add_argument(
        "--to",
        metavar="URL",
        help="where the backups are kept: another store such as s3://other-bucket/prefix "
        "(same endpoint and credentials); default backups/ inside WISATA_STORAGE",
    )
    parser.add_argument("--json", action="store_true", help="with --list: print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wisata-backup``; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    """
    return run_job(build_parser(), list(argv) if argv is not None else None, _run)


if __name__ == "__main__":
    sys.exit(main())
