"""Content-based recommender: TF-IDF over name and description plus multi-hot categories.

Items are sparse, L2-normalised rows, so cosine similarity is a sparse dot product and nothing of
size n_items x n_items is ever built: memory and artifact size grow with the vocabulary actually
used by each item, about linearly in the number of items.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import MultiLabelBinarizer, normalize

from service.datasets import Dataset
from service.recommenders.base import FloatArray, IntArray, Recommender

__all__ = ["ContentBased"]


class ContentBased(Recommender):
    """Recommend items whose text and categories resemble what the user rated well.

    Parameters
    ----------
    category_weight : float, default=1.0
        Weight of the multi-hot category block relative to the (unit-norm) text block.
    max_features : int or None, default=50000
        Vocabulary cap for TF-IDF.
    min_df : int, default=1
        Ignore terms that appear in fewer items.
    ngram_range : tuple of int, default=(1, 2)
        Word n-grams used by TF-IDF.
    center_ratings : bool, default=True
        Weight each rated item by the rating minus the user's mean, so disliked items push the
        profile away; a user whose ratings are all equal falls back to plain rating weights.

    Attributes
    ----------
    item_vectors_ : scipy.sparse.csr_matrix of shape (n_items, n_features)
        L2-normalised item vectors.
    n_terms_ : int
        Number of TF-IDF terms (the vectorizer itself is not kept).
    category_labels_ : list of str
        Category names, in column order of the category block.
    """

    name = "content_based"

    def __init__(
        self,
        *,
        category_weight: float = 1.0,
        max_features: int | None = 50_000,
        min_df: int = 1,
        ngram_range: tuple[int, int] = (1, 2),
        center_ratings: bool = True,
    ) -> None:
        self.category_weight = category_weight
        self.max_features = max_features
        self.min_df = min_df
        self.ngram_range = ngram_range
        self.center_ratings = center_ratings

    def _fit(self, dataset: Dataset) -> None:
        if self.category_weight < 0:
            raise ValueError(f"category_weight must be >= 0, got {self.category_weight!r}")
        items = dataset.items
        text = (items["name"].astype(str) + " " + items["description"].astype(str)).to_list()
        vectorizer = TfidfVectorizer(
            max_features=self.max_features,
            min_df=self.min_df,
            ngram_range=self.ngram_range,
            sublinear_tf=True,
            dtype=np.float32,
        )
        try:
            words = vectorizer.fit_transform(text)
        except ValueError:  # every description empty: categories alone still work
            words = sp.csr_matrix((len(text), 0), dtype=np.float32)
        binarizer = MultiLabelBinarizer(sparse_output=True)
        categories = binarizer.fit_transform(items["categories"]).astype(np.float32)
        self.category_labels_ = [str(c) for c in binarizer.classes_]
        # The vectorizer is not kept: serving never embeds new text, and its vocabulary would
        # dominate the artifact's size.
        self.n_terms_ = int(words.shape[1])
        blocks = [normalize(words), normalize(categories) * self.category_weight]
        self.item_vectors_ = normalize(sp.hstack(blocks, format="csr")).astype(np.float32)

    def _profile_scores(self, items: IntArray, ratings: FloatArray) -> FloatArray:
        weights = ratings - ratings.mean() if self.center_ratings else ratings
        if not np.any(weights):
            weights = ratings
        # A dense profile: a sparse one costs a sparse-times-sparse product per request, several
        # times slower for a heavy user of a 20k-item catalogue (docs/PERFORMANCE.md, Scale).
        # einsum, not a BLAS dot: OpenBLAS threads a dot this long, which costs milliseconds
        # when another process holds the other core.
        profile = np.asarray(self.item_vectors_[items].T @ weights, dtype=np.float64)
        norm = float(np.sqrt(np.einsum("i,i->", profile, profile)))
        if norm == 0.0:
            return np.zeros(len(self.catalogue_))
        return np.asarray(self.item_vectors_ @ (profile / norm), dtype=np.float64)

    def _user_scores(self, user: int) -> FloatArray:
        return self._profile_scores(*self.user_ratings(user))

    def _ratings_scores(self, items: IntArray, ratings: FloatArray) -> FloatArray:
        return self._profile_scores(items, ratings)

    def _item_scores(self, item: int) -> FloatArray:
        return self.similarity(item, np.arange(len(self.catalogue_)))

    def similarity(self, item: int, others: IntArray) -> FloatArray:
        """Cosine similarity of the item at ``item`` to the items at ``others``."""
        scores = self.item_vectors_[others] @ self.item_vectors_[item].T
        return np.asarray(scores.toarray()).ravel().astype(np.float64)

    def pairwise(self, items: IntArray) -> FloatArray:
        """Dense cosine matrix among a few items (MMR candidates, diversity metrics)."""
        vectors = self.item_vectors_[items]
        return np.asarray((vectors @ vectors.T).toarray(), dtype=np.float64)
