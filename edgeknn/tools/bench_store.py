"""`edgeknn bench store`: predict latency, memory and add throughput of the store.

A benchmark, not a test: it prints numbers beside the targets and judges
nothing.  Embeddings are random unit vectors of the given dimension; each
example carries a thumbnail-sized blob so the disk work is realistic.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgeknn.config import ClassifierConfig
from edgeknn.features import FeatureTransform
from edgeknn.service.refit import MAX_ROWS, Refitter
from edgeknn.store import NewExample, Store
from edgeknn.vision.models import default_model

BALANCED = ClassifierConfig(method="balanced")  # the first table; logreg has its own
LOGREG = ClassifierConfig(method="logreg")
THUMBNAIL_BYTES = 12_000  # a 256 px JPEG at quality 85 is about this size
CLASSES = 10
QUERIES = 200
SINGLE_ADDS = 50


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.random((n, dim), dtype=np.float32)  # non-negative, like post-ReLU embeddings
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def batches(rng: np.random.Generator, n: int, dim: int, size: int = 1000) -> Iterator[list[NewExample]]:
    thumb = rng.bytes(THUMBNAIL_BYTES)
    for start in range(0, n, size):
        count = min(size, n - start)
        vecs = unit_vectors(rng, count, dim)
        yield [NewExample(f"class-{(start + i) % CLASSES}", vecs[i], thumb, "bench") for i in range(count)]


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1e3)


def bench_size(n: int, dim: int, workdir: Path, rng: np.random.Generator) -> dict[str, float]:
    path = workdir / f"bench-{n}.db"
    before = rss_bytes()
    store = Store.open(path)
    store.bind("bench", dim)
    started = time.perf_counter()
    for batch in batches(rng, n, dim):
        store.add_many(batch)
    bulk_seconds = time.perf_counter() - started
    added_mb = (rss_bytes() - before) / 1e6
    queries = unit_vectors(rng, QUERIES, dim)
    store.predict(queries[0], BALANCED)  # warm up
    times = []
    for q in queries:
        t = time.perf_counter()
        store.predict(q, BALANCED)
        times.append(time.perf_counter() - t)
    single = []
    thumb = rng.bytes(THUMBNAIL_BYTES)
    for v in unit_vectors(rng, SINGLE_ADDS, dim):
        t = time.perf_counter()
        store.add("single", v, thumb, "bench")
        single.append(time.perf_counter() - t)
    refit = _bench_refit(store, queries, rng.bytes(THUMBNAIL_BYTES), dim)
    info = store.info()
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {
        "examples": n,
        "predict_p50_ms": percentile_ms(times, 50),
        "predict_p95_ms": percentile_ms(times, 95),
        "matrix_mb": info.matrix_bytes / 1e6,
        "rss_added_mb": added_mb,
        "bulk_add_per_s": n / bulk_seconds,
        "single_add_p50_ms": percentile_ms(single, 50),
        "single_add_p95_ms": percentile_ms(single, 95),
        **refit,
    }


def _bench_refit(store: Store, queries: np.ndarray, thumb: bytes, dim: int) -> dict[str, float]:
    """The logreg head: a cold fit, a warm refit after one add (what a button press
    costs in the background), and predict with the fitted head."""
    features = default_model("embedder").features
    if features.mean is not None and len(features.mean) != dim:
        features = FeatureTransform(features.power)
    refitter = Refitter(store, features)
    started = time.perf_counter()
    refitter.refit_now()
    cold = time.perf_counter() - started
    store.add("class-0", queries[0], thumb, "bench")
    head = refitter.refit_now()
    assert head is not None
    times = []
    for q in queries:
        t = time.perf_counter()
        store.predict(q, LOGREG, head=head, features=features)
        times.append(time.perf_counter() - t)
    return {"refit_cold_s": cold, "refit_warm_s": head.seconds, "refit_rows": head.rows,
            "logreg_predict_p50_ms": percentile_ms(times, 50)}


def _one_size(n: int, dim: int, workdir: str) -> dict[str, float]:
    return bench_size(n, dim, Path(workdir), np.random.default_rng(n))


def run(sizes: list[int], dim: int, workdir: Path | None = None) -> list[dict[str, float]]:
    """Each size in a fresh process, so the memory one size freed does not hide
    what the next one takes."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, ctx.Pool(1, maxtasksperchild=1) as pool:
        return [pool.apply(_one_size, (n, dim, tmp)) for n in sizes]


def report(rows: list[dict[str, float]], dim: int) -> str:
    lines = [
        f"store benchmark: {dim}-d float16 embeddings, {CLASSES} classes, balanced classifier, "
        f"{os.cpu_count()} cores",
        f"{'examples':>9} {'predict p50':>12} {'p95':>8} {'matrix MB':>10} {'RSS +MB':>8} "
        f"{'bulk add/s':>11} {'single add p50':>15} {'p95':>8}",
    ]
    for r in rows:
        lines.append(
            f"{int(r['examples']):>9} {r['predict_p50_ms']:>10.2f}ms {r['predict_p95_ms']:>6.2f}ms "
            f"{r['matrix_mb']:>10.1f} {r['rss_added_mb']:>8.1f} {r['bulk_add_per_s']:>11.0f} "
            f"{r['single_add_p50_ms']:>13.2f}ms {r['single_add_p95_ms']:>6.2f}ms"
        )
    lines += [
        "",
        "logreg head (refitted in the background after a change; the class means answer meanwhile):",
        f"{'examples':>9} {'fit rows':>9} {'cold fit':>9} {'refit after 1 add':>18} {'logreg predict p50':>19}",
    ]
    for r in rows:
        lines.append(
            f"{int(r['examples']):>9} {int(r['refit_rows']):>9} {r['refit_cold_s']:>8.2f}s "
            f"{r['refit_warm_s']:>17.2f}s {r['logreg_predict_p50_ms']:>17.2f}ms"
        )
    lines.append(
        "targets: predict <= 1 ms at 10k and <= 10 ms at 100k; <= 250 MB added at 100k; "
        "single (fsynced) add <= 20 ms; bulk add >= 500/s; a refit lands within a second "
        f"at 100 examples; above {MAX_ROWS} examples the head is fitted on an even sample of {MAX_ROWS}"
    )
    return "\n".join(lines)
