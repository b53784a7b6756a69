"""Content-based recommender: TF-IDF over name and description plus multi-hot categories.

Items are sparse, L2-normalised rows, so cosine similarity is a sparse dot product and nothing of
size n_items x n_items is ever built: memory and artifact size grow with the vocabulary actually
used by each item, about linearly in the number of items.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import MultiLabelBinarizer, normalize

from service.ml.datasets import Dataset
from service.ml.recommenders.base import SHORTLIST, FloatArray, IntArray, Recommender
from service.ml.recommenders.shortlists import block_size, for_each_block

__all__ = ["DENSE_PAIRWISE_LIMIT", "SIMILARITY_TABLE_BYTES", "ContentBased", "pairwise_in"]

#: Multiply-adds (stored entries x items) up to which ``pairwise`` uses a dense block: about
#: 0.3 ms of work, what scipy's sparse product costs in per-call overhead alone.
DENSE_PAIRWISE_LIMIT = 1_000_000

#: Stored entries from which ``_block_scores`` multiplies several users' profiles at once: a
#: matrix past the processor's cache costs more to read than to multiply (measured, 2 cores:
#: 215k entries 0.26 ms a user one by one, 0.37 in blocks; 800k entries 2.3 against 1.45).
BLOCK_PRODUCT_ENTRIES = 500_000
#: Users per product in ``_block_scores``: 64 profiles of 50k features are 26 MB.
PROFILES_PER_PRODUCT = 64

#: The largest every-item-to-every-item table ``similarity_table`` builds (float32 n x n): up to
#: 23,170 items. The fit-time ranking reads MMR candidates' similarities from it instead of
#: multiplying their vectors for every user; past it each user's are computed on their own.
SIMILARITY_TABLE_BYTES = 2 << 30


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
    shortlist : int, default=100
        Best unseen items ranked per known user at fit time (``shortlist_``), so a request
        scores only the items it returns; 0 ranks at every request.

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
        shortlist: int = SHORTLIST,
    ) -> None:
        self.category_weight = category_weight
        self.max_features = max_features
        self.min_df = min_df
        self.ngram_range = ngram_range
        self.center_ratings = center_ratings
        self.shortlist = shortlist

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

    # The request paths below read the CSR arrays of ``item_vectors_`` directly instead of going
    # through scipy's fancy indexing, transposes and sparse-sparse products: on a request's few
    # rows scipy's per-call checks and conversions cost several times the arithmetic. Every sum
    # is still done by the same scipy kernel or in the same order, in the same dtype, as the
    # plain scipy expression in each comment, so the scores are the same to the last bit.

    def _profile_scores(self, items: IntArray, ratings: FloatArray) -> FloatArray:
        unit = self._unit_profile(items, ratings)
        if unit is None:
            return np.zeros(len(self.catalogue_))
        return np.asarray(self.item_vectors_ @ unit, dtype=np.float64)

    def _unit_profile(self, items: IntArray, ratings: FloatArray) -> FloatArray | None:
        """The rating-weighted sum of the items' vectors, unit length (None when it is zero)."""
        return self._unit_profile_at(items, ratings)[0]

    def _unit_profile_at(
        self, items: IntArray, ratings: FloatArray
    ) -> tuple[FloatArray | None, npt.NDArray[np.int32]]:
        """``_unit_profile`` and the features it can be non-zero at (with repeats)."""
        weights = ratings - ratings.mean() if self.center_ratings else ratings
        if not np.any(weights):
            weights = ratings
        # A dense profile: a sparse one costs a sparse-times-sparse product per request, several
        # times slower for a heavy user of a 20k-item catalogue (docs/PERFORMANCE.md, Scale).
        # ``item_vectors_[items].T @ weights``: scipy's csc_matvec adds each stored entry's
        # float64 product into its feature, item after item, in stored order; bincount adds the
        # same products in the same order.
        vectors = self.item_vectors_
        positions, lengths = _row_entries(vectors, items)
        features = vectors.indices[positions]
        products = vectors.data[positions].astype(np.float64) * np.repeat(weights, lengths)
        profile = np.bincount(features, weights=products, minlength=vectors.shape[1])
        # einsum, not a BLAS dot: OpenBLAS threads a dot this long, which costs milliseconds
        # when another process holds the other core.
        norm = float(np.sqrt(np.einsum("i,i->", profile, profile)))
        if norm == 0.0:
            return None, features
        return profile / norm, features

    def _user_scores(self, user: int) -> FloatArray:
        return self._profile_scores(*self.user_ratings(user))

    def _block_scores(self, rows: IntArray) -> npt.NDArray[np.float64]:
        vectors = self.item_vectors_
        if vectors.nnz < BLOCK_PRODUCT_ENTRIES:
            return super()._block_scores(rows)
        # Past the cache, one product for 64 users reads the matrix once instead of 64 times.
        # scipy multiplies the float32 matrix by float64 columns as it does a float64 vector:
        # each score is the same sum, to the last bit.
        scores = np.empty((len(rows), vectors.shape[0]))
        for start in range(0, len(rows), PROFILES_PER_PRODUCT):
            chunk = rows[start : start + PROFILES_PER_PRODUCT]
            profiles = np.zeros((vectors.shape[1], len(chunk)))
            for k, row in enumerate(chunk):
                unit, features = self._unit_profile_at(*self.user_ratings(int(row)))
                if unit is not None:  # else zeros, as _profile_scores answers
                    # Only the rated items' features: writing a whole column of this row-major
                    # block costs a cache line per feature (measured: 0.23 of 0.9 ms a user).
                    profiles[features, k] = unit[features]
            scores[start : start + len(chunk)] = (vectors @ profiles).T
        return scores

    def _block_item_scores(self, items: IntArray) -> npt.NDArray[np.float64]:
        return np.ascontiguousarray(self._block_similarities(items), dtype=np.float64)

    def _block_similarities(self, items: IntArray) -> npt.NDArray[np.float32]:
        """Each item's ``_item_scores`` in float32 (before the cast), a row each."""
        # The items' dense rows as columns, in float32 as ``_item_scores`` multiplies them.
        vectors = self.item_vectors_
        rows = np.zeros((vectors.shape[1], len(items)), dtype=vectors.dtype)
        positions, lengths = _row_entries(vectors, np.asarray(items, dtype=np.intp))
        rows[vectors.indices[positions], np.repeat(np.arange(len(items)), lengths)] = vectors.data[
            positions
        ]
        similarities: npt.NDArray[np.float32] = (vectors @ rows).T
        return similarities

    def similarity_table(self) -> npt.NDArray[np.float32] | None:
        """Every item's similarity to every item (row ``k``: ``_item_scores(k)`` in float32).

        None when it would take more than ``SIMILARITY_TABLE_BYTES``. Entry ``[k, i]`` is the
        sum ``pairwise`` computes for row ``i`` and column ``k``, so :func:`pairwise_in` reads
        the same bits as ``pairwise`` out of it.
        """
        n = len(self.catalogue_)
        if n * n * 4 > SIMILARITY_TABLE_BYTES:
            return None
        vectors = self.item_vectors_
        table = np.empty((n, n), dtype=np.float32)
        step = block_size(n, n)
        features = vectors.T.tocsr()

        def fill(start: int) -> None:
            # Row i of the sparse product X[items] @ X.T sums i's stored entries in stored order
            # against every item, skipping only zero products: pairwise's sums, a column each.
            rows = _rows(vectors, np.arange(start, min(n, start + step), dtype=np.intp))
            table[:, start : start + step] = (rows @ features).toarray().T

        for_each_block(fill, range(0, n, step))
        return table

    def _scores_at(self, user: int, items: IntArray) -> FloatArray:
        # csr_matvec sums each row in stored order whether it multiplies the whole matrix or
        # these rows alone: the same bits as ``_user_scores(user)[items]``.
        unit = self._unit_profile(*self.user_ratings(user))
        if unit is None:
            return np.zeros(len(items))
        return np.asarray(_rows(self.item_vectors_, items) @ unit, dtype=np.float64)

    def _ratings_scores(self, items: IntArray, ratings: FloatArray) -> FloatArray:
        return self._profile_scores(items, ratings)

    def _item_scores(self, item: int) -> FloatArray:
        # The whole catalogue: one float32 matrix-vector product, without copying the matrix.
        scores = self.item_vectors_ @ self._dense_row(item)
        return np.asarray(scores, dtype=np.float64)

    def similarity(self, item: int, others: IntArray) -> FloatArray:
        """Cosine similarity of the item at ``item`` to the items at ``others``."""
        # ``item_vectors_[others] @ item_vectors_[item].T`` sums, per other item, the float32
        # products over its stored entries in stored order; so does csr_matvec against the
        # item's row made dense (its zeros add nothing).
        rows = _rows(self.item_vectors_, np.asarray(others, dtype=np.intp))
        return np.asarray(rows @ self._dense_row(item), dtype=np.float64)

    def pairwise(self, items: IntArray) -> FloatArray:
        """Dense cosine matrix among a few items (MMR candidates, diversity metrics)."""
        # ``vectors @ vectors.T`` (scipy's csr_matmat) sums the float32 products of row i's
        # stored entries with row k's, in row i's stored order. csr_matvecs against the rows
        # made dense over the union of their features does the same sums in the same order.
        # The dense path multiplies every stored entry by every item: past the limit (long rows,
        # many candidates) scipy's sparse product, which skips the zeros, costs less.
        items = np.asarray(items, dtype=np.intp)
        vectors = self.item_vectors_
        positions, lengths = _row_entries(vectors, items)
        if positions.size * items.size > DENSE_PAIRWISE_LIMIT:
            rows = _rows(vectors, items)
            return np.asarray((rows @ rows.T).toarray(), dtype=np.float64)
        data = vectors.data[positions]
        columns, n_columns = _compact(vectors.indices[positions], vectors.shape[1])
        block = np.zeros((n_columns, len(items)), dtype=vectors.dtype)
        block[columns, np.repeat(np.arange(len(items)), lengths)] = data
        rows = sp.csr_matrix(
            (data, columns, _indptr(lengths, vectors.indptr.dtype)),
            shape=(len(items), n_columns),
        )
        return np.asarray(rows @ block, dtype=np.float64)

    def _dense_row(self, item: int) -> npt.NDArray[np.float32]:
        """The vector of the item at ``item`` as a dense float32 array over all features.

        Like the dense block of :meth:`pairwise`, it relies on ``item_vectors_`` holding no
        duplicate entries in a row, which the sparse stacking and normalising in ``_fit`` ensure.
        """
        vectors = self.item_vectors_
        start, end = vectors.indptr[item], vectors.indptr[item + 1]
        row = np.zeros(vectors.shape[1], dtype=vectors.dtype)
        row[vectors.indices[start:end]] = vectors.data[start:end]
        return row


