"""Fitted models to verified bytes and back.

An artifact is an envelope, not a pickle::

    MAGIC | header length (4 bytes, big-endian) | header (UTF-8 JSON) | payload (cloudpickle)

The header is canonical JSON (sorted keys, no spaces, ASCII only) holding every field of
:class:`ArtifactHeader` plus ``header_sha256``, the sha256 of the canonical JSON of the other
fields; ``payload_sha256`` covers the payload. So a flipped byte anywhere is caught without a
key. With a key, ``signature`` is the HMAC-SHA256 of the canonical JSON of the header fields
without ``signature`` (which include ``payload_sha256``), so neither the model nor its facts can be
altered unnoticed.

Unpickling runs code, so :func:`load` unpickles only after :func:`verify` has checked the structure,
sizes, checksums, signature, format version and library versions from the header alone.
"""

import hashlib
import hmac
import io
import json
import logging
import math
import pickle
import platform
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import cloudpickle
import numpy
import scipy
import sklearn

from service.errors import (
    ArtifactError,
    ChecksumMismatch,
    IncompatibleVersions,
    MalformedHeader,
    NotAnArtifact,
    PayloadError,
    SignatureInvalid,
    SignatureMissing,
    TruncatedArtifact,
    UnsupportedFormat,
    WrongModel,
)

__all__ = [
    "FORMAT_VERSION",
    "LIBRARIES",
    "MAGIC",
    "MAX_HEADER_BYTES",
    "ArtifactError",
    "ArtifactHeader",
    "ChecksumMismatch",
    "DatasetSummary",
    "IncompatibleVersions",
    "MalformedHeader",
    "MetadataSummary",
    "NotAnArtifact",
    "PayloadError",
    "SignatureInvalid",
    "SignatureMissing",
    "TruncatedArtifact",
    "UnsupportedFormat",
    "WrongModel",
    "dump",
    "from_metadata",
    "library_versions",
    "load",
    "read_header",
    "to_metadata",
    "verify",
]

logger = logging.getLogger(__name__)

MAGIC = b"WISATA\x00ART"
FORMAT_VERSION: int = 1
MAX_HEADER_BYTES = 1 << 20
METADATA_LIMIT = 2048
# What to_metadata fills at most: the rest of S3's 2 KB is left for keys the store adds.
METADATA_BUDGET = 1792
LIBRARIES = ("python", "numpy", "scipy", "scikit-learn", "cloudpickle")
_REQUIRED_LIBRARIES = ("python", "numpy", "scikit-learn", "cloudpickle")
_MAJOR_MUST_MATCH = ("numpy", "scikit-learn")
_LENGTH = struct.Struct(">I")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"(\d+)\.(\d+)")
_DAMAGED = "it is damaged or not written by Wisata: restore a previous version or retrain"
_CUT = "the upload or download was interrupted: retry it, or restore a previous version or retrain"
_KEY_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_VALUE_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
_PARAM_VALUE_MAX = 64
_T = TypeVar("_T")
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class DatasetSummary:
    """What a model was trained on: a fingerprint of the canonical data and its counts."""

    fingerprint: str
    items: int
    users: int
    interactions: int


