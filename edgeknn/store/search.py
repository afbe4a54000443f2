"""Brute-force cosine similarity over the compact (float16) search matrix.

SimSIMD computes float16 dot products with SIMD (AVX2/AVX-512 on x86, NEON
on the Pi) straight from the float16 matrix; without it, numpy converts the
matrix to float32 in chunks, which is correct but several times slower.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_simsimd: Any
try:
    import simsimd as _simsimd
except ImportError:  # optional speed-up; numpy gives the same numbers
    _simsimd = None

THREADS = os.cpu_count() or 1
CHUNK = 8192
# Below this many rows a second thread costs more than it saves, and on a busy
# 2-core device (the model's threads run too) waiting for it can take a whole
# scheduler slice: 10k rows take 0.8 ms on one thread, up to 8 ms on two.
THREADED_ROWS = 32768


def similarities(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Dot products of a float32 unit query with each float16 row, as float32 (N,)."""
    if len(matrix) == 0:
        return np.empty(0, dtype=np.float32)
    if _simsimd is not None:
        q = query.astype(np.float16)[None]
        threads = THREADS if len(matrix) >= THREADED_ROWS else 1
        out = _simsimd.cdist(q, matrix, metric="dot", dtype="float16", threads=threads)
        return np.asarray(out, dtype=np.float32).reshape(-1)
    return numpy_similarities(matrix, query)


def numpy_similarities(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    q = query.astype(np.float32)
    out = np.empty(len(matrix), dtype=np.float32)
    for start in range(0, len(matrix), CHUNK):
        out[start : start + CHUNK] = matrix[start : start + CHUNK].astype(np.float32) @ q
    return out
