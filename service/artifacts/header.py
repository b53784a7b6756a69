"""The artifact header: the facts an artifact records, defined once as pydantic dataclasses.

:class:`ArtifactHeader` is the one source of the header's schema: reading it from JSON
(:func:`parse`), the rules every fact must satisfy (its field validators) and the JSON written
(:meth:`ArtifactHeader.to_dict`) all derive from it. :func:`problem` puts what pydantic found
wrong into the one sentence an artifact error carries.
"""

import dataclasses
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import NoneType, UnionType
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails, PydanticKnownError

from service.artifacts.versions import REQUIRED_LIBRARIES, VERSION_NUMBER

__all__ = [
    "ArtifactHeader",
    "DatasetSummary",
    "parse",
    "problem",
]

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PRINTABLE = re.compile(r"[!-~]{1,128}")
# Strict: a header is read as written, never coerced ("60" is no count); unknown fields are refused.
_CONFIG = ConfigDict(strict=True, extra="forbid")
# How pydantic reports an unknown field: of a dataclass (the header), and of a model.
_UNKNOWN = frozenset({"unexpected_keyword_argument", "extra_forbidden"})


def _no_integer(value: object) -> object:
    # JSON has one kind of number and pydantic reads 1 as 1.0 even when strict. Wisata writes every
    # float with its point, so an integer was not written by it, and reading it as a float would
    # make the header's canonical JSON differ from the bytes that were signed.
    if isinstance(value, int):
        raise PydanticKnownError("float_type")
    return value


_Float = Annotated[float, BeforeValidator(_no_integer)]


def _is_utc(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).utcoffset() == timedelta(0)
    except ValueError:
        return False


