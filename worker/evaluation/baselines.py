"""The classic baselines our model must beat, as worker.evaluation.recommender.Recommender models.

Inside the installed package so `streamrec evaluate` can compare against them (bench/ is not
installed; bench/quality.py imports them from here); ALS needs the optional `implicit`
package.

Each is trained from the training part of an Interactions split and scores a user from the
same HistoryEntry list our model reads, so the benchmark ranks all of them with one
evaluation routine (worker.evaluation.holdout). Every model keeps the full item vocabulary
of the data as its columns, so all are ranked over the same catalog.

- MostPopular: interaction counts, the same list for everyone.
- ItemKNN: cosine item-item similarity from the user-item matrix; a user's score is the sum of
  the similarities to the items of their last 5 events.
- MarkovChain: first-order next-item transition counts from consecutive events of each
  training sequence, read from the user's last item; popularity breaks ties.
- ALS: implicit's alternating least squares; a user's factors are recomputed from their
  history at scoring time (fold-in), as a new or anonymous user would be served.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import numpy as np
import scipy.sparse as sp

from connector.model.history import HistoryEntry
from worker.data.interactions import Interactions

KNN_LAST_ITEMS = 5


class _Catalog:
    """The item columns of a model, and the sparse matrices built from histories."""

    def __init__(self, data: Interactions) -> None:
        self.items = list(data.items)
        self.columns = {item: column for column, item in enumerate(self.items)}

    def history_matrix(
        self, histories: Sequence[Sequence[HistoryEntry]], last: int | None = None
    ) -> sp.csr_matrix:
        """(histories, items) binary rows of the known items of each history (its `last`
        events only, when given)."""
        rows = [self._known(history[-last:] if last else history) for history in histories]
        indptr = np.concatenate(([0], np.cumsum([len(row) for row in rows])))
        indices = np.concatenate([np.zeros(0, np.int64), *rows])
        data = np.ones(len(indices), dtype=np.float32)
        shape = (len(histories), len(self.items))
        matrix = sp.csr_matrix((data, indices, indptr), shape=shape)
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def last_items(self, histories: Sequence[Sequence[HistoryEntry]]) -> np.ndarray:
        """The column of each history's last event, -1 when empty or unknown."""
        return np.array(
            [self.columns.get(h[-1].item, -1) if h else -1 for h in histories], dtype=np.int64
        )

    def _known(self, history: Sequence[HistoryEntry]) -> np.ndarray:
        found = [self.columns[e.item] for e in history if e.item in self.columns]
        return np.array(found, dtype=np.int64)


def user_item_matrix(data: Interactions) -> sp.csr_matrix:
    """(users, items) binary matrix of who interacted with what, repeats counted once."""
    ones = np.ones(len(data), dtype=np.float32)
    shape = (len(data.users), len(data.items))
    matrix = sp.csr_matrix((ones, (data.user, data.item)), shape=shape)
    matrix.data[:] = 1.0
    return matrix


def popularity(data: Interactions) -> np.ndarray:
    """Interaction count per item (all events, repeats included)."""
    return np.bincount(data.item, minlength=len(data.items)).astype(np.float32)


class MostPopular:
    """The most interacted-with items first, for every user."""

    def __init__(self, data: Interactions) -> None:
        self.catalog = _Catalog(data)
        self.items = self.catalog.items
        self.popularity = popularity(data)

    def score_histories(self, histories: Sequence[Sequence[HistoryEntry]]) -> np.ndarray:
        """The same popularity scores for every history."""
        return np.tile(self.popularity, (len(histories), 1))


class ItemKNN:
    """Sum of cosine similarities to the items of the last few events."""

    def __init__(self, data: Interactions, last: int = KNN_LAST_ITEMS) -> None:
        self.catalog = _Catalog(data)
        self.items = self.catalog.items
        self.last = last
        self.similarity = cosine_similarity(user_item_matrix(data))

    def score_histories(self, histories: Sequence[Sequence[HistoryEntry]]) -> np.ndarray:
        recent = self.catalog.history_matrix(histories, last=self.last)
        return np.asarray((recent @ self.similarity).toarray(), dtype=np.float32)


def cosine_similarity(user_items: sp.csr_matrix) -> sp.csr_matrix:
    """(items, items) cosine similarity of the item columns, diagonal zeroed."""
    norms = np.sqrt(np.asarray(user_items.multiply(user_items).sum(axis=0)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    normalised = sp.csr_matrix(user_items @ sp.diags(inverse.astype(np.float32)))
    similarity = sp.csr_matrix(normalised.T @ normalised)
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    return similarity


class MarkovChain:
    """Counts of "item b followed item a" in training sequences, read from the last item."""

    def __init__(self, data: Interactions) -> None:
        self.catalog = _Catalog(data)
        self.items = self.catalog.items
        self.transitions = transition_counts(data)
        pop = popularity(data)
        self.tie_break = pop / (pop.max() + 1.0)  # < 1: only orders equal counts

    def score_histories(self, histories: Sequence[Sequence[HistoryEntry]]) -> np.ndarray:
        last = self.catalog.last_items(histories)
        scores = np.tile(self.tie_break, (len(histories), 1))
        known = np.flatnonzero(last >= 0)
        scores[known] += self.transitions[last[known]].toarray()
        return scores


def transition_counts(data: Interactions) -> sp.csr_matrix:
    """(items, items) counts of consecutive (previous, next) pairs within each user."""
    same_user = data.user[1:] == data.user[:-1]
    previous, following = data.item[:-1][same_user], data.item[1:][same_user]
    ones = np.ones(len(previous), dtype=np.float32)
    shape = (len(data.items), len(data.items))
    return sp.csr_matrix((ones, (previous, following)), shape=shape)  # duplicates summed


class ALS:
    """implicit's ALS on the binary user-item matrix, users folded in from their history.

    The defaults (128 factors, regularization 10, alpha 10) were the best of a 24-point grid
    (factors 32/64/128, regularization 0.01-10, alpha 1/10) on the MovieLens-100K split, so
    the baseline is tuned in its favour; the spread over that grid was 0.066-0.077 NDCG@10.
    """

    def __init__(
        self,
        data: Interactions,
        seed: int,
        factors: int = 128,
        regularization: float = 10.0,
        alpha: float = 10.0,
        iterations: int = 15,
    ) -> None:
        # Imported here: implicit is optional, and the other baselines run without it.
        from implicit.cpu.als import AlternatingLeastSquares

        self.catalog = _Catalog(data)
        self.items = self.catalog.items
        with _one_blas_thread():
            self.model = AlternatingLeastSquares(
                factors=factors,
                regularization=regularization,
                alpha=alpha,
                iterations=iterations,
                random_state=seed,
            )
            self.model.fit(user_item_matrix(data), show_progress=False)

    def score_histories(self, histories: Sequence[Sequence[HistoryEntry]]) -> np.ndarray:
        rows = self.catalog.history_matrix(histories)
        with _one_blas_thread():
            users = self.model.recalculate_user(np.arange(len(histories)), rows)
        return np.asarray(users @ self.model.item_factors.T, dtype=np.float32)


def _one_blas_thread() -> AbstractContextManager[object]:
    """implicit parallelises over users itself; a threaded BLAS underneath slows it down (and
    makes implicit warn). threadpoolctl comes with implicit."""
    from threadpoolctl import threadpool_limits

    limits: AbstractContextManager[object] = threadpool_limits(1, "blas")
    return limits
