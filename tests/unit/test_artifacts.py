"""The artifact envelope: round trip, every refusal, and nothing unpickled before it is checked.

Crafted artifacts are built here from the format described in ``service.artifacts``' docstring
(magic, 4-byte length, canonical JSON header with ``header_sha256``, payload), as an attacker or a
damaged disk would, not with the module's private helpers.
"""

import hashlib
import hmac
import json
import logging
import pickle
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
from sklearn.decomposition import NMF

from service import artifacts
from service.artifacts import (
    MAGIC,
    ArtifactError,
    ArtifactHeader,
    ChecksumMismatch,
    DatasetSummary,
    IncompatibleVersions,
    MalformedHeader,
    NotAnArtifact,
    SignatureInvalid,
    SignatureMissing,
    TruncatedArtifact,
    UnsupportedFormat,
    WrongModel,
)

KEY = b"unit-test-key"
OTHER_KEY = b"another-key"
DATASET = DatasetSummary(
    fingerprint=hashlib.sha256(b"items and interactions").hexdigest(),
    items=60,
    users=120,
    interactions=2400,
)
START = len(MAGIC) + 4


class Tripwire:
    """Unpickling this creates the file at `path`: proof that pickled code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


def make(model: object = None, key: bytes | None = KEY, **facts: Any) -> bytes:
    """Dump `model` (a small dict by default) with typical facts, overridable by keyword."""
    defaults: dict[str, Any] = {
        "model_name": "collaborative",
        "dataset": DATASET,
        "training_seconds": 1.25,
        "metrics": {"ndcg@10": 0.254, "precision@10": 0.11},
        "params": {"n_components": "32", "alpha_W": "0.01"},
    }
    model = {"factors": np.arange(12.0).reshape(3, 4)} if model is None else model
    return artifacts.dump(model, key=key, **(defaults | facts))


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Return the header JSON and the payload of an artifact, read by hand."""
    length = int.from_bytes(data[len(MAGIC) : START], "big")
    return json.loads(data[START : START + length]), data[START + length :]


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")


def envelope(
    body: dict[str, Any], payload: bytes, key: bytes | None = None, digest: bool = True
) -> bytes:
    """Encode `body` and `payload` as an artifact: re-signed with `key`, re-digested if `digest`."""
    body = {k: v for k, v in body.items() if k != "header_sha256"}
    if key is not None:
        unsigned = {k: v for k, v in body.items() if k != "signature"}
        body["signature"] = hmac.new(key, canonical(unsigned), hashlib.sha256).hexdigest()
    if digest:
        body["header_sha256"] = hashlib.sha256(canonical(body)).hexdigest()
    raw = canonical(body)
    return MAGIC + len(raw).to_bytes(4, "big") + raw + payload


def rewrite(data: bytes, change: Callable[[dict[str, Any]], object], key: bytes | None) -> bytes:
    """Edit the header of `data` as a forger would: digests recomputed, signed with `key`."""
    body, payload = split(data)
    change(body)
    return envelope(body, payload, key)


def flip(data: bytes, position: int, mask: int = 0x01) -> bytes:
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]


def bump(version: str, part: int) -> str:
    numbers = [int(n) for n in version.split(".")[:2]]
    numbers[part] += 1
    return ".".join(str(n) for n in numbers) + (".0" if part == 0 else "")


# Round trip and header


def test_fitted_model_round_trips_with_its_facts() -> None:
    rng = np.random.default_rng(7)
    ratings = rng.random((12, 8))
    nmf = NMF(n_components=3, init="nndsvda", max_iter=2000, random_state=0).fit(ratings)
    when = datetime(2025, 3, 9, 14, 30, tzinfo=timezone(timedelta(hours=7)))
    parents = {"content_based": "a" * 64, "collaborative": "b" * 64}

    data = make(nmf, model_name="hybrid", parents=parents, trained_at=when)
    loaded, header = artifacts.load(data, KEY, expected_model="hybrid")

    assert isinstance(loaded, NMF)
    np.testing.assert_array_equal(loaded.components_, nmf.components_)
    np.testing.assert_allclose(loaded.transform(ratings[:2]), nmf.transform(ratings[:2]))
    assert header.model == "hybrid"
    assert header.dataset == DATASET
    assert header.parents == parents
    assert header.metrics == {"ndcg@10": 0.254, "precision@10": 0.11}
    assert header.params == {"n_components": "32", "alpha_W": "0.01"}
    assert header.training_seconds == 1.25
    assert header.trained_at.endswith("Z")
    assert datetime.fromisoformat(header.trained_at) == when
    assert header.libraries == artifacts.library_versions()
    assert header.payload_size == len(split(data)[1])
    assert header.payload_sha256 == hashlib.sha256(split(data)[1]).hexdigest()