def pairwise_in(table: npt.NDArray[np.float32], items: IntArray) -> FloatArray:
    """``pairwise(items)`` read from a ``similarity_table``: the same bits, without products."""
    # pairwise's [a, b] sums row a's stored entries against item b: the table's [b, a]. One
    # flat take: the gathers are cache misses across the table, and np.ix_ indexing costs twice.
    items = np.asarray(items, dtype=np.int64)
    flat = items[np.newaxis, :] * table.shape[1] + items[:, np.newaxis]
    return np.asarray(np.take(table.reshape(-1), flat), dtype=np.float64)


def _row_entries(matrix: sp.csr_matrix, rows: IntArray) -> tuple[IntArray, IntArray]:
    """Where the stored entries of ``rows`` sit in ``matrix.indices`` and ``matrix.data``.

    Returns the positions, row after row and each row's entries in stored order (the order
    scipy's kernels sum them in), and the number of entries of each row.
    """
    starts = matrix.indptr[rows].astype(np.intp)
    lengths = matrix.indptr[rows + 1].astype(np.intp) - starts
    # An entry's position is its row's start plus its offset within the row.
    shifts = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(shifts.size, dtype=np.intp) + shifts, lengths


def _compact(columns: npt.NDArray[Any], n_features: int) -> tuple[npt.NDArray[np.int32], int]:
    """Number the distinct ``columns`` 0, 1, ...; return the numbers and how many there are.

    Any numbering does for ``pairwise``'s dense block, where a feature's row changes no sum. A
    table over all features, left uninitialised (only the slots of ``columns`` are written and
    read), keeps one position per distinct column; those kept positions are numbered in order.
    The cost is in the number of columns, not of features, and nothing is sorted: 1,700 columns
    of MovieLens small's 38k features in 30 us, against 85-118 for ``np.unique`` (numpy 2.4).
    """
    positions = np.arange(columns.size, dtype=np.int32)
    table = np.empty(n_features, dtype=np.int32)
    table[columns] = positions  # of a repeated column, one of its positions stays
    kept = table[columns]  # the same kept position for every repeat of a column
    numbers = np.cumsum(kept == positions, dtype=np.int32) - 1
    return numbers[kept], int(numbers[-1]) + 1 if columns.size else 0


def _indptr(lengths: IntArray, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    indptr = np.zeros(len(lengths) + 1, dtype=dtype)
    np.cumsum(lengths, out=indptr[1:])
    return indptr


def _rows(matrix: sp.csr_matrix, rows: IntArray) -> sp.csr_matrix:
    """``matrix[rows]`` (same arrays, same order) without scipy's fancy-indexing overhead."""
    positions, lengths = _row_entries(matrix, rows)
    return sp.csr_matrix(
        (
            matrix.data[positions],
            matrix.indices[positions],
            _indptr(lengths, matrix.indptr.dtype),
        ),
        shape=(len(rows), matrix.shape[1]),
    )
