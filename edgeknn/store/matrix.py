"""The in-memory search matrix: float16 unit vectors with their ids and class codes.

Rows live in fixed-size blocks, so growing never copies the matrix (a
doubling array would copy it, touching twice the memory while it does).  Removal moves the last row into the hole, so
add and remove are O(1); running per-class sums give the class means.
"""

from __future__ import annotations

import numpy as np

from edgeknn.store.search import similarities

DTYPE = np.float16
# Rows per block: 64 MB of address space at 1024-d, but pages are backed by
# memory only once rows are written, so a new block costs nothing until used.
BLOCK = 32768


class Matrix:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.n = 0
        self.blocks: list[np.ndarray] = []
        self.ids = np.zeros(256, dtype=np.int64)
        self.codes = np.zeros(256, dtype=np.int32)
        self.row_of: dict[int, int] = {}
        # Per-class sums of the embeddings, for the class means (float64 so
        # that many adds and removes do not drift).
        self.sums = np.zeros((8, dim), dtype=np.float64)
        self._grouping: tuple[np.ndarray, np.ndarray] | None = None

    # ----- rows ------------------------------------------------------------

    def _vector(self, row: int) -> np.ndarray:
        return self.blocks[row // BLOCK][row % BLOCK]

    def append(self, example_id: int, code: int, vector: np.ndarray) -> None:
        if self.n == len(self.blocks) * BLOCK:
            self.blocks.append(np.zeros((BLOCK, self.dim), dtype=DTYPE))
        if self.n == len(self.ids):
            self.ids = np.resize(self.ids, 2 * len(self.ids))
            self.codes = np.resize(self.codes, 2 * len(self.codes))
        row = self.n
        self.blocks[row // BLOCK][row % BLOCK] = vector
        self.ids[row] = example_id
        self.codes[row] = code
        self.row_of[example_id] = row
        self.n += 1
        self._ensure_class(code)
        self.sums[code] += self._vector(row)
        self._grouping = None

    def remove(self, example_id: int) -> None:
        row = self.row_of.pop(example_id)
        self.sums[self.codes[row]] -= self._vector(row)
        last = self.n - 1
        if row != last:  # move the last row into the hole
            self._vector(row)[:] = self._vector(last)
            self.ids[row] = self.ids[last]
            self.codes[row] = self.codes[last]
            self.row_of[int(self.ids[row])] = row
        self.n = last
        if len(self.blocks) * BLOCK - self.n >= BLOCK:
            self.blocks.pop()
        self._grouping = None

    def vectors(self) -> np.ndarray:
        """All rows as one (n, dim) array (a copy; for rare whole-matrix work)."""
        if not self.n:
            return np.zeros((0, self.dim), dtype=DTYPE)
        return np.concatenate(self.blocks)[: self.n]

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the rows where mask is true (clearing a class or everything)."""
        vectors = self.vectors()[mask]
        ids = self.ids[: self.n][mask]
        codes = self.codes[: self.n][mask]
        self.__init__(self.dim)  # type: ignore[misc]
        for example_id, code, vector in zip(ids, codes, vectors, strict=True):
            self.append(int(example_id), int(code), vector)

    # ----- classes ---------------------------------------------------------

    def _ensure_class(self, code: int) -> None:
        if code >= len(self.sums):
            grown = np.zeros((2 * code + 1, self.dim), dtype=np.float64)
            grown[: len(self.sums)] = self.sums
            self.sums = grown

    def relabel(self, old: int, new: int) -> None:
        self._ensure_class(new)
        codes = self.codes[: self.n]
        codes[codes == old] = new
        self.sums[new] += self.sums[old]
        self.sums[old] = 0
        self._grouping = None

    def grouping(self, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ordered by class and each class's bounds in that order (cached until a change)."""
        if self._grouping is None or len(self._grouping[1]) != n_classes + 1:
            codes = self.codes[: self.n]
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(n_classes + 1))
            self._grouping = (order, bounds)
        return self._grouping

    # ----- search ----------------------------------------------------------

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """Cosine similarity of a unit query to every row, as float32 (n,)."""
        parts = []
        for i, block in enumerate(self.blocks):
            used = min(BLOCK, self.n - i * BLOCK)
            if used > 0:
                parts.append(similarities(block[:used], query))
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)

    @property
    def nbytes(self) -> int:
        """Memory the rows in use take (a block's unused rows are never touched, so
        the kernel does not back them with memory)."""
        per_row = self.dim * np.dtype(DTYPE).itemsize + self.ids.itemsize + self.codes.itemsize
        return self.n * per_row + self.sums.nbytes