def test_trained_at_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    header = artifacts.read_header(make())
    after = datetime.now(UTC)

    trained_at = datetime.fromisoformat(header.trained_at)
    assert trained_at.utcoffset() == timedelta(0)
    assert before <= trained_at <= after


def test_envelope_is_not_a_pickle_and_header_reads_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pickled-code-ran"
    data = make(Tripwire(marker))
    header_end = START + int.from_bytes(data[len(MAGIC) : START], "big")

    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)
    header = artifacts.read_header(data)
    from_prefix = artifacts.read_header(data[:header_end])

    assert header == from_prefix
    assert header.model == "collaborative"
    assert header.signature is not None
    assert not marker.exists()


def test_signed_artifact_without_key_loads_and_warns_once_per_artifact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = make({"nonce": str(tmp_path)})
    other = make({"nonce": str(tmp_path), "other": True})

    with caplog.at_level(logging.WARNING, logger="service.artifacts"):
        for _ in range(3):
            model, _header = artifacts.load(data)
            assert model == {"nonce": str(tmp_path)}
        artifacts.load(other)

    unchecked = [r for r in caplog.records if "WISATA_ARTIFACT_KEY" in r.getMessage()]
    assert len(unchecked) == 2


def test_unsigned_artifact_loads_without_key() -> None:
    model, header = artifacts.load(make(key=None))

    assert header.signature is None
    assert isinstance(model, dict)
    np.testing.assert_array_equal(model["factors"], np.arange(12.0).reshape(3, 4))


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ({"metrics": {"ndcg@10": float("nan")}}, "metrics"),
        ({"model_name": "../hybrid"}, "model name"),
        ({"parents": {"content_based": "not-a-digest"}}, "parents"),
        ({"trained_at": datetime(2025, 1, 1)}, "timezone"),
        ({"key": b""}, "WISATA_ARTIFACT_KEY"),
        ({"training_seconds": -1.0}, "training_seconds"),
    ],
)
def test_dump_refuses_facts_it_cannot_record(facts: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        make(**facts)


# Refusals


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda data, end: 0, id="empty"),
        pytest.param(lambda data, end: 4, id="inside-magic"),
        pytest.param(lambda data, end: len(MAGIC) + 2, id="inside-length"),
        pytest.param(lambda data, end: START + 10, id="header-start"),
        pytest.param(lambda data, end: (START + end) // 2, id="header-middle"),
        pytest.param(lambda data, end: end - 1, id="header-last-byte"),
        pytest.param(lambda data, end: end, id="no-payload"),
        pytest.param(lambda data, end: (end + len(data)) // 2, id="payload-middle"),
        pytest.param(lambda data, end: len(data) - 1, id="payload-last-byte"),
    ],
)
def test_truncated_bytes_are_refused(cut: Callable[[bytes, int], int]) -> None:
    data = make()
    header_end = START + int.from_bytes(data[len(MAGIC) : START], "big")
    short = data[: cut(data, header_end)]

    with pytest.raises(TruncatedArtifact, match="cut short"):
        artifacts.load(short, KEY)
    with pytest.raises(TruncatedArtifact):
        artifacts.verify(short)


def test_bytes_after_the_payload_are_refused() -> None:
    with pytest.raises(ChecksumMismatch, match="after its payload"):
        artifacts.verify(make() + b"\x00", KEY)


def test_flipped_payload_byte_is_refused() -> None:
    data = make(key=None)
    with pytest.raises(ChecksumMismatch, match="payload"):
        artifacts.load(flip(data, len(data) - 20), None)


def test_flipped_header_byte_is_refused_without_a_key() -> None:
    data = make(key=None)
    position = data.index(b'"interactions":2400') + len(b'"interactions":')
    with pytest.raises(ChecksumMismatch, match="header"):
        artifacts.load(flip(data, position), None)


