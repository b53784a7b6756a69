"""Validation of keys, prefixes and user metadata, shared by both backends.

Both backends apply exactly the same rules so that an artifact accepted by the local folder is
also accepted by S3 (and the other way round): moving a deployment from one to the other must
not turn a valid model name into an error.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_METADATA_BYTES",
    "TMP_DIR",
    "join_key",
    "normalize_metadata",
    "normalize_prefix",
    "validate_key",
    "validate_list_prefix",
]

MAX_KEY_BYTES = 1024
"""S3's limit on the length of an object key, in UTF-8 bytes."""

MAX_METADATA_BYTES = 2048
"""S3's limit on the user metadata of one object (keys plus values, in bytes)."""

TMP_DIR = ".tmp"
"""First segment reserved for temporary uploads; never a valid key of its own."""


def _has_control_character(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def validate_key(key: str) -> str:
    """Check that ``key`` is a safe object key and return it unchanged.

    A key is a ``/``-separated relative path: not empty, no leading ``/``, no empty, ``.`` or
    ``..`` segment, no control characters, at most 1024 bytes in UTF-8, and not under the
    reserved ``.tmp/`` folder.

    Parameters
    ----------
    key : str
        The key relative to the store's prefix, e.g. ``"content_based.pkl"``.

    Returns
    -------
    str
        The same key.

    Raises
    ------
    ValueError
        If the key breaks one of the rules; the message names the key and the rule.
    """
    if not isinstance(key, str):
        raise ValueError(f"invalid storage key {key!r}: a key must be a str")
    problem = _key_problem(key)
    if problem:
        raise ValueError(
            f"invalid storage key {key!r}: {problem}; use a relative name like 'content_based.pkl'"
        )
    return key


def _key_problem(key: str) -> str | None:
    if not key:
        return "it is empty"
    if key.startswith("/"):
        return "it starts with '/'"
    if _has_control_character(key):
        return "it contains a control character"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8 text"
    if size > MAX_KEY_BYTES:
        return f"it is {size} bytes long in UTF-8, more than {MAX_KEY_BYTES}"
    segments = key.split("/")
    if ".." in segments:
        return "it contains a '..' segment"
    if "." in segments:
        return "it contains a '.' segment"
    if "" in segments:
        return "it contains an empty segment ('//' or a trailing '/')"
    if segments[0] == TMP_DIR:
        return f"'{TMP_DIR}/' is reserved for temporary uploads"
    return None


def validate_list_prefix(prefix: str) -> str:
    """Check a ``list()`` prefix: like a key, but it may be empty or end with ``/``.

    Raises
    ------
    ValueError
        If the prefix starts with ``/``, holds a control character or a ``..`` segment.
    """
    if not isinstance(prefix, str):
        raise ValueError(f"invalid list prefix {prefix!r}: a prefix must be a str")
    if prefix.startswith("/") or _has_control_character(prefix) or ".." in prefix.split("/"):
        raise ValueError(
            f"invalid list prefix {prefix!r}: it must be relative, without '..' segments or "
            "control characters, e.g. 'models/' or ''"
        )
    return prefix


def normalize_prefix(prefix: str) -> str:
    """Return a store prefix without leading or trailing slashes (``""`` for the bucket root).

    Raises
    ------
    ValueError
        If a segment of the prefix would not be valid in a key.
    """
    stripped = prefix.strip("/")
    if stripped:
        problem = _key_problem(stripped)
        if problem:
            raise ValueError(f"invalid store prefix {prefix!r}: {problem}")
    return stripped


def join_key(prefix: str, key: str) -> str:
    """Return the full object key of ``key`` under a normalized ``prefix``."""
    return f"{prefix}/{key}" if prefix else key


def normalize_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Return user metadata as both backends store it: ASCII text, keys lower-cased.

    S3 sends user metadata as HTTP headers, which are ASCII and case-insensitive (S3 returns
    the names lower-cased), and caps it at 2 KB; the local folder enforces the same so both
    backends give back exactly what the other would.

    Raises
    ------
    ValueError
        If a name or value is not a str, not printable ASCII, a name is empty or repeated
        ignoring case, or the total exceeds 2048 bytes.
    """
    result: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError(f"metadata {name!r}: names and values must be str, got {value!r}")
        if not name or not _printable_ascii(name) or " " in name:
            raise ValueError(
                f"metadata name {name!r}: use printable ASCII without spaces, e.g. 'trained-at'"
            )
        if not _printable_ascii(value):
            raise ValueError(
                f"metadata {name!r}: the value must be printable ASCII; encode other text first"
            )
        lowered = name.lower()
        if lowered in result:
            raise ValueError(f"metadata name {name!r} is repeated (names ignore case)")
        result[lowered] = value
    total = sum(len(name) + len(value) for name, value in result.items())
    if total > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata is {total} bytes, more than the {MAX_METADATA_BYTES} S3 allows; "
            "store large values in the object itself"
        )
    return result


def _printable_ascii(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)