@dataclass(frozen=True)
class ArtifactHeader:
    """The facts an artifact records about its model, readable without unpickling."""

    format_version: int
    model: str
    trained_at: str
    libraries: dict[str, str]
    dataset: DatasetSummary
    training_seconds: float
    metrics: dict[str, float]
    parents: dict[str, str]
    payload_size: int
    payload_sha256: str
    signature: str | None
    params: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Return the header as plain JSON-ready data (the dataset as a nested dict)."""
        return asdict(self)


@dataclass(frozen=True)
class MetadataSummary:
    """The facts :func:`from_metadata` could read back; absent or unreadable ones are None/empty."""

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
    libraries: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    omitted: int = 0


def library_versions() -> dict[str, str]:
    """Return the versions of Python and of the libraries a pickled model depends on."""
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": str(scipy.__version__),
        "scikit-learn": str(sklearn.__version__),
        "cloudpickle": str(cloudpickle.__version__),
    }


def dump(
    model: object,
    *,
    model_name: str,
    dataset: DatasetSummary,
    training_seconds: float,
    metrics: Mapping[str, float] | None = None,
    parents: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    key: bytes | None = None,
    trained_at: datetime | None = None,
) -> bytes:
    """Pickle `model` into a verifiable artifact.

    Parameters
    ----------
    model : object
        Anything cloudpickle can pickle, typically a fitted recommender.
    model_name : str
        1 to 64 letters, digits, ``_``, ``.`` or ``-``; what :func:`load` can expect.
    dataset : DatasetSummary
        Fingerprint and counts of the training data.
    training_seconds : float
        Wall time of the fit.
    metrics, parents, params : Mapping, optional
        Evaluation metrics; sub-model name to the payload sha256 it was built with; hyperparameters.
    key : bytes, optional
        When given, the header is signed with HMAC-SHA256 under this key.
    trained_at : datetime, optional
        Timezone-aware time of training; now by default.

    Returns
    -------
    bytes
        The artifact.

    Raises
    ------
    ValueError
        If a fact cannot be recorded (bad name, naive time, non-finite number, empty key).
    """
    _check_key(key)
    when = trained_at if trained_at is not None else datetime.now(UTC)
    if when.utcoffset() is None:
        raise ValueError("trained_at must be timezone-aware (e.g. datetime.now(UTC))")
    payload: bytes = cloudpickle.dumps(model)
    header = ArtifactHeader(
        format_version=FORMAT_VERSION,
        model=model_name,
        trained_at=when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        libraries=library_versions(),
        dataset=dataset,
        training_seconds=float(training_seconds),
        metrics={str(k): float(v) for k, v in (metrics or {}).items()},
        parents={str(k): str(v) for k, v in (parents or {}).items()},
        payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        signature=None,
        params={str(k): str(v) for k, v in (params or {}).items()},
    )
    problem = _problem(header)
    if problem is not None:
        raise ValueError(f"cannot write artifact {model_name!r}: {problem}")
    if key is not None:
        header = replace(header, signature=_sign(header, key))
    body = header.to_dict()
    body["header_sha256"] = hashlib.sha256(_canonical(body)).hexdigest()
    raw = _canonical(body)
    return MAGIC + _LENGTH.pack(len(raw)) + raw + payload


def read_header(data: bytes) -> ArtifactHeader:
    """Read the header's structure (magic, length, JSON, fields) without checking or unpickling.

    The payload need not be present: the first bytes of an artifact are enough.

    Raises
    ------
    ArtifactError
        `TruncatedArtifact`, `NotAnArtifact`, `UnsupportedFormat` or `MalformedHeader`.
    """
    return _read(data)[0]


def verify(
    data: bytes, key: bytes | None = None, *, expected_model: str | None = None
) -> ArtifactHeader:
    """Check everything that can be checked without unpickling; return the header.

    Checks the structure, the header checksum, the signature (with `key`: a missing or wrong one is
    refused; without: a signed artifact is accepted with a warning), the payload size and sha256,
    the model name when `expected_model` is given, and the major versions of numpy and
    scikit-learn (a minor difference is only logged).

    Raises
    ------
    ArtifactError
        A subclass naming what is wrong and what to do.
    """
    _check_key(key)
    header, body, payload = _read(data)
    recorded = body.pop("header_sha256")
    if not hmac.compare_digest(hashlib.sha256(_canonical(body)).hexdigest(), str(recorded)):
        raise ChecksumMismatch(
            f"header of artifact {header.model!r} fails its checksum: {_DAMAGED}"
        )
    if key is not None:
        _check_signature(header, key)
    _check_payload(header, payload)
    if expected_model is not None and header.model != expected_model:
        raise WrongModel(
            f"artifact holds model {header.model!r} where {expected_model!r} was expected: "
            "check which object or file it was read from"
        )
    _check_versions(header)
    unchecked = key is None and header.signature is not None
    if unchecked and header.payload_sha256 not in _unchecked_signatures:
        _unchecked_signatures.add(header.payload_sha256)
        logger.warning(
            "artifact %r (sha256 %s) is signed but no key is configured, so its signature "
            "was not checked; set WISATA_ARTIFACT_KEY to check it",
            header.model,
            header.payload_sha256,
        )
    return header


def load(
    data: bytes,
    key: bytes | None = None,
    *,
    expected_model: str | None = None,
    moved: Mapping[str, str] | None = None,
) -> tuple[object, ArtifactHeader]:
    """Verify the artifact (see :func:`verify`), then unpickle its payload.

    Parameters
    ----------
    moved : mapping of str to str, optional
        Old module paths to new ones, for payloads pickled before their classes moved
        (``{"service.recommenders": "service.ml.recommenders"}`` also covers submodules).

    Returns
    -------
    tuple
        The model and the header.
    """
    header = verify(data, key, expected_model=expected_model)
    try:
        # A view, not a copy: payloads can be tens of megabytes.
        payload = memoryview(data)[len(data) - header.payload_size :]
        model = _Unpickler(io.BytesIO(payload), moved or {}).load()
    except Exception as e:  # unpickling can fail in any way the pickled classes allow
        raise PayloadError(
            f"artifact {header.model!r} passed its checks but could not be unpickled ({e!r}); "
            "the code it needs may have changed: retrain with this release"
        ) from e
    return model, header


def to_metadata(header: ArtifactHeader) -> dict[str, str]:
    """Return the header's facts as flat S3 user metadata.

    Keys are lower-case ASCII (``model``, ``format``, ``trained-at``, ``size``, ``sha256``,
    ``signature``, ``dataset-fingerprint``, ``items``, ``users``, ``interactions``,
    ``training-seconds``, one per library, ``parent-<name>-sha256``, ``metric-<name>``,
    ``param-<name>``); characters of names outside ``[a-z0-9_-]`` are written as ``.xx`` per UTF-8
    byte. Values are printable ASCII, others percent-encoded. The total stays within
    `METADATA_BUDGET` bytes: parents, metrics then params that do not fit are left out, long param
    values are cut, and ``omitted`` counts what was left out.
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
    """Read back what :func:`to_metadata` wrote, tolerating missing or unreadable entries."""
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
        libraries={lib: meta[lib] for lib in LIBRARIES if lib in meta},
        metrics=metrics,
        parents=parents,
        params=params,
        omitted=_number(meta.get("omitted"), int) or 0,
    )


