"""The durable example store: SQLite (WAL) on disk, a compact search matrix in memory.

Durability: every add is committed (``synchronous=FULL``: the WAL is fsynced)
before it returns, so an acknowledged example survives ``kill -9`` and power
loss; SQLite's WAL makes a half-written transaction invisible, so the store is
never corrupted, and at most the add in flight is lost.  Bulk adds batch many
examples into one transaction.

Memory: embeddings are kept as float16 (2 bytes per dimension: 205 MB for
100k 1024-d examples, half of float32) in a block matrix updated in place on
add/remove, never rebuilt per add (see matrix.py).  Similarities are
computed by SimSIMD's float16 dot-product kernels (AVX2/AVX-512 on x86, NEON
on the Pi), falling back to numpy where SimSIMD is missing.

A store records the fingerprint of the embedder that made its embeddings
(model hash + tensor); it refuses another embedder's queries and can re-embed
itself from the JPEG thumbnail kept with every example.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np

from edgeknn.classify import Examples, classify
from edgeknn.config import ClassifierConfig
from edgeknn.errors import (
    FingerprintMismatch,
    StoreCorrupt,
    StoreError,
    UnknownExample,
    UnknownLabel,
)
from edgeknn.features import RAW, FeatureTransform
from edgeknn.head import Head
from edgeknn.images import encode_jpeg
from edgeknn.labels import validate_label
from edgeknn.results import Prediction
from edgeknn.store import classes, space, sqlite, views
from edgeknn.store.matrix import DTYPE, Matrix

T = TypeVar("T")
THUMBNAIL_SIDE = 256  # px, longest side: enough to re-embed at 224
DEFAULT_CLASSIFIER = ClassifierConfig()  # what an empty [classifier] config table gives


@dataclass(frozen=True)
class NewExample:
    label: str
    embedding: np.ndarray
    thumbnail: bytes | None = None
    source: str = ""
    mirror: np.ndarray | None = None  # the mirrored frame's embedding (see views.py)


@dataclass(frozen=True)
class ExampleRow:
    """One stored example as a listing shows it (the thumbnail is fetched on its own)."""

    id: int
    label: str
    source: str
    created: float  # Unix time


@dataclass(frozen=True)
class StoreInfo:
    path: Path
    fingerprint: str | None
    dim: int | None
    dtype: str
    count: int
    classes: dict[str, int]
    file_bytes: int
    matrix_bytes: int


class Store:
    """Labelled examples.  Thread-safe: one lock around the database and the matrix."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, readonly: bool = False,
                 writer_lock: BinaryIO | None = None) -> None:
        self.path = path
        self.readonly = readonly
        self._conn = conn
        self._writer_lock = writer_lock
        self._reserve = None if readonly else space.Reserve(path)
        if self._reserve is not None:
            self._reserve.ensure()
        self._lock = threading.RLock()
        self.fingerprint: str | None = self._meta("fingerprint")
        dim = self._meta("dim")
        self.dim: int | None = int(dim) if dim else None
        self._labels: list[str] = []
        self._code_of: dict[str, int] = {}
        self._matrix: Matrix | None = None
        # Counts every change, so a fitted head knows whether it still describes the store.
        self.version = 0
        if not readonly:
            classes.migrate(conn)  # stores made before class ids get them now
        self._load()

    # ----- opening ---------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, readonly: bool = False) -> Store:
        """Open (or create) a store file; a file that is not a store is StoreCorrupt.

        One process at a time may write a store (the service, or a command): a
        second writer is refused with a clear error, because each keeps its own
        search matrix in memory.  ``readonly`` opens never conflict and never write.
        """
        path = Path(path)
        if not path.exists():
            if not create or readonly:
                raise StoreError(f"store {path} does not exist; teach it first: edgeknn teach DIR --store {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
        elif path.is_dir():
            raise StoreError(f"store {path} is a directory; --store takes a file path")
        if readonly:
            return cls(path, sqlite.connect_readonly(path), readonly=True)
        lock = sqlite.writer_lock(path)
        try:
            conn = sqlite.connect_writable(path)
            views.ensure(conn)
            return cls(path, conn, writer_lock=lock)
        except BaseException:
            lock.close()
            raise

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _load(self) -> None:
        if self.dim is None:
            return
        self._matrix = Matrix(self.dim)
        expected = self.dim * np.dtype(DTYPE).itemsize
        try:
            for example_id, label, blob in self._conn.execute(
                "SELECT id, label, embedding FROM examples ORDER BY id"
            ):
                if len(blob) != expected:
                    raise StoreCorrupt(
                        f"store {self.path}: example {example_id} has a {len(blob)}-byte embedding, "
                        f"expected {expected}"
                    )
                self._matrix.append(example_id, self._code(label), np.frombuffer(blob, dtype=DTYPE))
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupt(f"store {self.path} is damaged ({exc})") from None

    def _code(self, label: str) -> int:
        code = self._code_of.get(label)
        if code is None:
            code = self._code_of[label] = len(self._labels)
            self._labels.append(label)
        return code

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._writer_lock is not None:
                self._writer_lock.close()  # releases the flock
                self._writer_lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- the embedder this store belongs to ------------------------------

    def bind(self, fingerprint: str, dim: int) -> None:
        """Tie an empty store to an embedder, or check a used one matches it."""
        with self._lock:
            if self.fingerprint is None and self.readonly:
                return  # an unbound store is empty; nothing to check, nothing to write
            if self.fingerprint is None:
                with sqlite.transaction(self._conn, self.path):
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                        [("fingerprint", fingerprint), ("dim", str(dim))],
                    )
                self.fingerprint, self.dim = fingerprint, dim
                self._matrix = Matrix(dim)
            elif self.fingerprint != fingerprint:
                raise FingerprintMismatch(
                    f"store {self.path} holds {len(self)} embeddings from another model "
                    f"({self.fingerprint}, this one is {fingerprint}); re-embed it from its "
                    "thumbnails with: edgeknn store reembed, or use another --store"
                )

    def reembed(
        self,
        embed: Callable[[bytes], np.ndarray],
        fingerprint: str,
        dim: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-embed every example from its thumbnail with a new embedder, in one transaction."""
        with self._lock:
            self._check_writable()
            self.version += 1
            rows = self._conn.execute("SELECT id, thumbnail FROM examples ORDER BY id").fetchall()
            missing = [i for i, t in rows if not t]
            if missing:
                raise StoreError(
                    f"store {self.path}: {len(missing)} examples have no thumbnail (e.g. id "
                    f"{missing[0]}); they cannot be re-embedded"
                )
            updates = []
            for done, (example_id, thumb) in enumerate(rows, 1):
                updates.append((_blob(embed(thumb), dim), example_id))
                if progress:
                    progress(done, len(rows))
            with sqlite.transaction(self._conn, self.path):
                self._conn.executemany("UPDATE examples SET embedding = ? WHERE id = ?", updates)
                # Views came from the old embedder: never mix them with the new one.
                self._conn.execute("DELETE FROM views")
                self._conn.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("fingerprint", fingerprint), ("dim", str(dim))],
                )
            self.fingerprint, self.dim = fingerprint, dim
            self._labels, self._code_of = [], {}
            self._load()
            return len(rows)

    # ----- changes ---------------------------------------------------------

    def add(self, label: str, embedding: np.ndarray, thumbnail: bytes | None = None, source: str = "") -> int:
        """Add one example; it is on disk (fsynced) when this returns its id."""
        return self.add_many([NewExample(label, embedding, thumbnail, source)])[0]

    def add_many(self, examples: Iterable[NewExample], *, replace: bool = False) -> list[int]:
        """Add examples in one transaction: all are durable, or none.  With ``replace``
        every existing example is removed in the same transaction (import --replace)."""
        items = list(examples)
        with self._lock:
            self._check_writable()
            self.version += 1
            if self._matrix is None or self.dim is None:
                raise StoreError(f"store {self.path} is not bound to an embedder yet")
            rows = [(validate_label(e.label), _blob(e.embedding, self.dim), e.thumbnail, e.source) for e in items]
            mirrors = [None if e.mirror is None else _blob(e.mirror, self.dim) for e in items]
            now = time.time()

            def insert() -> list[int]:
                ids: list[int] = []
                if replace:
                    self._conn.execute("DELETE FROM examples")
                for label, blob, thumb, source in rows:
                    cur = self._conn.execute(
                        "INSERT INTO examples (label, embedding, thumbnail, source, created) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (label, blob, thumb, source, now),
                    )
                    assert cur.lastrowid is not None
                    ids.append(cur.lastrowid)
                for example_id, mirror in zip(ids, mirrors, strict=True):
                    if mirror is not None:
                        views.insert(self._conn, example_id, views.MIRROR, mirror)
                return ids
            ids = self._write(insert)
            if replace:
                self._matrix = Matrix(self.dim)
                self._labels, self._code_of = [], {}
            for example_id, (label, blob, _, _) in zip(ids, rows, strict=True):
                self._matrix.append(example_id, self._code(label), np.frombuffer(blob, dtype=DTYPE))
            return ids

    def remove(self, example_id: int) -> str:
        """Remove one example; returns its label."""
        with self._lock:
            self._check_writable()
            self.version += 1
            row = self._conn.execute("SELECT label FROM examples WHERE id = ?", (example_id,)).fetchone()
            if row is None:
                raise UnknownExample(f"no example with id {example_id} in store {self.path}")
            self._write(lambda: self._conn.execute("DELETE FROM examples WHERE id = ?", (example_id,)),
                        frees_space=True)
            if self._matrix is not None:
                self._matrix.remove(example_id)
            return row[0]

    def clear_class(self, label: str) -> int:
        """Remove every example of a class; returns how many."""
        with self._lock:
            self._check_writable()
            self.version += 1
            count = self.counts().get(label, 0)
            if not count:
                raise UnknownLabel(f"no class {label!r} in store {self.path} ({self._known()})")
            self._write(lambda: self._conn.execute("DELETE FROM examples WHERE label = ?", (label,)),
                        frees_space=True)
            assert self._matrix is not None
            m = self._matrix
            m.keep(m.codes[: m.n] != self._code_of[label])
            return count

    def clear(self) -> int:
        """Remove every example (the store stays bound to its embedder)."""
        with self._lock:
            self._check_writable()
            self.version += 1
            count = len(self)
            self._write(lambda: self._conn.execute("DELETE FROM examples"), frees_space=True)
            if self._matrix is not None:
                self._matrix.keep(np.zeros(self._matrix.n, dtype=bool))
            self._labels, self._code_of = [], {}
            return count

    def rename(self, old: str, new: str) -> int:
        """Rename a class (merging into ``new`` if it exists); returns how many examples moved."""
        with self._lock:
            self._check_writable()
            self.version += 1
            validate_label(new, "new label")
            count = self.counts().get(old, 0)
            if not count:
                raise UnknownLabel(f"no class {old!r} in store {self.path} ({self._known()})")
            self._write(lambda: self._conn.execute("UPDATE examples SET label = ? WHERE label = ?", (new, old)))
            assert self._matrix is not None
            self._matrix.relabel(self._code_of[old], self._code(new))
            return count

    def _write(self, work: Callable[[], T], *, frees_space: bool = False) -> T:
        """``work`` in one transaction; a full disk is StoreFull (see space.py)."""
        return space.write(self._conn, self.path, self._reserve, work, frees_space=frees_space)

    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"store {self.path} is open read-only")

    def _known(self) -> str:
        labels = sorted(self.counts())
        return "classes: " + ", ".join(labels) if labels else "the store is empty"

    # ----- reading ---------------------------------------------------------

    def __len__(self) -> int:
        return self._matrix.n if self._matrix else 0

    def counts(self) -> dict[str, int]:
        with self._lock:
            if not self._matrix or not self._matrix.n:
                return {}
            m = self._matrix
            counts = np.bincount(m.codes[: m.n], minlength=len(self._labels))
            return {self._labels[c]: int(n) for c, n in enumerate(counts) if n}

    def class_ids(self) -> dict[str, int]:
        """``{label: stable id}``: an id survives renames and is never reused (see classes.py)."""
        with self._lock:
            return classes.ids(self._conn)

    def predict(self, embedding: np.ndarray, classifier: ClassifierConfig = DEFAULT_CLASSIFIER,
                *, head: Head | None = None, features: FeatureTransform = RAW) -> Prediction:
        """The class of ``embedding`` by the ``[classifier]`` config (its defaults if not given);
        ``head`` (logreg) is used only if it was fitted on this very version of the store."""
        c = classifier
        with self._lock:
            m = self._matrix
            if m is None or m.n == 0:
                return Prediction(None, 0.0, {}, 0.0, True, ())
            query = embedding.astype(np.float32)
            sims = m.similarities(query)
            order, bounds = m.grouping(len(self._labels))
            examples = Examples(tuple(self._labels), m.codes[: m.n], m.ids[: m.n], order, bounds)
            fresh = head if head is not None and head.version == self.version else None
            return classify(query, sims, m.sums, examples, k=c.k, method=c.method,
                            threshold=c.unknown_threshold, head=fresh, features=features)

    def snapshot(self) -> tuple[np.ndarray, list[str], int]:
        """Every raw embedding and view (float16, N x D), its label and the store version, for a refit."""
        with self._lock:
            m = self._matrix
            if m is None or m.n == 0 or self.dim is None:
                return np.zeros((0, self.dim or 0), dtype=DTYPE), [], self.version
            parts = [block[: min(len(block), m.n - i * len(block))] for i, block in enumerate(m.blocks)]
            labels = [self._labels[c] for c in m.codes[: m.n]]
            extra, extra_labels = views.load(self._conn, self.dim, DTYPE)
            rows = np.concatenate([p for p in parts if len(p)] + [extra])
            return rows, labels + extra_labels, self.version

    def add_views(self, example_id: int, made: list[tuple[str, np.ndarray]]) -> bool:
        """Store views of an example made after it (service/viewmaker.py); False if it is gone."""
        with self._lock:
            self._check_writable()
            if self.dim is None:
                raise StoreError(f"store {self.path} is not bound to an embedder yet")
            blobs = [(kind, _blob(v, self.dim)) for kind, v in made]
            kept = self._write(lambda: all([views.insert_if_kept(self._conn, example_id, k, b) for k, b in blobs]))
            if kept:
                self.version += 1  # the head refits with them
            return kept

    def view_count(self) -> int:
        """How many extra views (mirrored copies, corner crops) the store keeps for the few-shot head."""
        with self._lock:
            return views.count(self._conn)

    def examples(self, label: str | None = None, limit: int = 100) -> list[ExampleRow]:
        """The newest ``limit`` examples, of one class or of all, newest first."""
        where, args = ("WHERE label = ?", (label,)) if label is not None else ("", ())
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, label, source, created FROM examples {where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [ExampleRow(*row) for row in rows]

    def thumbnail(self, example_id: int) -> bytes | None:
        """The example's JPEG thumbnail; None if there is no such example or it has none."""
        with self._lock:
            row = self._conn.execute("SELECT thumbnail FROM examples WHERE id = ?", (example_id,)).fetchone()
        return row[0] if row else None

    def iter_examples(self) -> Iterator[tuple[int, str, bytes, bytes | None, str]]:
        """(id, label, embedding blob, thumbnail, source) for export and import."""
        yield from self._conn.execute(
            "SELECT id, label, embedding, thumbnail, source FROM examples ORDER BY id"
        )

    def info(self) -> StoreInfo:
        with self._lock:
            size = sum(
                p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists()
            )
            return StoreInfo(
                path=self.path,
                fingerprint=self.fingerprint,
                dim=self.dim,
                dtype=np.dtype(DTYPE).name,
                count=len(self),
                classes=self.counts(),
                file_bytes=size,
                matrix_bytes=self._matrix.nbytes if self._matrix else 0,
            )

    # ----- portable files --------------------------------------------------

    def export(self, target: str | Path) -> int:
        """Write a consistent single-file copy (embeddings, labels, thumbnails, fingerprint)."""
        target = Path(target)
        if target.exists():
            raise StoreError(f"export file {target} exists; choose a new name")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with self._lock:
            try:
                self._conn.execute("VACUUM INTO ?", (str(tmp),))
                with sqlite3.connect(tmp) as conn:  # a standalone file, no WAL beside it
                    conn.execute("PRAGMA journal_mode=DELETE")
                conn.close()
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            return len(self)

    def import_from(self, source: Store, *, replace: bool = False) -> int:
        """Merge another store's examples into this one (same embedder required)."""
        if source.fingerprint is None or not len(source):
            return 0
        if self.fingerprint is None:
            self.bind(source.fingerprint, source.dim or 0)
        elif source.fingerprint != self.fingerprint:
            raise FingerprintMismatch(
                f"{source.path} was made with embedder {source.fingerprint}, store {self.path} "
                f"with {self.fingerprint}; import it into a new store and re-embed it first"
            )
        items = [
            NewExample(label, np.frombuffer(blob, dtype=DTYPE), thumb, source_name)
            for _, label, blob, thumb, source_name in source.iter_examples()
        ]
        return len(self.add_many(items, replace=replace))


def make_example(label: str, image: np.ndarray, embedding: np.ndarray, source: str,
                 mirror: np.ndarray | None = None) -> NewExample:
    """An example with its JPEG thumbnail, which lets the store be re-embedded later."""
    return NewExample(label, embedding, encode_jpeg(image, THUMBNAIL_SIDE), source, mirror)


def _blob(embedding: np.ndarray, dim: int) -> bytes:
    vec = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if vec.shape[0] != dim:
        raise StoreError(f"embedding has {vec.shape[0]} dimensions; this store holds {dim}")
    return vec.astype(DTYPE).tobytes()
