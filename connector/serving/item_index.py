"""An approximate nearest-neighbour index over a model version's items, for catalogues where
scoring every item per request costs more than the latency target allows.

A score is `query · E[item] + bias[item]`, an inner product once the bias is an extra
coordinate (`[E | bias]` against `[query | 1]`), so the index answers maximum inner product
search. It is faiss's IVF-Flat (Meta's similarity-search library, maintained and released
several times a year): k-means cells over the items, a query scans the `nprobe` cells
nearest to it, and the inner products it returns are exact (no compression), so candidates
carry their true scores. IVF rather than a graph index (HNSW): graphs recalled poorly on
inner-product search where the bias dominates the score, and IVF builds in seconds even for
1,000,000 items (docs/performance-log.md, Serving).

Before the cells are scanned, each query is tried against the HEAD items of highest bias
alone (one matrix product for a batch): an item outside them scores at most the largest bias
outside them plus the query's norm times the largest embedding norm outside them
(Cauchy-Schwarz), so when a query's count-th best head score reaches that bound, the head's
best items are the exact answer and the cells are not scanned. Where biases spread more than
queries move the scores (as in bench/serve.py's model) this is exact and many times cheaper;
where it fails, the query goes to the cells as before, after one wasted product
(docs/performance-log.md, Serving).

Only items with interaction data are indexed: items without any reach a list through
exploration alone (ranking.py), which draws from the cold items directly, not from here.
Built once per model version, before the version is served (current_model.py), so a request
never sees a half-built index.
"""

from __future__ import annotations

import math

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

CELLS_PER_SQRT_ITEM = 2.0  # cells = 2 * sqrt(items): about 632 for 100,000 items
TRAINING_POINTS_PER_CELL = 64  # k-means sample: enough for stable cells, fast to train
MIN_NPROBE = 16  # cells a query scans at least (recall@25 0.97-1.0 on bench/serve.py's models)
SCANNED_PER_RESULT = 4  # scan at least this many items per result asked for
SEED = 1234  # k-means initialisation, so one version always builds the same index
HEAD = 4096  # items of highest bias tried exactly before the cells (a query's bound permitting)
ADD_ROWS = 65_536  # items turned into index vectors at a time: never a second copy of them all


def single_threaded_numerics() -> None:
    """One BLAS and one OpenMP thread per call, for serving processes: a request or a batch
    scores a few vectors at a time from several threads, and multi-threaded BLAS then spins
    threads against each other (seconds instead of milliseconds per request on 2 cores:
    docs/performance-log.md, Serving). OpenMP's setting holds for
    the calling thread only, so ItemIndex.search sets it again in the thread that searches
    (a batch search from the connector's worker thread otherwise ran on 2 spinning threads)."""
    threadpool_limits(limits=1)
    faiss.omp_set_num_threads(1)  # this thread's; ItemIndex.search sets it in every caller


