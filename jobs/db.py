"""``wisata-db``: create the site database's schema, load a dataset folder into it, export it.

The database is ``WISATA_DATA`` (``sqlite:///path`` or ``postgresql://...``), as for the service.

``wisata-db init [--seed DIR]``
    Creates the tables and indexes that are missing (the DDL is in the README); safe to run again.
    With ``--seed``, a database without any rating yet also gets the folder's data (what a
    stack's init step runs: the first start has a catalogue, a later one keeps the site's data).
``wisata-db import DIR``
    Loads a folder in any of the three layouts (wisata, Kaggle tourism, MovieLens) in bulk: items
    are inserted or replaced, ratings likewise, one row per (user, item), each stamped with the
    time of the import. Rows that cannot be loaded are reported with their file, line and
    reason; the rest go in, in one transaction.
``wisata-db export DIR``
    Writes the database as a folder in the wisata layout (``items.csv`` and ``ratings.csv``).

Exit statuses: 0 done, 1 error (database unreachable, folder unreadable), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobs.cli import ExitCode, JobError, run_job
from service.config import Config
from service.db import Database, is_database
from service.db.bulk import count_since
from service.errors import DatasetError
from service.serving.imports import export_folder, import_folder, init

__all__ = ["build_parser", "export_folder", "import_folder", "main"]

logger = logging.getLogger(__name__)


def database_of(config: Config) -> Database:
    """The database ``WISATA_DATA`` names.

    Raises
    ------
    JobError
        If ``WISATA_DATA`` is a folder.
    """
    if not is_database(config.data):
        raise JobError(
            f"WISATA_DATA={config.data} is a folder, not a database; set it to a database URL, "
            "e.g. sqlite:///./data/wisata.db or postgresql://wisata@localhost:5432/wisata"
        )
    return Database.parse(config.data)


async def _run(config: Config, args: argparse.Namespace) -> int:
    database = database_of(config)
    try:
        if args.command == "init":
            created = await asyncio.to_thread(init, database)
            what = f"created {', '.join(created)}" if created else "every table was already there"
            print(f"schema ready in {database.describe()}: {what}")
            if args.seed is not None:
                if await asyncio.to_thread(count_since, database, None):
                    print("not seeded: the database already holds ratings")
                else:
                    report = await asyncio.to_thread(import_folder, database, Path(args.seed))
                    print(_render_import(report))
        elif args.command == "import":
            report = await asyncio.to_thread(import_folder, database, Path(args.folder))
            print(_render_import(report))
        else:
            report = await _export(database, Path(args.folder))
            print(f"exported {report['items']} items and {report['ratings']} ratings to "
                  f"{report['folder']}")  # fmt: skip
    except DatasetError as e:
        raise JobError(str(e)) from e
    return ExitCode.OK


async def _export(database: Database, folder: Path) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(export_folder, database, folder)
    except OSError as e:
        at = f" at {e.filename}" if e.filename not in (None, str(folder)) else ""
        raise JobError(
            f"cannot write the export to {folder} ({e.strerror or e}{at}); "
            "give a folder that can be created and written"
        ) from e


def _render_import(report: dict[str, Any]) -> str:
    lines = [
        f"imported {report['folder']} ({report['layout']} layout) into {report['database']}: "
        f"{report['items']} items, {report['ratings']} ratings"
    ]
    if report["merged_duplicates"]:
        lines.append(
            f"merged {report['merged_duplicates']} duplicate user/item ratings into their mean"
        )
    if report["rejected"]:
        lines.append(f"rejected {report['rejected']} rows:")
        lines.extend(f"  {line}" for line in report["rejections"])
        hidden = report["rejected"] - len(report["rejections"])
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``wisata-db`` (its commands and their arguments)."""
    parser = argparse.ArgumentParser(
        prog="wisata-db",
        description="Manage the site database WISATA_DATA names: create its schema, import a "
        "dataset folder, export it as a folder.",
        epilog="Exit status: 0 done, 1 error, 2 bad usage or configuration.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    setup = commands.add_parser("init", help="create the tables (idempotent)")
    setup.add_argument(
        "--seed",
        metavar="DIR",
        help="also import this folder when the database holds no rating yet",
    )
    load = commands.add_parser("import", help="load a dataset folder (any layout) in bulk")
    load.add_argument("folder", metavar="DIR", help="wisata, Kaggle tourism or MovieLens folder")
    out = commands.add_parser("export", help="write the database as a wisata-layout folder")
    out.add_argument("folder", metavar="DIR", help="where to write items.csv and ratings.csv")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wisata-db``; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    """
    return run_job(build_parser(), list(argv) if argv is not None else None, _run)


if __name__ == "__main__":
    sys.exit(main())
