"""What the serving layer reports about each model: its state, its stored artifact, decoded.

These are pydantic models: the web layer returns them as they are and derives its response
schema from them, and the jobs print them, so a field is written in one place.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from service import artifacts
from service.artifacts import ArtifactHeader, MetadataSummary
from service.ml.recommenders import Recommender
from service.serving.journal import UnfinishedPublish
from storage import ObjectInfo

__all__ = [
    "NDCG_SPELLINGS",
    "ModelState",
    "ModelStatus",
    "StoredArtifact",
    "holdout_ndcg",
    "staleness",
    "summary_lines",
]


class ModelState(enum.StrEnum):
    """What a model slot holds."""

    LOADED = "loaded"
    NOT_TRAINED = "not_trained"
    FAILED = "failed"
    STALE = "stale"
    NOT_PERSISTED = "trained_not_persisted"


NDCG_SPELLINGS: Final = ("ndcg_at_10", "ndcg@10", "ndcg")
"""The names writers of artifacts have recorded the holdout NDCG@10 under, preferred first."""


def holdout_ndcg(metrics: Mapping[str, float]) -> float | None:
    """The holdout NDCG@10 among recorded ``metrics``, whatever its spelling; None if absent."""
    for name in NDCG_SPELLINGS:
        value = metrics.get(name)
        if value is not None and math.isfinite(value):
            return value
    return None


class StoredArtifact(BaseModel):
    """One stored version of an artifact: the object's facts, raw and decoded metadata.

    ``ndcg_at_10`` picks the holdout NDCG@10 out of the decoded metrics, so that no reader has
    to know the spellings different writers used.
    """

    model_config = ConfigDict(frozen=True)

    key: str
    size: int
    etag: str
    last_modified: datetime
    version_id: str | None
    metadata: dict[str, str] = Field(
        description="The object's user metadata as stored (percent-encoded values)."
    )
    decoded: MetadataSummary = Field(
        description="The same metadata read back: typed fields, metrics as numbers."
    )
    ndcg_at_10: float | None = Field(
        default=None,
        description="The holdout NDCG@10 the artifact records, whichever of the spellings "
        f"{', '.join(NDCG_SPELLINGS)} its writer used (the first with a finite value); null "
        "when it records none.",
    )

    @classmethod
    def of(cls, info: ObjectInfo) -> StoredArtifact:
        """The report of a stored object's information."""
        decoded = artifacts.from_metadata(info.metadata)
        return cls(
            key=info.key,
            size=info.size,
            etag=info.etag,
            last_modified=info.last_modified,
            version_id=info.version_id,
            metadata=dict(info.metadata),
            decoded=decoded,
            ndcg_at_10=holdout_ndcg(decoded.metrics),
        )


class ModelStatus(BaseModel):
    """Everything an operator needs to know about one served model."""

    model_config = ConfigDict(frozen=True)

    name: str
    state: ModelState
    reason: str | None
    trained_at: str | None
    checksum: str | None
    artifact: StoredArtifact | None
    load_seconds: float | None
    last_error: str | None
    components: dict[str, str] = Field(default_factory=dict)
    header: dict[str, Any] | None = Field(
        default=None, description="The artifact's header, as the artifact records it."
    )

    @classmethod
    def of(
        cls,
        name: str,
        state: ModelState,
        reason: str | None,
        *,
        model: Recommender | None = None,
        header: ArtifactHeader | None = None,
        info: ObjectInfo | None = None,
        load_seconds: float | None = None,
        last_error: str | None = None,
    ) -> ModelStatus:
        """The status of a model slot: what it serves (if anything), from which artifact."""
        return cls(
            name=name,
            state=state,
            reason=reason,
            trained_at=header.trained_at if header else None,
            checksum=header.payload_sha256 if header else None,
            artifact=StoredArtifact.of(info) if info is not None else None,
            load_seconds=load_seconds,
            last_error=last_error,
            components=model.components() if model is not None else {},
            header=header.to_dict() if header is not None else None,
        )


def summary_lines(
    statuses: Mapping[str, ModelStatus], unfinished: UnfinishedPublish | None
) -> list[str]:
    """One line per model an operator can read at a glance, and one for an unfinished publish."""
    lines = []
    for name, status in statuses.items():
        if status.state is ModelState.LOADED:
            detail = f"LOADED (trained {status.trained_at}, {status.load_seconds or 0:.2f} s)"
        elif status.state is ModelState.NOT_TRAINED:
            detail = f"NOT TRAINED: {status.reason}"
        else:
            detail = f"{status.state.value.upper().replace('_', ' ')}: {status.reason}"
        lines.append(f"{name}: {detail}")
    if unfinished is not None:
        lines.append(
            f"publish {unfinished.set_id[:12]} (started {unfinished.started_at.isoformat()}) "
            f"is unfinished: the previous versions of {', '.join(unfinished.held_back)} are "
            "served until a publish completes"
        )
    return lines


def staleness(parents: Mapping[str, str], served: Mapping[str, str]) -> str | None:
    """Why a hybrid built with ``parents`` is stale against the ``served`` sub-model checksums.

    None when every served sub-model is one it was built with (a sub-model not served at all,
    failed say, leaves the hybrid running with its own stored one, which is not stale).
    """
    changed = [
        parent for parent, checksum in parents.items() if served.get(parent, checksum) != checksum
    ]
    if not changed:
        return None
    return f"{' and '.join(changed)} retrained since it was built; retrain the hybrid"
