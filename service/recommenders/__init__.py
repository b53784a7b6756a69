"""The recommenders: content-based, collaborative, hybrid and the popularity baseline."""

from service.recommenders.base import (
    Catalogue,
    NotFittedError,
    Recommendations,
    Recommender,
    UnknownItemError,
)
from service.recommenders.collaborative import Collaborative
from service.recommenders.content import ContentBased
from service.recommenders.hybrid import Hybrid
from service.recommenders.popularity import Popularity

__all__ = [
    "MODEL_NAMES",
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
