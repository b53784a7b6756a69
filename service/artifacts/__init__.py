"""Fitted models to verified bytes and back: the public API of the artifact package.

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

The modules: :mod:`~service.artifacts.header` defines the header (one pydantic schema for
reading, checking and writing it), :mod:`~service.artifacts.envelope` writes, checks and loads
the bytes, :mod:`~service.artifacts.metadata` copies the header's facts to and from S3 user
metadata, and :mod:`~service.artifacts.versions` knows the library versions a payload needs. The
errors are :mod:`service.errors`' and are re-exported here.
"""

from service.artifacts.envelope import (
    FORMAT_VERSION,
    MAGIC,
    MAX_HEADER_BYTES,
    dump,
    load,
    read_header,
    verify,
)
from service.artifacts.header import ArtifactHeader, DatasetSummary
from service.artifacts.metadata import MetadataSummary, from_metadata, to_metadata
from service.artifacts.versions import LIBRARIES, library_versions
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