@dataclass(frozen=True, config=_CONFIG)
class DatasetSummary:
    """What a model was trained on: a fingerprint of the canonical data and its counts."""

    fingerprint: str
    items: int
    users: int
    interactions: int
    # Recorded since the ratings live in a database; a header written before has neither.
    rating_scale: tuple[_Float, _Float] | None = None
    """The lowest and highest rating of the data: what the service accepts as feedback."""
    latest_rating_at: str | None = None
    """The data watermark: when the newest rating the model saw was made (ISO 8601 UTC)."""
    rows: int | None = None
    """The rating rows read when the watermark was taken (before duplicates were merged)."""

    @field_validator("fingerprint")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not _PRINTABLE.fullmatch(value):
            raise ValueError("dataset fingerprint is not 1-128 ASCII")
        return value

    @field_validator("items", "users", "interactions", "rows")
    @classmethod
    def _count(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("dataset counts must not be negative")
        return value

    @field_validator("rating_scale")
    @classmethod
    def _scale(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not (math.isfinite(value[0]) and value[0] <= value[1] < math.inf):
            raise ValueError(f"rating scale {value} is not a finite range low..high")
        return value

    @field_validator("latest_rating_at")
    @classmethod
    def _watermark(cls, value: str | None) -> str | None:
        if value is not None and not _is_utc(value):
            raise ValueError(f"latest_rating_at {value!r} is not an ISO 8601 UTC time")
        return value


@dataclass(frozen=True, config=_CONFIG)
class ArtifactHeader:
    """The facts an artifact records about its model, readable without unpickling.

    Every field is checked when the header is built or read; a header that exists holds facts
    that can be recorded and trusted as such.
    """

    format_version: int
    model: str
    trained_at: str
    libraries: dict[str, str]
    dataset: DatasetSummary
    training_seconds: _Float
    metrics: dict[str, _Float]
    parents: dict[str, str]
    payload_size: int
    payload_sha256: str
    signature: str | None
    # No default: every stored header has params, and a default would let one go missing unseen.
    params: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Return the header as plain JSON-ready data (the dataset as a nested dict).

        Facts left at their default (the dataset's scale and watermark, unknown) are left out,
        so a header reads back, and signs, exactly as it was written before they existed.
        """
        data: dict[str, Any] = _HEADER.dump_python(self, mode="json", exclude_defaults=True)
        return data

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"model name {value!r} must be 1-64 of [A-Za-z0-9_.-]")
        return value

    @field_validator("trained_at")
    @classmethod
    def _utc(cls, value: str) -> str:
        if not _is_utc(value):
            raise ValueError(f"trained_at {value!r} is not an ISO 8601 UTC time")
        return value

    @field_validator("libraries")
    @classmethod
    def _versions(cls, value: dict[str, str]) -> dict[str, str]:
        if not all(lib in value for lib in REQUIRED_LIBRARIES) or not all(
            VERSION_NUMBER.match(v) for v in value.values()
        ):
            raise ValueError(
                f"libraries {value} lack one of {REQUIRED_LIBRARIES} or a version number"
            )
        return value

    @field_validator("training_seconds")
    @classmethod
    def _seconds(cls, value: float) -> float:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError("bad training_seconds")
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: dict[str, float]) -> dict[str, float]:
        if not all(name and math.isfinite(v) for name, v in value.items()):
            raise ValueError(f"bad metrics {value}")
        return value

    @field_validator("parents")
    @classmethod
    def _parents(cls, value: dict[str, str]) -> dict[str, str]:
        if not all(_NAME.fullmatch(n) and _SHA256.fullmatch(s) for n, s in value.items()):
            raise ValueError(f"parents {value} must map model names to sha256 hex digests")
        return value

    @field_validator("payload_size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value < 0:
            raise ValueError("bad payload size or sha256")
        return value

    @field_validator("payload_sha256")
    @classmethod
    def _payload_digest(cls, value: str) -> str:
        if not _SHA256.fullmatch(value):
            raise ValueError("bad payload size or sha256")
        return value

    @field_validator("signature")
    @classmethod
    def _signature(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.fullmatch(value):
            raise ValueError("signature is not a hex digest")
        return value

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, str]) -> dict[str, str]:
        if not all(value):
            raise ValueError("a param has an empty name")
        return value


_HEADER = TypeAdapter(ArtifactHeader)


def parse(facts: bytes) -> ArtifactHeader:
    """Read a header from the JSON object of its fields.

    Parameters
    ----------
    facts : bytes
        JSON holding exactly the fields of :class:`ArtifactHeader`.

    Returns
    -------
    ArtifactHeader
        The header, every field checked.

    Raises
    ------
    pydantic.ValidationError
        If a field is missing, unknown, of the wrong type or breaks its rule; :func:`problem`
        says which.
    """
    return _HEADER.validate_json(facts)


def problem(error: ValidationError) -> str:
    """Say what `error` found wrong with a header, in one phrase naming the field.

    A header of the wrong shape is described by its shape, not its values: unknown fields are
    reported first, then a missing or mistyped field, then a fact that breaks its rule (each in
    field order). Only the first problem is named.

    Parameters
    ----------
    error : pydantic.ValidationError
        Raised while building or parsing an :class:`ArtifactHeader`.

    Returns
    -------
    str
        Such as ``field 'dataset.items' should be int, not str`` or ``has unknown fields ['x']``.
    """
    details = error.errors(include_url=False)
    unknown = [d for d in details if d["type"] in _UNKNOWN]
    if unknown:
        where = min(unknown, key=lambda d: len(d["loc"]))["loc"][:-1]  # the outermost first
        names = sorted(str(d["loc"][-1]) for d in unknown if d["loc"][:-1] == where)
        return f"{_field(where) + ' ' if where else ''}has unknown fields {names}"
    first = min(details, key=lambda d: d["type"] == "value_error")  # the first structural one
    if first["type"] == "value_error":
        return str(first.get("ctx", {}).get("error", first["msg"]))
    if first["type"] == "missing":
        return f"{_field(first['loc'])} is missing"
    found = type(first["input"]).__name__
    return f"{_field(first['loc'])} should be {_expected(first)}, not {found}"


def _field(loc: Sequence[int | str]) -> str:
    return "field '" + ".".join(str(part) for part in loc) + "'"


def _expected(error: ErrorDetails) -> str:
    if error["type"] == "dataclass_exact_type":  # built in Python: an instance was needed
        return str(error.get("ctx", {}).get("class_name", "a dataclass"))
    kind: Any = ArtifactHeader
    for part in error["loc"]:
        if dataclasses.is_dataclass(kind):
            kind = get_type_hints(kind, include_extras=True)[str(part)]
        else:  # a dict[str, X]: the part is a key, its value an X
            kind = get_args(kind)[1]
    return _kind(kind)


def _kind(annotation: Any) -> str:
    """Name a field's type as a header's JSON has it: a nested dataclass is a dict."""
    if get_origin(annotation) is Annotated:
        return _kind(get_args(annotation)[0])
    if get_origin(annotation) is UnionType:
        kinds = [_kind(a) for a in get_args(annotation) if a is not NoneType]
        return " or ".join(kinds) + (" or null" if NoneType in get_args(annotation) else "")
    if dataclasses.is_dataclass(annotation):
        return "dict"
    return str((get_origin(annotation) or annotation).__name__)
