"""Fitting on Spark: MLlib ALS as the collaborative model, the model set, the quality gate."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Final

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.decomposition import NMF

from service.ml.datasets import Dataset
from service.ml.evaluation import K, evaluate_model
from service.ml.model_set import HybridWeight, ModelSet, ordered_models
from service.ml.recommenders import (
    MODEL_NAMES,
    Collaborative,
    ContentBased,
    Hybrid,
    Recommender,
)
from service.ml.recommenders.base import SHORTLIST, FloatArray
from service.ml.spark_engine.session import _quiet_pandas, active_session
from service.ml.splits import Holdout

if TYPE_CHECKING:
    pass


__all__ = ["GATE_USERS", "AlsCollaborative", "fit_model_set", "holdout_metrics", "sample_users"]


GATE_USERS: Final = 10_000
"""Held-out users the Spark engine's quality gate scores (a seeded sample beyond that)."""


class AlsCollaborative(Collaborative):
    """The collaborative model fitted by Spark MLlib's ALS, with non-negative factors.

    Fitted inside :func:`spark_session`; :meth:`as_collaborative` gives the standard
    :class:`~service.ml.recommenders.Collaborative` model the artifacts hold.

    Parameters
    ----------
    rank : int, default=200
        Number of latent factors. Chosen on MovieLens small with ``bench/tune_als.py`` over
        three holdout seeds (docs/EVALUATION.md): rank 200 scores NDCG@10 within 5 % of NMF on
        each, rank 64 5-10 % below. ``wisata-retrain --als-rank`` trades quality for speed.
    reg_param : float, default=0.05
        ALS's ``regParam`` (scaled by each user's and item's rating count, as MLlib does).
    implicit_prefs : bool, default=True
        True: MLlib's implicit-feedback ALS, the ratings as confidence ``1 + alpha * rating`` of
        a preference, every unrated pair a weak zero, the problem the service's NMF solves
        (it factorises missing ratings as zeros). False: explicit ALS, fitted on the rated
        pairs only, which ranks poorly (docs/EVALUATION.md).
    alpha : float, default=0.1
        Confidence per rating point (implicit only).
    max_iter : int, default=10
        ALS sweeps.
    blocks : int or None, default=None
        ALS's user and item blocks; None: the session's default parallelism.
    random_state : int, default=0
        Seed of the initial factors.
    shortlist : int, default=100
        Best unseen items ranked per known user at fit time, on the driver, as
        :class:`~service.ml.recommenders.Collaborative` does; 0 ranks none.
    """

    #: Each fit already runs on every executor of the session, so the weight search's folds
    #: gain nothing from threads; one after the other, pandas' own ``catch_warnings`` in one
    #: fold's conversions cannot drop the filters of :func:`service.ml.quiet.ignoring` that the
    #: other holds (the Spark hot-reload test once failed so).
    fits_on_threads = False

    engine: ClassVar[str] = "spark-als"

    def __init__(
        self,
        *,
        rank: int = 200,
        reg_param: float = 0.05,
        implicit_prefs: bool = True,
        alpha: float = 0.1,
        max_iter: int = 10,
        blocks: int | None = None,
        random_state: int = 0,
        shortlist: int = SHORTLIST,
    ) -> None:
        self.rank = rank
        self.reg_param = reg_param
        self.implicit_prefs = implicit_prefs
        self.alpha = alpha
        self.max_iter = max_iter
        self.blocks = blocks
        self.random_state = random_state
        self.shortlist = shortlist

    def _weights(self, ratings: FloatArray) -> FloatArray:
        # Implicit ALS models preference, 1 for a rated pair: a visitor folds in the same way.
        return np.ones_like(ratings) if self.implicit_prefs else ratings

    def _fit(self, dataset: Dataset) -> None:
        from pyspark.ml.recommendation import ALS

        spark = active_session()
        matrix = self.user_items_.tocoo()
        n_users, n_items = matrix.shape
        frame = pd.DataFrame(
            {
                "user": matrix.row.astype(np.int32),
                "item": matrix.col.astype(np.int32),
                "rating": matrix.data.astype(np.float32),
            }
        )
        blocks = self.blocks or max(1, spark.sparkContext.defaultParallelism)
        als = ALS(
            rank=self.rank,
            maxIter=self.max_iter,
            regParam=self.reg_param,
            implicitPrefs=self.implicit_prefs,
            alpha=self.alpha,
            nonnegative=True,
            numUserBlocks=blocks,
            numItemBlocks=blocks,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            seed=self.random_state,
        )
        with _quiet_pandas():
            ratings = spark.createDataFrame(frame)
            model = als.fit(ratings)
            users = _factors(model.userFactors.toPandas(), n_users, self.rank)
            items = _factors(model.itemFactors.toPandas(), n_items, self.rank)
        self.user_factors_ = users
        self.item_factors_ = np.ascontiguousarray(items.T)
        self.nmf_ = self._fold_in_solver(dataset, n_items)

    def _fold_in_solver(self, dataset: Dataset, n_items: int) -> NMF:
        """An NMF estimator holding the ALS item factors: the fold-in the service runs."""
        # ALS weighs its L2 term by each user's rating count; the fold-in's term is per item
        # of the catalogue, so it takes ALS's at the mean count.
        per_user = dataset.n_interactions / max(1, dataset.n_users)
        solver = NMF(
            n_components=self.rank,
            init="nndsvd",
            solver="cd",
            alpha_W=self.reg_param * per_user / max(1, n_items),
            alpha_H="same",
            l1_ratio=0.0,
            max_iter=100,
            random_state=self.random_state,
        )
        solver.components_ = self.item_factors_.copy()
        solver.n_components_ = self.rank
        solver.n_features_in_ = n_items
        return solver

    def as_collaborative(self) -> Collaborative:
        """The standard collaborative model with this model's learned state."""
        model = Collaborative(
            n_components=self.rank,
            weighting="binary" if self.implicit_prefs else "explicit",
            alpha_W=float(self.nmf_.alpha_W),
            max_iter=int(self.nmf_.max_iter),
            random_state=self.random_state,
            shortlist=self.shortlist,
        )
        for name, value in vars(self).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(model, name, value)
        return model