class _Unpickler(pickle.Unpickler):
    """A plain unpickler (cloudpickle payloads are standard pickles) that follows moved modules."""

    def __init__(self, file: io.BytesIO, moved: Mapping[str, str]) -> None:
        super().__init__(file)
        self._moved = moved

    def find_class(self, module: str, name: str) -> Any:
        for old, new in self._moved.items():
            if module == old or module.startswith(old + "."):
                module = new + module[len(old) :]
                break
        return super().find_class(module, name)


# Payload digests of signed artifacts already reported as loaded without a key: warn once each.
_unchecked_signatures: set[str] = set()


def _read(data: bytes) -> tuple[ArtifactHeader, dict[str, Any], memoryview]:
    start = len(MAGIC) + _LENGTH.size
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        if data[:1] == b"\x80":
            raise NotAnArtifact(
                "bytes are a raw pickle, not a Wisata artifact: retrain to write one"
            )
        raise NotAnArtifact(f"bytes do not start with the Wisata artifact magic: {_DAMAGED}")
    if len(data) < start:
        raise TruncatedArtifact(f"artifact is cut short at {len(data)} bytes: {_CUT}")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if length > MAX_HEADER_BYTES:
        raise MalformedHeader(f"header length {length} exceeds {MAX_HEADER_BYTES}: {_DAMAGED}")
    if len(data) < start + length:
        raise TruncatedArtifact(
            f"artifact is cut short at {len(data)} bytes, inside its {length}-byte header: {_CUT}"
        )
    raw = data[start : start + length]
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise MalformedHeader(f"header is not valid JSON ({e}): {_DAMAGED}") from e
    if not isinstance(body, dict):
        raise MalformedHeader(f"header is JSON but not an object: {_DAMAGED}")
    version = _field(body, "format_version", int)
    if version != FORMAT_VERSION:
        raise UnsupportedFormat(
            f"artifact format version {version} is not supported (this release reads "
            f"{FORMAT_VERSION}): upgrade Wisata, or retrain to write it in this format"
        )
    if _canonical(body) != raw:
        raise MalformedHeader(f"header is not in canonical form (edited by hand?): {_DAMAGED}")
    header = _parse(body)
    problem = _problem(header)
    if problem is not None:
        raise MalformedHeader(f"header {problem}: {_DAMAGED}")
    return header, body, memoryview(data)[start + length :]


