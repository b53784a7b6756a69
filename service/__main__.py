"""``wisata-serve``: run the recommendation service.

Configuration comes from the ``WISATA_*`` variables (see :mod:`service.config`); ``--host`` and
``--port`` override ``WISATA_HOST`` and ``WISATA_PORT``. With ``WISATA_WORKERS`` above 1 this
process supervises that many serving processes on the port (:mod:`service.serving.supervisor`).
A bad value prints ``error: ...`` naming the variable and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from service.config import Config, ConfigError
from service.serving.supervisor import supervise

__all__ = ["main"]

logger = logging.getLogger("service")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wisata-serve",
        description="Serve Wisata recommendations from the stored model artifacts. "
        "Settings come from the WISATA_* environment variables (see the README).",
    )
    parser.add_argument("--host", help="address to listen on (overrides WISATA_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides WISATA_PORT)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service until SIGINT or SIGTERM; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments without the program name (default ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    try:
        config = Config.from_env()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    overrides = {"host": args.host, "port": args.port}
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        config = config.replace(**given)
    except ConfigError as e:
        flags = " and ".join(f"--{name}" for name in given)
        print(f"error: {e} ({flags} given on the command line)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level_number,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    debug = config.log_level_number <= logging.DEBUG
    host, port = config.host, config.port
    worker = os.environ.get("WISATA_WORKER_ID")
    if worker is None and config.worker_count > 1:
        logger.info("wisata-serve: %d workers on http://%s:%d", config.worker_count, host, port)
        return supervise(config.worker_count, list(argv or sys.argv[1:]), os.environ)
    return _serve(config, worker, debug)


def _serve(config: Config, worker: str | None, debug: bool) -> int:
    """Serve in this process (alone, or as worker ``worker`` of a group)."""
    # Imported here, not above: a supervisor never serves, and without the web, ML and storage
    # stacks it takes about 45 MB instead of 230 (docs/PERFORMANCE.md).
    from aiohttp import web

    from service.errors import DatabaseNotReady
    from service.web.app import create_app
    from service.web.dashboard import DashboardMissing
    from storage import StorageError

    host, port = config.host, config.port

    def announce(_: str) -> None:
        who = "wisata-serve" if worker is None else f"wisata-serve worker {worker}"
        logger.info("%s listening on http://%s:%d", who, host, port)

    try:
        app = create_app(config)
    except DashboardMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            print=announce,
            reuse_port=worker is not None,
            access_log=logging.getLogger("aiohttp.access") if debug else None,
        )
    except (OSError, StorageError) as e:
        # Cannot listen (port taken, address not local) or cannot open the store at all.
        print(f"error: cannot start on {host}:{port}: {e}", file=sys.stderr)
        return 1
    except DatabaseNotReady as e:  # the database answers but has no tables: wisata-db init
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
