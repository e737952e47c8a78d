"""Nearest-neighbour index over one model version's item vectors.

Item vectors have one norm across a version (1; sqrt(2) with a content blend, whose second part
is the normalised content: :meth:`learnrec.shared.model.towers.LearnModel.served_item`), so the
inner product ranks as the cosine does; it is the score returned. Every item id gets a row (its
hnswlib label) in insertion order; an upsert of a known id overwrites its row; a removed item
keeps its row, marked removed (and deleted in the graph) until an upsert brings it back. The rows
are kept as a dense float32 matrix ``[n, dim]``:

- below ``exact_below`` items, searches are exact (one matrix-vector product);
- from there on an HNSW graph (hnswlib, inner product space) is built once, in a background
  thread from a copy of the matrix: searches stay exact and upserts go on meanwhile, and the
  graph is swapped in with the rows that changed during the build (:meth:`wait_built` waits for
  it); every later upsert keeps it in step. Searches that need more than ``ef`` candidates fall
  back to exact search, so a large ``k`` is never answered approximately-and-short.

All methods are thread-safe: one lock serialises upserts and searches (both take well under a
millisecond for the batch sizes the stream produces), which also covers hnswlib's resize; the
graph build holds it only to copy the matrix and to swap the graph in.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

import hnswlib
import numpy as np

log = logging.getLogger(__name__)


class ItemIndex:
    """Item id -> vector ``[dim]`` float32, searchable by inner product."""

    def __init__(
        self,
        dim: int,
        *,
        exact_below: int = 20_000,
        ef: int = 128,
        m: int = 16,
        ef_construction: int = 100,
        threads: int = 1,
    ) -> None:
        self.dim = dim
        self.exact_below = exact_below
        self.ef = ef
        self._m = m
        self._ef_construction = ef_construction
        self._threads = threads
        self._lock = threading.Lock()
        self._matrix = np.zeros((1024, dim), dtype=np.float32)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._removed: set[int] = set()  # rows of removed items
        self._hnsw: hnswlib.Index | None = None
        self._build: threading.Thread | None = None  # a graph build under way
        self._changed: set[int] = set()  # rows upserted while it runs

    def __len__(self) -> int:
        return len(self._ids) - len(self._removed)

    def __contains__(self, item_id: object) -> bool:
        row = self._rows.get(item_id)  # type: ignore[arg-type]
        return row is not None and row not in self._removed

    @property
    def approximate(self) -> bool:
        """Whether searches go through the HNSW graph."""
        return self._hnsw is not None

    def vector(self, item_id: str) -> np.ndarray | None:
        """A copy of the item's vector ``[dim]``, or None for an unknown id."""
        with self._lock:
            row = self._rows.get(item_id)
            return None if row is None or row in self._removed else self._matrix[row].copy()

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add or replace items. ``vectors``: float32 ``[len(ids), dim]``, all of one norm."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if not ids:
            return
        with self._lock:
            rows = np.empty(len(ids), dtype=np.int64)
            for i, item_id in enumerate(ids):
                row = self._rows.get(item_id)
                if row is None:
                    row = len(self._ids)
                    self._rows[item_id] = row
                    self._ids.append(item_id)
                rows[i] = row
                self._removed.discard(row)
            self._reserve(len(self._ids))
            self._matrix[rows] = vectors
            if self._hnsw is not None:
                self._hnsw.add_items(vectors, rows, num_threads=self._threads)
            elif self._build is not None:
                self._changed.update(rows.tolist())
            elif len(self._ids) >= self.exact_below:
                # not a daemon: at exit the interpreter waits for a build instead of killing it in hnswlib
                self._build = threading.Thread(target=self._build_hnsw, name="hnsw-build")
                self._build.start()

    def save(self, folder: Path) -> None:
        """Write the rows and the graph to ``folder`` (created; it must not exist): ``ids.json``,
        ``removed.json``, ``matrix.npy`` ``[n, dim]`` and, with a graph, ``graph.hnsw``."""
        folder.mkdir(parents=True)
        with self._lock:
            n = len(self._ids)
            (folder / "ids.json").write_text(json.dumps(self._ids))
            (folder / "removed.json").write_text(json.dumps(sorted(self._removed)))
            np.save(folder / "matrix.npy", self._matrix[:n])
            if self._hnsw is not None:
                self._hnsw.save_index(str(folder / "graph.hnsw"))

    @classmethod
    def load(cls, folder: Path, dim: int, **options) -> ItemIndex:
        """An index as :meth:`save` wrote it (``options``: the constructor's); its graph is read,
        not built again."""
        index = cls(dim, **options)
        ids = json.loads((folder / "ids.json").read_text())
        matrix = np.load(folder / "matrix.npy")
        if matrix.shape != (len(ids), dim):
            raise ValueError(f"{folder}: matrix {matrix.shape} does not match {len(ids)} ids of width {dim}")
        index._ids = ids
        index._rows = {item_id: row for row, item_id in enumerate(ids)}
        index._removed = set(json.loads((folder / "removed.json").read_text()))
        index._matrix = np.zeros((max(1024, 2 * len(ids)), dim), dtype=np.float32)
        index._matrix[: len(ids)] = matrix
        if (folder / "graph.hnsw").exists():
            graph = hnswlib.Index(space="ip", dim=dim)
            graph.load_index(str(folder / "graph.hnsw"), max_elements=2 * len(ids))
            graph.set_ef(index.ef)  # the file keeps the removed rows' deletion marks
            index._hnsw = graph
        return index

    def wait_built(self, timeout: float | None = None) -> None:
        """Return once no graph build is under way (at once when none is)."""
        build = self._build
        if build is not None:
            build.join(timeout)

    def remove(self, ids: Collection[str]) -> None:
        """Take items out of every later search (unknown or removed ids are ignored)."""
        with self._lock:
            for item_id in ids:
                row = self._rows.get(item_id)
                if row is None or row in self._removed:
                    continue
                self._removed.add(row)
                if self._hnsw is not None:
                    self._hnsw.mark_deleted(row)

    def search(
        self, query: np.ndarray, k: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``k`` best items for ``query`` ``[dim]``, best first, as (item id, score).

        Items in ``exclude`` are left out; fewer than ``k`` come back only when the index holds
        fewer eligible items.
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(self.dim)
        with self._lock:
            n = len(self._ids)
            excluded = {self._rows[i] for i in exclude if i in self._rows} - self._removed
            skip = excluded | self._removed
            wanted = min(n - len(self._removed), k + len(excluded))
            if wanted <= 0:
                return []
            found = self._approximate(query, wanted) if wanted <= self.ef else None
            rows, scores = found or self._exact(query, n, wanted, skip)
            return [
                (self._ids[row], float(score))
                for row, score in zip(rows.tolist(), scores.tolist(), strict=True)
                if row not in skip
            ][:k]

    def _approximate(
        self, query: np.ndarray, wanted: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """HNSW (rows, scores), ``[wanted]`` each, best first; None without a graph or when
        hnswlib comes up short."""
        if self._hnsw is None:
            return None
        try:
            labels, distances = self._hnsw.knn_query(query, k=wanted, num_threads=1)
        except RuntimeError:  # "cannot return the results in a contiguous 2D array"
            return None
        return labels[0], 1.0 - distances[0]

    def _exact(
        self, query: np.ndarray, n: int, wanted: int, skip: set[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = self._matrix[:n] @ query  # [n]
        if skip:
            scores[list(skip)] = -np.inf
        top = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < n else np.arange(n)
        order = top[np.argsort(-scores[top], kind="stable")]
        return order, scores[order]

    def _reserve(self, n: int) -> None:
        if n > len(self._matrix):
            grown = np.zeros((max(n, 2 * len(self._matrix)), self.dim), dtype=np.float32)
            grown[: len(self._matrix)] = self._matrix
            self._matrix = grown
        if self._hnsw is not None and n > self._hnsw.get_max_elements():
            self._hnsw.resize_index(max(n, 2 * self._hnsw.get_max_elements()))

    def _build_hnsw(self) -> None:
        """Build the graph from a copy of the rows, outside the lock; then, under it, add the
        rows upserted meanwhile, mark the removed ones, and swap the graph in."""
        try:
            with self._lock:
                n = len(self._ids)
                snapshot = self._matrix[:n].copy()
            graph = hnswlib.Index(space="ip", dim=self.dim)
            graph.init_index(max_elements=2 * n, ef_construction=self._ef_construction, M=self._m)
            graph.add_items(snapshot, np.arange(n), num_threads=self._threads)
            graph.set_ef(self.ef)
            with self._lock:
                total = len(self._ids)
                if total > graph.get_max_elements():
                    graph.resize_index(2 * total)
                changed = np.array(sorted(self._changed), dtype=np.int64)
                if len(changed):
                    graph.add_items(self._matrix[changed], changed, num_threads=self._threads)
                for row in self._removed:
                    graph.mark_deleted(row)
                self._hnsw = graph
        except Exception:  # out of memory, say: searches stay exact, the next upsert tries again
            log.exception("building the HNSW graph failed; searching exactly")
        finally:
            with self._lock:
                self._changed.clear()
                self._build = None
