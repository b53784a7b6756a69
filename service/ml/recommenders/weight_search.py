"""The hybrid's ``content_weight="auto"``: the content weight chosen on validation splits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from service.ml.datasets import Dataset
from service.ml.ranking import ndcg_at_k
from service.ml.recommenders.blend import rescale
from service.ml.recommenders.shortlists import for_each_block, top_k
from service.ml.splits import Holdout

if TYPE_CHECKING:
    from service.ml.recommenders.hybrid import Hybrid

__all__ = ["AUTO_GRID", "choose_weight"]

#: Content weights tried by ``content_weight="auto"``.
AUTO_GRID: tuple[float, ...] = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))


def choose_weight(hybrid: Hybrid, dataset: Dataset) -> tuple[float, dict[float, float]]:
    """Pick the content weight by NDCG@10 on validation splits of the training data.

    Returns the weight and the mean NDCG@10 of every weight tried (empty when no validation
    user could be scored). The hybrid's ``prior_weight`` is kept unless the best weight beats
    it by more than ``auto_significance`` standard errors of the paired per-user difference.
    """
    # The folds are independent: one per thread (their NMF fits and products release the GIL),
    # gathered in fold order, so the choice does not depend on how many threads ran them.
    folds: dict[int, dict[float, list[float]]] = {}

    def validate(fold: int) -> None:
        folds[fold] = _validate_fold(hybrid, dataset, hybrid.random_state + fold)

    # Without a template the folds fit this package's own models, which fit on threads.
    templates = [m for m in (hybrid.content, hybrid.collaborative) if m is not None]
    if all(template.fits_on_threads for template in templates):
        for_each_block(validate, range(hybrid.auto_folds))
    else:
        for fold in range(hybrid.auto_folds):
            validate(fold)
    per_user: dict[float, list[float]] = {w: [] for w in AUTO_GRID}
    for fold in range(hybrid.auto_folds):
        for weight, scores in folds[fold].items():
            per_user[weight].extend(scores)
    if not per_user[AUTO_GRID[0]]:
        return float(hybrid.prior_weight), {}
    table = {w: np.asarray(s) for w, s in per_user.items()}
    means = {w: float(s.mean()) for w, s in table.items()}
    best = max(means, key=lambda w: means[w])
    prior = min(AUTO_GRID, key=lambda w: abs(w - hybrid.prior_weight))
    gain = table[best] - table[prior]
    standard_error = float(gain.std(ddof=1) / np.sqrt(gain.size)) if gain.size > 1 else 0.0
    if gain.mean() <= hybrid.auto_significance * standard_error:
        return float(hybrid.prior_weight), means
    return float(best), means


def _validate_fold(
    hybrid: Hybrid, dataset: Dataset, seed: int, k: int = 10
) -> dict[float, list[float]]:
    """Per-user NDCG@k of every grid weight on one validation split."""
    # Imported here: the model set's factory imports the hybrid, which imports this module.
    from service.ml.model_set import fit_sub_models

    holdout = Holdout.of(dataset, seed)
    content, collaborative = fit_sub_models(holdout.part, hybrid.content, hybrid.collaborative)
    scores: dict[float, list[float]] = {w: [] for w in AUTO_GRID}
    relevant = holdout.relevant
    users = sorted(relevant)
    if len(users) > hybrid.auto_max_users:
        rng = np.random.default_rng(seed)
        users = sorted(rng.choice(users, hybrid.auto_max_users, replace=False))
    for user_id in users:
        truth = relevant[user_id]
        row = content.user_position(user_id)
        if row is None:
            continue
        c = rescale(content._user_scores(row), hybrid.normalization)
        f = rescale(collaborative._user_scores(row), hybrid.normalization)
        seen = content.seen(row)
        for weight in AUTO_GRID:
            order = top_k(weight * c + (1.0 - weight) * f, k, seen)
            ranked = [str(content.catalogue_.ids[i]) for i in order]
            scores[weight].append(ndcg_at_k(ranked, truth, k))
    return scores