def item_vectors(embeddings: np.ndarray, bias: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """[embedding | bias] of the items `columns`, contiguous float32: an item's score is its
    row's inner product with [state | 1]."""
    return np.ascontiguousarray(
        np.hstack([embeddings[columns], bias[columns, None]]), dtype=np.float32
    )


class ItemIndex:
    """The items of `columns` (model item columns) with their embeddings and biases."""

    def __init__(self, embeddings: np.ndarray, bias: np.ndarray, columns: np.ndarray) -> None:
        self.columns = columns.astype(np.int64)
        self.size = len(columns)
        cells = max(1, min(round(CELLS_PER_SQRT_ITEM * math.sqrt(self.size)), self.size // 39))
        dimension = embeddings.shape[1] + 1
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = SEED
        index.train(item_vectors(embeddings, bias, _training_sample(self.columns, cells)))
        _add(index, quantizer, embeddings, bias, self.columns)
        self._index, self._quantizer = index, quantizer  # the quantizer must outlive the index
        self._cells = cells
        self._head = _Head.of(embeddings, bias, self.columns)

    def search(self, queries: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The (about) `count` best indexed items for each query: (scores, columns), both
        (len(queries), count), best first; column -1 (score -inf) where fewer were found."""
        count = max(1, min(count, self.size))
        augmented = np.ascontiguousarray(
            np.hstack([queries, np.ones((len(queries), 1), queries.dtype)]), dtype=np.float32
        )
        if self._head is None or count > len(self._head.columns) // 2:
            return self._scan(augmented, count)
        scores, columns, exact = self._head.search(augmented, queries, count)
        if not exact.all():
            missing = np.flatnonzero(~exact)
            scores[missing], columns[missing] = self._scan(augmented[missing], count)
        return scores, columns

    def _scan(self, augmented: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The IVF search of the cells nearest each query."""
        per_cell = self.size / self._cells
        nprobe = min(self._cells, max(MIN_NPROBE, math.ceil(SCANNED_PER_RESULT * count / per_cell)))
        params = faiss.SearchParametersIVF()
        params.nprobe = nprobe
        faiss.omp_set_num_threads(1)  # OpenMP's thread count is per calling thread
        scores, positions = self._index.search(augmented, count, params=params)
        found = positions >= 0
        columns = np.where(found, self.columns[np.maximum(positions, 0)], -1)
        return np.where(found, scores, -np.inf).astype(np.float32), columns


def _add(
    index: faiss.IndexIVFFlat,
    quantizer: faiss.IndexFlatIP,
    embeddings: np.ndarray,
    bias: np.ndarray,
    columns: np.ndarray,
) -> None:
    """Add the items' vectors to the index's cells, ADD_ROWS at a time, each cell's storage
    sized once to its final count: added one by one, a cell's storage grows by doubling and
    ends about a third larger than its vectors (docs/performance.md, Serving)."""
    chunks = [columns[start : start + ADD_ROWS] for start in range(0, len(columns), ADD_ROWS)]
    cells = [
        quantizer.search(item_vectors(embeddings, bias, chunk), 1)[1].ravel() for chunk in chunks
    ]
    if index.invlists is None:
        raise RuntimeError("an IVF index without inverted lists")
    lists = faiss.downcast_InvertedLists(index.invlists)
    for cell, count in enumerate(np.bincount(np.concatenate(cells), minlength=index.nlist)):
        lists.resize(cell, int(count))  # allocates exactly `count` entries ...
        lists.resize(cell, 0)  # ... which stay reserved for the adds below
    for chunk, assigned in zip(chunks, cells, strict=True):
        vectors = item_vectors(embeddings, bias, chunk)
        index.add_core(len(chunk), faiss.swig_ptr(vectors), None, faiss.swig_ptr(assigned))


def _training_sample(columns: np.ndarray, cells: int) -> np.ndarray:
    """The columns k-means learns the cells from: TRAINING_POINTS_PER_CELL per cell at most,
    drawn with SEED, in column order."""
    points = min(len(columns), cells * TRAINING_POINTS_PER_CELL)
    if points == len(columns):
        return columns
    chosen = np.random.default_rng(SEED).choice(len(columns), points, replace=False)
    return columns[np.sort(chosen)]


class _Head:
    """The HEAD indexed items of highest bias, and the bound on any other item's score."""

    def __init__(
        self, vectors: np.ndarray, columns: np.ndarray, rest_bias: float, rest_norm: float
    ) -> None:
        self.vectors, self.columns = vectors, columns
        self._rest_bias, self._rest_norm = rest_bias, rest_norm

    @classmethod
    def of(cls, embeddings: np.ndarray, bias: np.ndarray, columns: np.ndarray) -> _Head | None:
        """Of the indexed items `columns`; None when the head would be all of them."""
        if len(columns) <= HEAD:
            return None
        order = np.argsort(-bias[columns], kind="stable")
        head, rest = columns[order[:HEAD]], columns[order[HEAD:]]
        norms = np.concatenate(
            [
                np.linalg.norm(embeddings[rest[start : start + ADD_ROWS]], axis=1)
                for start in range(0, len(rest), ADD_ROWS)
            ]
        )
        return cls(
            item_vectors(embeddings, bias, head), head, float(bias[rest].max()), float(norms.max())
        )

    def search(
        self, augmented: np.ndarray, queries: np.ndarray, count: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per query, the `count` best head items (scores, columns, best first) and whether
        they are the exact answer over every indexed item."""
        scores = augmented @ self.vectors.T
        best = np.argpartition(-scores, count - 1, axis=1)[:, :count]
        top = np.take_along_axis(scores, best, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        top, best = np.take_along_axis(top, order, axis=1), np.take_along_axis(best, order, axis=1)
        bound = self._rest_bias + np.linalg.norm(queries, axis=1) * self._rest_norm
        exact = top[:, -1] >= bound
        return top.astype(np.float32), self.columns[best], exact