@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "unkeyed"])
def test_every_single_flipped_byte_is_refused(key: bytes | None) -> None:
    data = make(key=key)
    for position in range(len(data)):
        for mask in (0x01, 0x20, 0x80):
            with pytest.raises(ArtifactError):
                artifacts.verify(flip(data, position, mask), key)


def test_edited_header_is_refused_unless_resigned_with_the_key() -> None:
    def more_items(body: dict[str, Any]) -> None:
        body["dataset"]["items"] += 1

    with pytest.raises(SignatureInvalid, match="WISATA_ARTIFACT_KEY"):
        artifacts.load(rewrite(make(), more_items, key=None), KEY)
    _model, header = artifacts.load(rewrite(make(), more_items, key=KEY), KEY)
    assert header.dataset.items == DATASET.items + 1


def test_missing_signature_is_refused_when_a_key_is_configured() -> None:
    with pytest.raises(SignatureMissing, match="WISATA_ARTIFACT_KEY"):
        artifacts.load(make(key=None), KEY)


def test_wrong_key_is_refused() -> None:
    with pytest.raises(SignatureInvalid, match="WISATA_ARTIFACT_KEY"):
        artifacts.load(make(key=OTHER_KEY), KEY)


@pytest.mark.parametrize("version", [0, 2, 99])
def test_unknown_format_version_is_refused(version: int) -> None:
    data = rewrite(make(), lambda body: body.update(format_version=version), key=KEY)

    with pytest.raises(UnsupportedFormat, match=f"version {version}.*upgrade"):
        artifacts.read_header(data)
    with pytest.raises(UnsupportedFormat):
        artifacts.load(data, KEY)


HEADER_FIELDS = [name for name in ArtifactHeader.__dataclass_fields__]


@pytest.mark.parametrize("name", [*HEADER_FIELDS, "header_sha256"])
def test_missing_header_field_is_refused_and_named(name: str) -> None:
    body, payload = split(make(key=None))
    del body[name]
    data = envelope(body, payload, digest=name != "header_sha256")

    with pytest.raises(MalformedHeader, match=f"'{name}' is missing"):
        artifacts.verify(data)


@pytest.mark.parametrize("name", ["fingerprint", "items", "users", "interactions"])
def test_missing_dataset_field_is_refused_and_named(name: str) -> None:
    data = rewrite(make(), lambda body: body["dataset"].pop(name), key=KEY)

    with pytest.raises(MalformedHeader, match=f"'dataset.{name}' is missing"):
        artifacts.verify(data, KEY)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda b: b["dataset"].update(items="60"), "'dataset.items' should be int, not str"),
        (lambda b: b.update(format_version=True), "'format_version' should be int"),
        (lambda b: b.update(payload_size=1.5), "'payload_size' should be int"),
        (lambda b: b["metrics"].update(ndcg="high"), "'metrics.ndcg' should be float"),
        (lambda b: b.update(signature=7), "'signature' should be str or null"),
        (lambda b: b.update(libraries=["numpy"]), "'libraries' should be dict"),
        (lambda b: b.update(trained_at="yesterday"), "trained_at"),
        (lambda b: b.update(trained_at="2025-01-01T00:00:00+07:00"), "trained_at"),
        (lambda b: b.update(model="../../etc"), "model name"),
        (lambda b: b["libraries"].pop("numpy"), "libraries"),
        (lambda b: b.update(extra=1), "unknown fields"),
        (lambda b: b["dataset"].update(extra=1), "unknown fields"),
    ],
)
def test_wrongly_typed_or_unknown_fields_are_refused(
    change: Callable[[dict[str, Any]], object], reason: str
) -> None:
    with pytest.raises(MalformedHeader, match=reason):
        artifacts.verify(rewrite(make(), change, key=None), KEY)


@pytest.mark.parametrize(
    "header",
    [b"{not json", b"\xff\xfe{}", b"[1, 2]", b'{"format_version":1}' + b" " * 3],
    ids=["invalid-json", "not-utf8", "not-an-object", "not-canonical"],
)
def test_header_that_is_not_canonical_json_is_refused(header: bytes) -> None:
    data = MAGIC + len(header).to_bytes(4, "big") + header + b"payload"
    with pytest.raises(MalformedHeader):
        artifacts.read_header(data)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_header_number_that_json_cannot_hold_is_refused(constant: bytes) -> None:
    header = b'{"format_version":1,"training_seconds":' + constant + b"}"
    data = MAGIC + len(header).to_bytes(4, "big") + header + b"payload"
    with pytest.raises(MalformedHeader, match="not valid JSON"):
        artifacts.read_header(data)


