"""The class table: a stable id for every class, kept beside the examples.

A class's id is given when its first example is added and never changes
while the class exists: renaming a class keeps its id (Home Assistant's
entities and the automations on them hang off it), merging a class into
another keeps the target's id, and a class whose last example goes takes its
id with it.  Ids are never reused (AUTOINCREMENT), so a stale reference to a
removed class can never point at a new one.

The examples stay the truth about which classes exist; these functions run
inside the store's transactions so the two never disagree.  A store made
before this table existed gets it when first opened for writing, with ids in
the order the classes were first taught.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS classes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL UNIQUE
);
"""
_FROM_EXAMPLES = "SELECT label FROM examples GROUP BY label ORDER BY MIN(id)"


def migrate(conn: sqlite3.Connection) -> None:
    """Create the table if missing and give every class that has no id one (in a transaction)."""
    conn.executescript(f"BEGIN IMMEDIATE; {SCHEMA} INSERT OR IGNORE INTO classes (label) {_FROM_EXAMPLES}; COMMIT;")


def added(conn: sqlite3.Connection, labels: Iterable[str]) -> None:
    conn.executemany("INSERT OR IGNORE INTO classes (label) VALUES (?)", [(label,) for label in dict.fromkeys(labels)])


def pruned(conn: sqlite3.Connection, label: str) -> None:
    """Forget ``label``'s id if it has no examples left."""
    conn.execute("DELETE FROM classes WHERE label = ? AND NOT EXISTS "
                 "(SELECT 1 FROM examples WHERE label = ?)", (label, label))


def cleared(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM classes")


def renamed(conn: sqlite3.Connection, old: str, new: str) -> None:
    """``old`` keeps its id under its new name, unless it merges into an existing ``new``."""
    if conn.execute("SELECT 1 FROM classes WHERE label = ?", (new,)).fetchone():
        conn.execute("DELETE FROM classes WHERE label = ?", (old,))
    else:
        conn.execute("UPDATE classes SET label = ? WHERE label = ?", (new, old))


def ids(conn: sqlite3.Connection) -> dict[str, int]:
    """``{label: id}`` of every class; a read-only store from before the table numbers
    its classes as the migration will."""
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'classes'").fetchone()
    if has_table:
        return dict(conn.execute("SELECT label, id FROM classes"))
    return {label: n for n, (label,) in enumerate(conn.execute(_FROM_EXAMPLES), 1)}
