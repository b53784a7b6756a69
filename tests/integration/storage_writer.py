"""A writer process for the SIGKILL test: publishes to one key, again and again, until killed.

Run as ``python -m tests.integration.storage_writer URL KEY SEED SIZE [--endpoint URL]``. It
opens the store, prints ``ready``, waits for ``go`` on stdin (exiting on anything else), then
puts payload ``(SEED, 0)``, ``(SEED, 1)`` ... with metadata naming the payload, so the test can
tell which write the key holds and check it is that write, complete.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sys

from storage import StoreSettings, open_store


def payload(seed: int, number: int, size: int) -> bytes:
    """The ``number``-th payload of writer ``seed``: the test rebuilds it to compare."""
    return random.Random(seed * 1_000_003 + number).randbytes(size)


def payload_metadata(seed: int, number: int, data: bytes) -> dict[str, str]:
    return {"seed": str(seed), "number": str(number), "sha256": hashlib.sha256(data).hexdigest()}


async def write_forever(url: str, endpoint: str | None, key: str, seed: int, size: int) -> None:
    async with open_store(url, StoreSettings(endpoint=endpoint)) as store:
        print("ready", flush=True)
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            return  # the test ended (stdin closed) without starting this writer
        number = 0
        while True:
            data = payload(seed, number, size)
            await store.put(key, data, payload_metadata(seed, number, data))
            number += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("seed", type=int)
    parser.add_argument("size", type=int)
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    asyncio.run(write_forever(args.url, args.endpoint, args.key, args.seed, args.size))


if __name__ == "__main__":
    main()
