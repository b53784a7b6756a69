"""The recommenders: content-based, collaborative, hybrid and the popularity baseline."""

from service.ml.recommenders.base import (
    Catalogue,
    NotFittedError,
    Recommendations,
    Recommender,
    UnknownItemError,
)
from service.ml.recommenders.collaborative import Collaborative
from service.ml.recommenders.content import ContentBased
from service.ml.recommenders.hybrid import Hybrid
from service.ml.recommenders.popularity import Popularity

__all__ = [
    "MODEL_NAMES",
    "MOVED_MODULES",
    "Catalogue",
    "Collaborative",
    "ContentBased",
    "Hybrid",
    "NotFittedError",
    "Popularity",
    "Recommendations",
    "Recommender",
    "UnknownItemError",
]

#: The three served models, in training order (the hybrid last: it is built from the other two).
MODEL_NAMES: tuple[str, ...] = (ContentBased.name, Collaborative.name, Hybrid.name)

#: Where the recommenders' modules lived before, for artifacts pickled then (format 1 artifacts
#: written before the layered layout name ``service.recommenders.content.ContentBased``...).
MOVED_MODULES: dict[str, str] = {"service.recommenders": "service.ml.recommenders"}
