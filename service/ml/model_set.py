"""The one factory of the model set: content, collaborative, and the hybrid built from them.

Training in the service, ``wisata-retrain``, the evaluation and the hybrid's weight search all
build their models here, so the three are always made the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sklearn.base import clone

from service.errors import UnknownModel
from service.ml.datasets import Dataset
from service.ml.recommenders import (
    MODEL_NAMES,
    Collaborative,
    ContentBased,
    Hybrid,
    Recommender,
)

__all__ = ["HybridWeight", "ModelSet", "fit_model_set", "fit_sub_models", "ordered_models"]

HybridWeight = float | Literal["auto"]
"""The hybrid's content weight: a number from 0 to 1, or ``"auto"`` (chosen on validation)."""


@dataclass(frozen=True)
class ModelSet:
    """Fitted models by name, in training order, with the seconds each fit took."""

    models: dict[str, Recommender]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def content(self) -> ContentBased:
        """The content model (the hybrid's and the diversity measure's item vectors)."""
        model = self.models[ContentBased.name]
        assert isinstance(model, ContentBased)
        return model


def ordered_models(names: Iterable[str]) -> tuple[str, ...]:
    """Validate model names and put them in training order (the hybrid last)."""
    wanted = set(names)
    for name in wanted:
        if name not in MODEL_NAMES:
            raise UnknownModel(name, MODEL_NAMES)
    return tuple(name for name in MODEL_NAMES if name in wanted)


def fit_sub_models(
    dataset: Dataset,
    content: ContentBased | None = None,
    collaborative: Collaborative | None = None,
) -> tuple[ContentBased, Collaborative]:
    """Fit fresh content and collaborative models on ``dataset``.

    ``content`` and ``collaborative`` are templates: their hyperparameters are used (fitted or
    not, they are cloned), the defaults when None. These are validation models, scored over
    the whole catalogue, so they rank no shortlists.
    """
    fitted_content = clone(content or ContentBased()).set_params(shortlist=0).fit(dataset)
    fitted_collaborative = (
        clone(collaborative or Collaborative()).set_params(shortlist=0).fit(dataset)
    )
    return fitted_content, fitted_collaborative


def fit_model_set(
    dataset: Dataset,
    names: Iterable[str] = MODEL_NAMES,
    *,
    hybrid_weight: HybridWeight = "auto",
    sub_models: Mapping[str, Recommender] | None = None,
    before_each: Callable[[str], object] | None = None,
) -> ModelSet:
    """Fit the models ``names`` on ``dataset``, in training order.

    Parameters
    ----------
    dataset : Dataset
        What to learn from.
    names : iterable of str
        Which of the served models to fit; the hybrid is built from the content and
        collaborative models fitted in the same call, or else from ``sub_models``.
    hybrid_weight : float or "auto"
        The hybrid's content weight.
    sub_models : mapping, optional
        Already fitted content and collaborative models, for building the hybrid alone.
    before_each : callable, optional
        Called with each model's name before it is fitted (progress, a stop check).

    Raises
    ------
    UnknownModel
        If a name is not one of the served models.
    RuntimeError
        If the hybrid is asked for without its sub-models.
    """
    available = dict(sub_models or {})
    fitted: dict[str, Recommender] = {}
    seconds: dict[str, float] = {}
    order = ordered_models(names)
    # Sub-models fitted for a hybrid in this call are ranked in the hybrid's pass, which scores
    # each user once for the three models; its seconds then include their ranking.
    rank = Hybrid.name not in order
    for name in order:
        if before_each is not None:
            before_each(name)
        start = time.perf_counter()
        model: Recommender
        if name == Hybrid.name:
            content, collaborative = _parents(available)
            model = Hybrid(
                content=content, collaborative=collaborative, content_weight=hybrid_weight
            ).fit(dataset)
        elif name == ContentBased.name:
            model = ContentBased().fit(dataset, rank=rank)
        else:
            model = Collaborative().fit(dataset, rank=rank)
        seconds[name] = time.perf_counter() - start
        fitted[name] = available[name] = model
    return ModelSet(fitted, seconds)


def _parents(available: Mapping[str, Recommender]) -> tuple[ContentBased, Collaborative]:
    content, collaborative = available.get(ContentBased.name), available.get(Collaborative.name)
    missing = [
        name
        for name, model in ((ContentBased.name, content), (Collaborative.name, collaborative))
        if model is None
    ]
    if missing:
        raise RuntimeError(
            f"cannot build the hybrid: {' and '.join(missing)} not trained; train all three"
        )
    assert isinstance(content, ContentBased) and isinstance(collaborative, Collaborative)
    return content, collaborative