def test_reformatted_header_is_refused() -> None:
    body, payload = split(make())
    raw = json.dumps(body, indent=1).encode()
    with pytest.raises(MalformedHeader, match="canonical"):
        artifacts.verify(MAGIC + len(raw).to_bytes(4, "big") + raw + payload, KEY)


def test_implausible_header_length_is_refused() -> None:
    data = MAGIC + (artifacts.MAX_HEADER_BYTES + 1).to_bytes(4, "big") + b"{}"
    with pytest.raises(MalformedHeader, match="header length"):
        artifacts.read_header(data)


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_raw_pickle_is_not_an_artifact(dumps: Callable[[object], bytes]) -> None:
    with pytest.raises(NotAnArtifact, match=r"raw pickle.*retrain"):
        artifacts.load(dumps({"factors": [1.0, 2.0]}), None)


def test_other_bytes_are_not_an_artifact() -> None:
    with pytest.raises(NotAnArtifact, match="magic"):
        artifacts.read_header(b"PK\x03\x04 a zip file, say")


def test_wrong_model_is_refused() -> None:
    with pytest.raises(WrongModel, match="'collaborative' where 'hybrid'"):
        artifacts.load(make(), KEY, expected_model="hybrid")


def set_library(lib: str, version: str) -> Callable[[dict[str, Any]], object]:
    return lambda body: body["libraries"].update({lib: version})


@pytest.mark.parametrize("lib", ["numpy", "scikit-learn"])
def test_other_major_version_of_numpy_or_sklearn_is_refused(lib: str) -> None:
    running = artifacts.library_versions()[lib]
    other = bump(running, 0)
    data = rewrite(make(), set_library(lib, other), key=KEY)

    with pytest.raises(
        IncompatibleVersions, match=re.escape(f"{lib} {other} but {running} is installed")
    ):
        artifacts.load(data, KEY)


@pytest.mark.parametrize(
    ("lib", "part"),
    [("numpy", 1), ("scikit-learn", 1), ("scipy", 1), ("python", 1), ("cloudpickle", 0)],
)
def test_other_minor_version_warns_but_loads(
    lib: str, part: int, caplog: pytest.LogCaptureFixture
) -> None:
    other = bump(artifacts.library_versions()[lib], part)
    data = rewrite(make(), set_library(lib, other), key=KEY)

    with caplog.at_level(logging.WARNING, logger="service.artifacts"):
        model, header = artifacts.load(data, KEY)

    assert isinstance(model, dict)
    assert header.libraries[lib] == other
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(lib in message and other in message for message in warned)


# Invariant 1: no bytes are unpickled before their size, sha256 and signature are checked.