def _factors(frame: pd.DataFrame, rows: int, rank: int) -> np.ndarray:
    """ALS's ``(id, features)`` rows as a dense matrix; ids it never saw stay zero."""
    factors = np.zeros((rows, rank), dtype=np.float32)
    if len(frame):
        ids = frame["id"].to_numpy(dtype=np.int64)
        factors[ids] = np.asarray(frame["features"].tolist(), dtype=np.float32)
    return factors


def fit_model_set(
    dataset: Dataset,
    names: Iterable[str] = MODEL_NAMES,
    *,
    collaborative: AlsCollaborative | None = None,
    hybrid_weight: HybridWeight = "auto",
    before_each: Callable[[str], object] | None = None,
) -> ModelSet:
    """Fit ``names`` as :func:`service.ml.model_set.fit_model_set` does, the collaborative on Spark.

    The collaborative model in the result is the standard one (``as_collaborative``); the
    hybrid is attached to it. ``collaborative`` is the ALS template (its hyperparameters).
    """
    template = collaborative if collaborative is not None else AlsCollaborative()
    fitted: dict[str, Recommender] = {}
    seconds: dict[str, float] = {}
    als: AlsCollaborative | None = None
    order = ordered_models(names)
    # As in service.ml.model_set: sub-models fitted for a hybrid are ranked in its pass.
    rank = Hybrid.name not in order
    for name in order:
        if before_each is not None:
            before_each(name)
        start = time.perf_counter()
        if name == ContentBased.name:
            fitted[name] = ContentBased().fit(dataset, rank=rank)
        elif name == Collaborative.name:
            als = clone(template).fit(dataset, rank=rank)
            fitted[name] = als.as_collaborative()
        else:
            content = fitted.get(ContentBased.name)
            if not isinstance(content, ContentBased) or als is None:
                raise RuntimeError("cannot build the hybrid: train it with its two sub-models")
            # Its "auto" weight search clones the ALS template, so those fits run on Spark too.
            hybrid = Hybrid(content=content, collaborative=als, content_weight=hybrid_weight)
            hybrid.fit(dataset)
            # The pass ranked the ALS model's shortlists too: the standard model takes them.
            fitted[Collaborative.name] = plain = als.as_collaborative()
            hybrid.attach(content, plain)
            fitted[name] = hybrid
        seconds[name] = time.perf_counter() - start
    return ModelSet(fitted, seconds)


def holdout_metrics(
    dataset: Dataset,
    names: Iterable[str] = MODEL_NAMES,
    *,
    seed: int = 0,
    hybrid_weight: HybridWeight = "auto",
    collaborative: AlsCollaborative | None = None,
    max_users: int = GATE_USERS,
    before_each: Callable[[str], object] | None = None,
) -> dict[str, dict[str, float]]:
    """The holdout metrics of :func:`service.ml.evaluation.holdout_metrics`, ALS on Spark.

    The same seeded split and metric code; the models are scored on a seeded sample of at
    most ``max_users`` held-out users (all of them when there are fewer), which bounds the
    driver's work on a large dataset.
    """
    wanted = ordered_models(names)
    holdout = Holdout.of(dataset, seed)
    needed = {ContentBased.name, *wanted}
    if Hybrid.name in wanted:
        needed.add(Collaborative.name)
    fitted = fit_model_set(
        holdout.part,
        needed,
        collaborative=collaborative,
        hybrid_weight=hybrid_weight,
        before_each=before_each,
    )
    relevant = sample_users(holdout.relevant, max_users, seed)
    metrics: dict[str, dict[str, float]] = {}
    for name in wanted:
        scores = evaluate_model(fitted.models[name], relevant, fitted.content, K)
        metrics[name] = scores.metrics()
    return metrics


def sample_users(
    relevant: Mapping[str, set[str]], max_users: int, seed: int
) -> dict[str, set[str]]:
    """At most ``max_users`` of the held-out users, a seeded sample (all when fewer)."""
    users: Sequence[str] = sorted(relevant)
    if len(users) > max_users:
        rng = np.random.default_rng(seed)
        users = sorted(rng.choice(np.asarray(users, dtype=object), max_users, replace=False))
    return {user: relevant[user] for user in users}
