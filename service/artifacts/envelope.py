"""The artifact envelope: bytes from a fitted model and back, signed, checked, then unpickled.

The layout and what each digest covers are described in :mod:`service.artifacts`. This module
writes (:func:`dump`), reads (:func:`read_header`), checks (:func:`verify`) and loads
(:func:`load`) it; the header's fields and rules are :mod:`service.artifacts.header`'s.
"""

import dataclasses
import hashlib
import hmac
import io
import json
import logging
import pickle
import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import cloudpickle
from pydantic import ValidationError

from service.artifacts.header import ArtifactHeader, DatasetSummary, parse, problem
from service.artifacts.versions import check_versions, library_versions
from service.errors import (
    ChecksumMismatch,
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
    "MAGIC",
    "MAX_HEADER_BYTES",
    "dump",
    "load",
    "read_header",
    "verify",
]

logger = logging.getLogger(__name__)

MAGIC = b"WISATA\x00ART"
FORMAT_VERSION: int = 1
MAX_HEADER_BYTES = 1 << 20
_LENGTH = struct.Struct(">I")
_DIGEST = "header_sha256"
_T = TypeVar("_T")
_DAMAGED = "it is damaged or not written by Wisata: restore a previous version or retrain"
_CUT = "the upload or download was interrupted: retry it, or restore a previous version or retrain"


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
    try:
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
    except ValidationError as e:
        raise ValueError(f"cannot write artifact {model_name!r}: {problem(e)}") from e
    if key is not None:
        header = dataclasses.replace(header, signature=_sign(header, key))
    body = header.to_dict()
    body[_DIGEST] = hashlib.sha256(_canonical(body)).hexdigest()
    raw = _canonical(body)
    return MAGIC + _LENGTH.pack(len(raw)) + raw + payload


def read_header(data: bytes) -> ArtifactHeader:
    """Read the header's structure (magic, length, JSON, fields) without checking or unpickling.

    The payload need not be present: the first bytes of an artifact are enough.

    Parameters
    ----------
    data : bytes
        An artifact, or its first bytes up to the end of its header.

    Returns
    -------
    ArtifactHeader
        The header, its fields checked but not its digests or signature.

    Raises
    ------
    ArtifactError
        `TruncatedArtifact`, `NotAnArtifact`, `UnsupportedFormat` or `MalformedHeader`.
    """
    return _read(data).header


def verify(
    data: bytes, key: bytes | None = None, *, expected_model: str | None = None
) -> ArtifactHeader:
    """Check everything that can be checked without unpickling; return the header.

    Checks the structure, the header checksum, the signature (with `key`: a missing or wrong one is
    refused; without: a signed artifact is accepted with a warning), the payload size and sha256,
    the model name when `expected_model` is given, and the major versions of numpy and
    scikit-learn (a minor difference is only logged).

    Parameters
    ----------
    data : bytes
        The whole artifact.
    key : bytes, optional
        The HMAC key artifacts are signed with; None accepts unsigned ones.
    expected_model : str, optional
        The model name the artifact must hold.

    Returns
    -------
    ArtifactHeader
        The header of an artifact that passed every check.

    Raises
    ------
    ArtifactError
        A subclass naming what is wrong and what to do.
    """
    _check_key(key)
    read = _read(data)
    header = read.header
    if not hmac.compare_digest(hashlib.sha256(read.facts).hexdigest(), read.digest):
        raise ChecksumMismatch(
            f"header of artifact {header.model!r} fails its checksum: {_DAMAGED}"
        )
    if key is not None:
        _check_signature(header, key)
    _check_payload(header, read.payload)
    if expected_model is not None and header.model != expected_model:
        raise WrongModel(
            f"artifact holds model {header.model!r} where {expected_model!r} was expected: "
            "check which object or file it was read from"
        )
    check_versions(header.model, header.libraries)
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
    data : bytes
        The whole artifact.
    key : bytes, optional
        As for :func:`verify`.
    expected_model : str, optional
        As for :func:`verify`.
    moved : mapping of str to str, optional
        Old module paths to new ones, for payloads pickled before their classes moved
        (``{"service.recommenders": "service.ml.recommenders"}`` also covers submodules).

    Returns
    -------
    tuple
        The model and the header.

    Raises
    ------
    ArtifactError
        As for :func:`verify`, or `PayloadError` if the checked payload cannot be unpickled.
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


@dataclasses.dataclass(frozen=True)
class _Read:
    """An artifact taken apart: its header, the bytes its digest covers, and the rest."""

    header: ArtifactHeader
    facts: bytes
    digest: str
    payload: memoryview


def _read(data: bytes) -> _Read:
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
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise MalformedHeader(f"header is not valid JSON ({e}): {_DAMAGED}") from e
    if not isinstance(body, dict):
        raise MalformedHeader(f"header is JSON but not an object: {_DAMAGED}")
    version = _envelope_field(body, "format_version", int)
    if version != FORMAT_VERSION:
        raise UnsupportedFormat(
            f"artifact format version {version} is not supported (this release reads "
            f"{FORMAT_VERSION}): upgrade Wisata, or retrain to write it in this format"
        )
    if _canonical(body) != raw:
        raise MalformedHeader(f"header is not in canonical form (edited by hand?): {_DAMAGED}")
    digest = _envelope_field(body, _DIGEST, str)
    del body[_DIGEST]
    facts = _canonical(body)
    try:
        header = parse(facts)
    except ValidationError as e:
        raise MalformedHeader(f"header {problem(e)}: {_DAMAGED}") from e
    return _Read(header, facts, digest, memoryview(data)[start + length :])


def _no_constant(name: str) -> None:
    # Canonical JSON has no NaN or Infinity: a header holding one was not written by dump().
    raise ValueError(f"{name} is not a JSON number")


def _envelope_field(body: Mapping[str, Any], name: str, kind: type[_T]) -> _T:
    # The version says which header schema applies and the digest seals the other fields, so
    # these two are read before any schema is: a header of another version may have other fields.
    if name not in body:
        raise MalformedHeader(f"header field '{name}' is missing: {_DAMAGED}")
    value = body[name]
    if type(value) is not kind:  # not isinstance: True is an int, but no version
        raise MalformedHeader(
            f"header field '{name}' should be {kind.__name__}, not {type(value).__name__}: "
            f"{_DAMAGED}"
        )
    return value


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