def swap_payload(data: bytes, payload: bytes) -> bytes:
    """Put `payload` in `data` with matching size and digests, keeping the old signature."""
    body, _old = split(data)
    body["payload_size"] = len(payload)
    body["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    return envelope(body, payload)


TAMPERINGS: dict[str, tuple[Callable[[bytes, Path], bytes], type[ArtifactError]]] = {
    "payload-byte-flipped": (lambda d, m: flip(d, len(d) - 5), ChecksumMismatch),
    "payload-swapped": (
        lambda d, m: swap_payload(make(), cloudpickle.dumps(Tripwire(m))),
        SignatureInvalid,
    ),
    "signature-flipped": (
        lambda d, m: rewrite(d, lambda b: b.update(signature=b["signature"][::-1]), None),
        SignatureInvalid,
    ),
    "signed-with-other-key": (lambda d, m: make(Tripwire(m), key=OTHER_KEY), SignatureInvalid),
    "unsigned": (lambda d, m: make(Tripwire(m), key=None), SignatureMissing),
    "truncated": (lambda d, m: d[:-1], TruncatedArtifact),
    "payload-size-lies": (
        lambda d, m: rewrite(d, lambda b: b.update(payload_size=b["payload_size"] - 1), KEY),
        ChecksumMismatch,
    ),
    "major-version": (
        lambda d, m: rewrite(d, set_library("numpy", "99.0.0"), KEY),
        IncompatibleVersions,
    ),
    "future-format": (
        lambda d, m: rewrite(d, lambda b: b.update(format_version=2), KEY),
        UnsupportedFormat,
    ),
}


@pytest.mark.parametrize("case", list(TAMPERINGS))
def test_no_payload_runs_before_every_check_passes(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "pickled-code-ran"
    tamper, refusal = TAMPERINGS[case]
    data = tamper(make(Tripwire(marker)), marker)

    with pytest.raises(refusal):
        artifacts.load(data, KEY)
    assert not marker.exists()


def test_tripwire_does_run_once_every_check_passes(tmp_path: Path) -> None:
    # Without this, the test above could pass with a tripwire that never fires.
    marker = tmp_path / "pickled-code-ran"
    artifacts.load(make(Tripwire(marker)), KEY)
    assert marker.exists()


# Metadata


def header_with(**changes: Any) -> ArtifactHeader:
    return artifacts.read_header(make(**changes))


def metadata_size(meta: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())


def test_metadata_gives_back_the_facts() -> None:
    header = header_with(
        model_name="hybrid",
        parents={"content_based": "c" * 64, "collaborative": "d" * 64},
        metrics={"ndcg@10": 0.254, "NDCG.raw": 0.3, "coverage": 0.5},
        params={"weights": "0.6/0.4", "lambda": "0.7", "Kota": "Yogyakarta é"},
    )
    summary = artifacts.from_metadata(artifacts.to_metadata(header))

    assert summary.model == header.model
    assert summary.format_version == header.format_version
    assert summary.trained_at == header.trained_at
    assert summary.sha256 == header.payload_sha256
    assert summary.size == header.payload_size
    assert summary.signature == header.signature
    assert summary.dataset_fingerprint == DATASET.fingerprint
    assert (summary.items, summary.users, summary.interactions) == (60, 120, 2400)
    assert summary.training_seconds == header.training_seconds
    assert summary.libraries == header.libraries
    assert summary.metrics == header.metrics
    assert summary.parents == header.parents
    assert summary.params == header.params
    assert summary.omitted == 0


def test_unsigned_metadata_has_no_signature() -> None:
    meta = artifacts.to_metadata(header_with(key=None))
    assert "signature" not in meta
    assert artifacts.from_metadata(meta).signature is None


def test_metadata_is_lowercase_ascii_and_under_2kb_with_many_metrics_and_params() -> None:
    header = header_with(
        parents={f"Part{i}": f"{i:064x}" for i in range(3)},
        metrics={f"NDCG@{k} über": k / 100 for k in range(150)},
        params={f"Param_{i}": "é" * 200 for i in range(150)},
    )
    meta = artifacts.to_metadata(header)
    summary = artifacts.from_metadata(meta)

    assert metadata_size(meta) < 2048
    for key, value in meta.items():
        assert key == key.lower() and key.isascii() and key.isprintable(), key
        assert value.isascii() and value.isprintable() and value == value.strip(), value
    assert summary.sha256 == header.payload_sha256
    assert summary.signature == header.signature
    assert summary.parents == header.parents
    assert summary.omitted > 0
    assert len(summary.metrics) + len(summary.params) + summary.omitted == 300
    assert all(header.metrics[name] == value for name, value in summary.metrics.items())


def test_long_param_values_are_cut_in_metadata() -> None:
    header = header_with(params={"stop_words": "yang, dan, di, ke, " * 20, "alpha": "0.1"})
    summary = artifacts.from_metadata(artifacts.to_metadata(header))

    assert summary.params["alpha"] == "0.1"
    assert len(summary.params["stop_words"]) <= 64
    assert summary.params["stop_words"].endswith("...")
    assert header.params["stop_words"].startswith(summary.params["stop_words"][:-3])


def test_from_metadata_tolerates_missing_and_garbled_entries() -> None:
    empty = artifacts.from_metadata({})
    assert (empty.model, empty.trained_at, empty.sha256, empty.items) == (None, None, None, None)
    assert (empty.metrics, empty.parents, empty.params) == ({}, {}, {})

    garbled = artifacts.from_metadata(
        {"Model": "hybrid", "items": "many", "metric-ndcg": "high", "training-seconds": ""}
    )
    assert garbled.model == "hybrid"
    assert garbled.items is None
    assert garbled.metrics == {}
    assert garbled.training_seconds is None