def _parse(body: dict[str, Any]) -> ArtifactHeader:
    expected = {f.name for f in fields(ArtifactHeader)} | {"header_sha256"}
    if unknown := sorted(set(body) - expected):
        raise MalformedHeader(f"header has unknown fields {unknown}: {_DAMAGED}")
    _field(body, "header_sha256", str)
    ds = _field(body, "dataset", dict)
    if unknown := sorted(set(ds) - {f.name for f in fields(DatasetSummary)}):
        raise MalformedHeader(f"header field 'dataset' has unknown fields {unknown}: {_DAMAGED}")
    if "signature" not in body:
        raise MalformedHeader(f"header field 'signature' is missing: {_DAMAGED}")
    signature = body["signature"]
    if signature is not None and not isinstance(signature, str):
        raise MalformedHeader(f"header field 'signature' should be str or null: {_DAMAGED}")
    return ArtifactHeader(
        format_version=_field(body, "format_version", int),
        model=_field(body, "model", str),
        trained_at=_field(body, "trained_at", str),
        libraries=_map(body, "libraries", str),
        dataset=DatasetSummary(
            fingerprint=_field(ds, "fingerprint", str, "dataset."),
            items=_field(ds, "items", int, "dataset."),
            users=_field(ds, "users", int, "dataset."),
            interactions=_field(ds, "interactions", int, "dataset."),
        ),
        training_seconds=_field(body, "training_seconds", float),
        metrics=_map(body, "metrics", float),
        parents=_map(body, "parents", str),
        payload_size=_field(body, "payload_size", int),
        payload_sha256=_field(body, "payload_sha256", str),
        signature=signature,
        params=_map(body, "params", str),
    )


def _field(body: Mapping[str, Any], name: str, kind: type[_T], prefix: str = "") -> _T:
    if name not in body:
        raise MalformedHeader(f"header field '{prefix}{name}' is missing: {_DAMAGED}")
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise MalformedHeader(
            f"header field '{prefix}{name}' should be {kind.__name__}, "
            f"not {type(value).__name__}: {_DAMAGED}"
        )
    return value


def _map(body: Mapping[str, Any], name: str, kind: type[_T]) -> dict[str, _T]:
    value: dict[str, Any] = _field(body, name, dict)
    for k in value:
        _field(value, k, kind, f"{name}.")
    return value


