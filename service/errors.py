"""Every error the service raises on purpose: one tree, each class with its HTTP status and code.

The web layer's error middleware is a lookup of :attr:`WisataError.status` and
:attr:`WisataError.code`, with the fields of :meth:`WisataError.details` added to the JSON body.
Messages say what was wrong and what to do in the domain's words; hints naming HTTP routes are
added at the web edge (:mod:`service.web.middlewares`). The storage layer keeps its own tree
(:mod:`storage.errors`), which the web layer maps in the same lookup.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ArtifactError",
    "BadParameter",
    "ChecksumMismatch",
    "ConfigError",
    "DatabaseNotReady",
    "DatabaseUnavailable",
    "DatasetError",
    "IncompatibleVersions",
    "JournalError",
    "MalformedHeader",
    "ModelNotTrained",
    "NotAnArtifact",
    "PayloadError",
    "PublishSuperseded",
    "RatingOutOfScale",
    "SignatureInvalid",
    "SignatureMissing",
    "TrainingInProgress",
    "TruncatedArtifact",
    "UnknownItemError",
    "UnknownJob",
    "UnknownModel",
    "UnknownVersion",
    "UnsupportedFormat",
    "WisataError",
    "WrongModel",
    "first_line",
]


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name if it has none), for quoting."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


#: How to train, for an operator reading a refusal in a log, a CLI or an HTTP answer.
TRAIN_HINT = "train it with POST /api/ml/train-all (or the wisata-retrain job)"


class WisataError(Exception):
    """Base of every error the service raises on purpose."""

    status: ClassVar[int] = 500
    """The HTTP status an answer carrying this error gets."""
    code: ClassVar[str] = "internal_error"
    """The machine-readable ``error`` field of that answer."""

    def details(self) -> dict[str, Any]:
        """Fields added to the JSON error body besides ``error`` and ``message``."""
        return {}


# --- input --------------------------------------------------------------------------------------


class ConfigError(WisataError, ValueError):
    """A configuration variable has a value the service cannot run with."""

    code = "bad_configuration"


class BadParameter(WisataError, ValueError):
    """A request parameter is missing or has a value the route does not accept."""

    status = 400
    code = "bad_parameter"

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter

    def details(self) -> dict[str, Any]:
        return {"parameter": self.parameter}


# --- data and models ----------------------------------------------------------------------------


class DatasetError(WisataError, ValueError):
    """A dataset directory or file is missing, empty or malformed."""

    status = 422
    code = "dataset_invalid"


class DatabaseUnavailable(WisataError):
    """The site's database did not answer, or answered with an error, in time."""

    status = 503
    code = "database_unavailable"


class DatabaseNotReady(WisataError):
    """The site's database answers but lacks Wisata's tables."""

    status = 503
    code = "database_not_ready"


class RatingOutOfScale(WisataError, ValueError):
    """A rating outside the scale of the data the served models were trained on."""

    status = 400
    code = "bad_parameter"

    def __init__(self, parameter: str, rating: float, scale: tuple[float, float]) -> None:
        super().__init__(
            f"{parameter}: rating {rating:g} is outside the scale of the data the models were "
            f"trained on, {scale[0]:g} to {scale[1]:g}; send a rating in that range"
        )
        self.parameter = parameter

    def details(self) -> dict[str, Any]:
        return {"parameter": self.parameter}


class UnknownItemError(WisataError, KeyError):
    """An item id is not in the catalogue the model was trained on."""

    status = 404
    code = "unknown_item"

    def __init__(self, item_id: str, where: str = "the trained model's catalogue") -> None:
        super().__init__(item_id)
        self.item_id = item_id
        self.where = where

    def __str__(self) -> str:
        return f"unknown item id {self.item_id!r}: it is not in {self.where}"

    def details(self) -> dict[str, Any]:
        return {"item_id": self.item_id}


# --- artifacts ----------------------------------------------------------------------------------


class ArtifactError(WisataError):
    """An artifact cannot be read, trusted or loaded."""

    status = 422
    code = "artifact_invalid"


class TruncatedArtifact(ArtifactError):
    """The bytes end before the artifact does."""


class NotAnArtifact(ArtifactError):
    """The bytes do not start with the artifact magic."""


class MalformedHeader(ArtifactError):
    """The header is not canonical JSON, or a field is missing, unknown or of the wrong type."""


class UnsupportedFormat(ArtifactError):
    """The artifact was written in a format version this release cannot read."""


class ChecksumMismatch(ArtifactError):
    """The bytes differ from the sizes and digests recorded when the artifact was written."""


class SignatureMissing(ArtifactError):
    """A key is configured but the artifact carries no signature."""


class SignatureInvalid(ArtifactError):
    """The signature does not match the header under the configured key."""


class IncompatibleVersions(ArtifactError):
    """The artifact was written with another major version of numpy or scikit-learn."""


class WrongModel(ArtifactError):
    """The artifact holds another model than the one expected."""


class PayloadError(ArtifactError):
    """The payload passed every check but could not be unpickled."""


# --- serving ------------------------------------------------------------------------------------


class ModelNotTrained(WisataError):
    """The model asked for is not available to serve."""

    status = 503
    code = "model_not_trained"

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"model {model} is not available ({reason}); {TRAIN_HINT}")
        self.model = model
        self.reason = reason

    def details(self) -> dict[str, Any]:
        return {"model": self.model, "reason": self.reason}


class UnknownModel(WisataError, KeyError):
    """A model name that is none of the served models."""

    status = 404
    code = "unknown_model"

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown model {self.name!r}; the models are {', '.join(self.known)}"

    def details(self) -> dict[str, Any]:
        return {"model": self.name}


class UnknownVersion(WisataError, KeyError):
    """A stored version id that the model's artifact does not have (never, or no longer)."""

    status = 404
    code = "not_found"

    def __init__(self, name: str, version_id: str) -> None:
        super().__init__(version_id)
        self.name = name
        self.version_id = version_id

    def __str__(self) -> str:
        return f"no stored version {self.version_id!r} of {self.name}"

    def details(self) -> dict[str, Any]:
        return {"model": self.name, "version_id": self.version_id}


class UnknownJob(WisataError, KeyError):
    """A training job id the service does not know (never submitted, or long forgotten)."""

    status = 404
    code = "unknown_job"

    def __init__(self, job_id: str, kept: int) -> None:
        super().__init__(job_id)
        self.job_id = job_id
        self.kept = kept

    def __str__(self) -> str:
        return (
            f"no training job {self.job_id!r} (the service remembers its last {self.kept} jobs "
            "since it started)"
        )

    def details(self) -> dict[str, Any]:
        return {"job_id": self.job_id}


class TrainingInProgress(WisataError):
    """A training job is already queued or running."""

    status = 409
    code = "training_in_progress"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"training job {job_id} is still running; wait for it to end")
        self.job_id = job_id

    def details(self) -> dict[str, Any]:
        return {"job_id": self.job_id}


class JournalError(WisataError, ValueError):
    """A publish journal that cannot be read; it is ignored (and reported), never trusted."""

    code = "journal_invalid"


class PublishSuperseded(WisataError):
    """Another publisher's journal replaced this publish's: it stops, and places nothing more."""

    status = 409
    code = "publish_superseded"

    def __init__(self, mine: str, found: str | None) -> None:
        other = f"publish {found}" if found else "another publisher, which already finished"
        super().__init__(
            f"publish {mine} was taken over by {other}; this training was not published and "
            "the other one's models will be served (train again to publish this data)"
        )
