"""Extra views of taught examples (mirrored, corner crops), kept beside them for the few-shot head.

A view is another embedding of the same taught frame (the frame mirrored
left-right, or one of its corner crops), made at teach time when
``classifier.views`` asks for it.  Views never take part in KNN search or class counts; only the head is
fitted on them as extra rows of their example's class.  A trigger removes an
example's views with the example, and labels come from the example by a join,
so removing, renaming and clearing need no code here.  Stores made before
views existed get the table when first opened for writing; read-only they
simply have no views.
"""

from __future__ import annotations

import sqlite3

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS views (
    example_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (example_id, kind)
);
CREATE TRIGGER IF NOT EXISTS views_follow_examples AFTER DELETE ON examples
BEGIN DELETE FROM views WHERE example_id = OLD.id; END;
"""
MIRROR = "mirror"
CORNERS = ("corner-tl", "corner-tr", "corner-bl", "corner-br")  # edgeknn.images.corner_views order


def ensure(conn: sqlite3.Connection) -> None:
    """Create the table and trigger in a store that predates them (idempotent)."""
    conn.executescript(f"BEGIN IMMEDIATE; {SCHEMA} COMMIT;")


def insert(conn: sqlite3.Connection, example_id: int, kind: str, blob: bytes) -> None:
    """Inside the caller's transaction, so an example and its views land together."""
    conn.execute("INSERT OR REPLACE INTO views VALUES (?, ?, ?)", (example_id, kind, blob))


def insert_if_kept(conn: sqlite3.Connection, example_id: int, kind: str, blob: bytes) -> bool:
    """A view made after its example was stored: nothing if the example is gone meanwhile."""
    cur = conn.execute("INSERT OR REPLACE INTO views SELECT id, ?, ? FROM examples WHERE id = ?",
                       (kind, blob, example_id))
    return cur.rowcount > 0


def load(conn: sqlite3.Connection, dim: int, dtype: type) -> tuple[np.ndarray, list[str]]:
    """Every view's embedding and its example's current label."""
    try:
        rows = conn.execute(
            "SELECT v.embedding, e.label FROM views v JOIN examples e ON e.id = v.example_id "
            "ORDER BY v.example_id"
        ).fetchall()
    except sqlite3.OperationalError:  # a store from before views, opened read-only
        return np.zeros((0, dim), dtype=dtype), []
    if not rows:
        return np.zeros((0, dim), dtype=dtype), []
    vectors: np.ndarray = np.frombuffer(b"".join(blob for blob, _ in rows), dtype=dtype).reshape(len(rows), dim)
    return vectors, [label for _, label in rows]


def count(conn: sqlite3.Connection) -> int:
    try:
        return int(conn.execute("SELECT COUNT(*) FROM views").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
