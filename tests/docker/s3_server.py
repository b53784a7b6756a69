"""The S3 server of the Docker stage, in the container that stands in for MinIO.

``serve``: moto's S3 server on 127.0.0.1 (the container shares the host's network). MinIO keeps
its objects in its volume across a restart; moto keeps them in memory, so this server writes its
buckets to a snapshot file in the volume when it is stopped (SIGTERM, what ``docker stop``
sends) and reads them back when it starts. The stage stops and starts this container to show
that the service degrades and recovers; without the snapshot the bucket would come back empty.

``init``: the one-shot that stands in for minio-init: the bucket, with versioning on. Safe to
run again.

It runs in the container with moto (and so boto3) installed, nothing of Wisata's.
"""

from __future__ import annotations

import argparse
import copyreg
import pickle
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.s3.utils import _VersionedKeyStore
from moto.server import ThreadedMotoServer


def _key_store(items: list[tuple[str, list[Any]]]) -> _VersionedKeyStore:
    store = _VersionedKeyStore()
    for key, versions in items:
        store.setlist(key, versions)
    return store


def _reduce_key_store(store: _VersionedKeyStore) -> tuple[Any, ...]:
    # A bucket's keys map each name to its list of versions; pickling it as the plain dict it
    # subclasses would keep one version of each key.
    return _key_store, ([(key, store.getlist(key)) for key in dict.keys(store)],)


copyreg.pickle(_VersionedKeyStore, _reduce_key_store)


def _buckets() -> dict[str, Any]:
    buckets: dict[str, Any] = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets
    return buckets


def serve(port: int, state: Path) -> int:
    if state.exists():
        _buckets().update(pickle.loads(state.read_bytes()))
        print(f"s3_server: {len(_buckets())} bucket(s) restored from {state}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"s3_server: listening on http://127.0.0.1:{port}", flush=True)
    stop.wait()
    server.stop()
    partial = state.with_name(state.name + ".partial")
    partial.write_bytes(pickle.dumps(_buckets()))
    partial.replace(state)
    print(f"s3_server: {len(_buckets())} bucket(s) saved to {state}", flush=True)
    return 0


def init(endpoint: str, bucket: str, *, attempts: int = 30) -> int:
    client = boto3.client("s3", endpoint_url=endpoint)
    for attempt in range(attempts):
        try:
            if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
                client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
            break
        except Exception as error:  # the server may still be starting
            if attempt == attempts - 1:
                print(f"s3_server init: {endpoint} failed: {error}", file=sys.stderr)
                return 1
            time.sleep(1)
    status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    print(f"s3_server init: bucket {bucket} at {endpoint}, versioning {status}", flush=True)
    return 0 if status == "Enabled" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="moto's S3 server, its buckets kept in --state")
    serving.add_argument("--port", type=int, required=True)
    serving.add_argument("--state", type=Path, required=True)
    creating = commands.add_parser("init", help="create the bucket and turn on its versioning")
    creating.add_argument("--endpoint", required=True)
    creating.add_argument("--bucket", required=True)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.port, args.state)
    return init(args.endpoint, args.bucket)


if __name__ == "__main__":
    sys.exit(main())