def _problem(h: ArtifactHeader) -> str | None:
    """Say what in `h` cannot be recorded or trusted as a fact, or None."""
    ds = h.dataset
    checks = [
        (_NAME.fullmatch(h.model), f"model name {h.model!r} must be 1-64 of [A-Za-z0-9_.-]"),
        (_is_utc(h.trained_at), f"trained_at {h.trained_at!r} is not an ISO 8601 UTC time"),
        (
            all(lib in h.libraries for lib in _REQUIRED_LIBRARIES)
            and all(_VERSION.match(v) for v in h.libraries.values()),
            f"libraries {h.libraries} lack one of {_REQUIRED_LIBRARIES} or a version number",
        ),
        (re.fullmatch(r"[!-~]{1,128}", ds.fingerprint), "dataset fingerprint is not 1-128 ASCII"),
        (min(ds.items, ds.users, ds.interactions) >= 0, "dataset counts must not be negative"),
        (math.isfinite(h.training_seconds) and h.training_seconds >= 0, "bad training_seconds"),
        (all(n and math.isfinite(v) for n, v in h.metrics.items()), f"bad metrics {h.metrics}"),
        (
            all(_NAME.fullmatch(n) and _SHA256.fullmatch(s) for n, s in h.parents.items()),
            f"parents {h.parents} must map model names to sha256 hex digests",
        ),
        (all(h.params), "a param has an empty name"),
        (h.payload_size >= 0 and _SHA256.fullmatch(h.payload_sha256), "bad payload size or sha256"),
        (h.signature is None or _SHA256.fullmatch(h.signature), "signature is not a hex digest"),
    ]
    return next((message for ok, message in checks if not ok), None)


def _check_signature(header: ArtifactHeader, key: bytes) -> None:
    if header.signature is None:
        raise SignatureMissing(
            f"artifact {header.model!r} is not signed but a key is configured: retrain it with "
            "WISATA_ARTIFACT_KEY set, or unset the key to accept unsigned artifacts"
        )
    if not hmac.compare_digest(_sign(header, key), header.signature):
        raise SignatureInvalid(
            f"signature of artifact {header.model!r} does not match: it was altered or signed "
            "with another key; set WISATA_ARTIFACT_KEY to the key it was signed with, or retrain"
        )


def _check_payload(header: ArtifactHeader, payload: memoryview) -> None:
    if len(payload) < header.payload_size:
        raise TruncatedArtifact(
            f"artifact {header.model!r} is cut short: payload has {len(payload)} of "
            f"{header.payload_size} bytes: {_CUT}"
        )
    if len(payload) > header.payload_size:
        raise ChecksumMismatch(
            f"artifact {header.model!r} has {len(payload) - header.payload_size} bytes after its "
            f"payload: {_DAMAGED}"
        )
    if not hmac.compare_digest(hashlib.sha256(payload).hexdigest(), header.payload_sha256):
        raise ChecksumMismatch(f"payload of artifact {header.model!r} fails its sha256: {_DAMAGED}")


def _check_versions(header: ArtifactHeader) -> None:
    running = library_versions()
    for lib in LIBRARIES:
        recorded, current = header.libraries.get(lib), running[lib]
        if recorded is None or _major_minor(recorded) == _major_minor(current):
            continue
        if lib in _MAJOR_MUST_MATCH and _major_minor(recorded)[0] != _major_minor(current)[0]:
            raise IncompatibleVersions(
                f"artifact {header.model!r} was written with {lib} {recorded} but {current} is "
                f"installed: retrain it with {lib} {current}, or install {lib} {recorded}"
            )
        logger.warning(
            "artifact %r was written with %s %s but %s is installed; loading it anyway",
            header.model,
            lib,
            recorded,
            current,
        )


def _major_minor(version: str) -> tuple[int, int]:
    match = _VERSION.match(version)
    return (int(match.group(1)), int(match.group(2))) if match else (-1, -1)


def _is_utc(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).utcoffset() == timedelta(0)
    except ValueError:
        return False


def _sign(header: ArtifactHeader, key: bytes) -> str:
    body = header.to_dict()
    del body["signature"]
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def _canonical(body: Mapping[str, object]) -> bytes:
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def _check_key(key: bytes | None) -> None:
    if key is not None and not key:
        raise ValueError("artifact key is empty: set WISATA_ARTIFACT_KEY to a secret, or unset it")


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
