"""The S3 user-metadata codec: a header's facts as flat object metadata, and read back.

An object's metadata can be listed without downloading the object, so the facts an operator or a
job needs (which model, trained when, on what, how good) are copied there when it is published.
"""

from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict

from service.artifacts.header import ArtifactHeader
from service.artifacts.versions import LIBRARIES

__all__ = ["METADATA_BUDGET", "MetadataSummary", "from_metadata", "to_metadata"]

# What to_metadata fills at most: the rest of S3's 2 KB is left for keys the store adds.
METADATA_BUDGET = 1792
_KEY_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_VALUE_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
_PARAM_VALUE_MAX = 64
_N = TypeVar("_N", int, float)


class MetadataSummary(BaseModel):
    """The facts :func:`from_metadata` could read back; absent or unreadable ones are None/empty."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = None
    format_version: int | None = None
    trained_at: str | None = None
    sha256: str | None = None
    size: int | None = None
    signature: str | None = None
    dataset_fingerprint: str | None = None
    items: int | None = None
    users: int | None = None
    interactions: int | None = None
    training_seconds: float | None = None
    rating_scale: tuple[float, float] | None = None
    data_watermark: str | None = None
    data_rows: int | None = None
    libraries: dict[str, str] = {}
    metrics: dict[str, float] = {}
    parents: dict[str, str] = {}
    params: dict[str, str] = {}
    omitted: int = 0


def to_metadata(header: ArtifactHeader) -> dict[str, str]:
    """Return the header's facts as flat S3 user metadata.

    Keys are lower-case ASCII (``model``, ``format``, ``trained-at``, ``size``, ``sha256``,
    ``signature``, ``dataset-fingerprint``, ``items``, ``users``, ``interactions``, ``training-
    seconds``, ``rating-scale``, ``data-watermark``, ``data-rows``, one per library,
    ``parent-<name>-sha256``, ``metric-<name>``, ``param-<name>``); characters of names outside
    ``[a-z0-9_-]`` are written as ``.xx`` per UTF-8 byte. Values are printable ASCII, others
    percent-encoded. The total stays within `METADATA_BUDGET` bytes: parents, metrics then
    params that do not fit are left out, long param values are cut, and ``omitted`` counts what
    was left out.

    Parameters
    ----------
    header : ArtifactHeader
        The header of the artifact being published.

    Returns
    -------
    dict of str to str
        The metadata, ready for the store.
    """
    ds = header.dataset
    meta = {
        "model": header.model,
        "format": str(header.format_version),
        "trained-at": header.trained_at,
        "size": str(header.payload_size),
        "sha256": header.payload_sha256,
        "dataset-fingerprint": ds.fingerprint,
        "items": str(ds.items),
        "users": str(ds.users),
        "interactions": str(ds.interactions),
        "training-seconds": repr(header.training_seconds),
    }
    if header.signature is not None:
        meta["signature"] = header.signature
    if ds.rating_scale is not None:
        meta["rating-scale"] = f"{ds.rating_scale[0]!r}..{ds.rating_scale[1]!r}"
    if ds.latest_rating_at is not None:
        meta["data-watermark"] = ds.latest_rating_at
    if ds.rows is not None:
        meta["data-rows"] = str(ds.rows)
    meta.update({lib: header.libraries[lib] for lib in LIBRARIES if lib in header.libraries})
    meta = {k: quote(v, safe=_VALUE_SAFE) for k, v in meta.items()}
    optional = [(f"parent-{_key(n)}-sha256", s) for n, s in sorted(header.parents.items())]
    optional += [(f"metric-{_key(n)}", repr(v)) for n, v in sorted(header.metrics.items())]
    optional += [(f"param-{_key(n)}", _cut(v)) for n, v in sorted(header.params.items())]
    omitted = 0
    room = METADATA_BUDGET - len("omitted") - 4 - sum(len(k) + len(v) for k, v in meta.items())
    for k, v in optional:
        value = quote(v, safe=_VALUE_SAFE)
        if len(k) + len(value) <= room:
            meta[k] = value
            room -= len(k) + len(value)
        else:
            omitted += 1
    if omitted:
        meta["omitted"] = str(omitted)
    return meta


def from_metadata(metadata: Mapping[str, str]) -> MetadataSummary:
    """Read back what :func:`to_metadata` wrote, tolerating missing or unreadable entries.

    Parameters
    ----------
    metadata : mapping of str to str
        An object's user metadata, keys in any case.

    Returns
    -------
    MetadataSummary
        The facts found; what is absent or unreadable is None (or empty).
    """
    meta = {k.lower(): unquote(v) for k, v in metadata.items()}
    metrics: dict[str, float] = {}
    parents: dict[str, str] = {}
    params: dict[str, str] = {}
    for k, v in meta.items():
        if k.startswith("metric-") and (number := _number(v, float)) is not None:
            metrics[_unkey(k[len("metric-") :])] = number
        elif k.startswith("parent-") and k.endswith("-sha256") and len(k) > len("parent--sha256"):
            parents[_unkey(k[len("parent-") : -len("-sha256")])] = v
        elif k.startswith("param-"):
            params[_unkey(k[len("param-") :])] = v
    return MetadataSummary(
        model=meta.get("model"),
        format_version=_number(meta.get("format"), int),
        trained_at=meta.get("trained-at"),
        sha256=meta.get("sha256"),
        size=_number(meta.get("size"), int),
        signature=meta.get("signature"),
        dataset_fingerprint=meta.get("dataset-fingerprint"),
        items=_number(meta.get("items"), int),
        users=_number(meta.get("users"), int),
        interactions=_number(meta.get("interactions"), int),
        training_seconds=_number(meta.get("training-seconds"), float),
        rating_scale=_scale(meta.get("rating-scale")),
        data_watermark=meta.get("data-watermark"),
        data_rows=_number(meta.get("data-rows"), int),
        libraries={lib: meta[lib] for lib in LIBRARIES if lib in meta},
        metrics=metrics,
        parents=parents,
        params=params,
        omitted=_number(meta.get("omitted"), int) or 0,
    )


def _scale(text: str | None) -> tuple[float, float] | None:
    low, _, high = (text or "").partition("..")
    bounds = _number(low, float), _number(high, float)
    return None if bounds[0] is None or bounds[1] is None else (bounds[0], bounds[1])


def _key(name: str) -> str:
    return "".join(c if c in _KEY_SAFE else "".join(f".{b:02x}" for b in c.encode()) for c in name)


def _unkey(part: str) -> str:
    return unquote(part.replace(".", "%"))


def _cut(value: str) -> str:
    return value if len(value) <= _PARAM_VALUE_MAX else value[: _PARAM_VALUE_MAX - 3] + "..."


def _number(text: str | None, kind: Callable[[str], _N]) -> _N | None:
    try:
        return kind(text) if text is not None else None
    except ValueError:
        return None
