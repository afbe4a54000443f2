"""The class table: a stable id for every class, kept beside the examples.

A class's id is given when its first example is added and never changes
while the class exists: renaming a class keeps its id (Home Assistant's
entities and the automations on them hang off it), merging a class into
another keeps the target's id, and a class whose last example goes takes its
id with it.  Ids are never reused (AUTOINCREMENT), so a stale reference to a
removed class can never point at a new one.

The examples stay the truth about which classes exist: triggers on the
examples table keep this table in step inside the same transaction, whatever
code writes the examples, so the two never disagree.  A store made
before this table existed gets it when first opened for writing, with ids in
the order the classes were first taught.
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS classes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL UNIQUE
);
CREATE TRIGGER IF NOT EXISTS class_of_new_example AFTER INSERT ON examples BEGIN
    INSERT OR IGNORE INTO classes (label) VALUES (NEW.label);
END;
CREATE TRIGGER IF NOT EXISTS class_of_removed_example AFTER DELETE ON examples BEGIN
    DELETE FROM classes WHERE label = OLD.label
        AND NOT EXISTS (SELECT 1 FROM examples WHERE label = OLD.label);
END;
-- A rename moves the examples one row at a time: the first row carries the class's
-- id over to the new label, unless that label is a class already (a merge, which
-- keeps the target's id); the old label's id goes with its last example.
CREATE TRIGGER IF NOT EXISTS class_of_renamed_example AFTER UPDATE OF label ON examples
WHEN OLD.label != NEW.label BEGIN
    UPDATE classes SET label = NEW.label WHERE label = OLD.label
        AND NOT EXISTS (SELECT 1 FROM classes WHERE label = NEW.label);
    INSERT OR IGNORE INTO classes (label) VALUES (NEW.label);
    DELETE FROM classes WHERE label = OLD.label
        AND NOT EXISTS (SELECT 1 FROM examples WHERE label = OLD.label);
END;
"""
_FROM_EXAMPLES = "SELECT label FROM examples GROUP BY label ORDER BY MIN(id)"


def migrate(conn: sqlite3.Connection) -> None:
    """Create the table and its triggers if missing, and give every class without an id
    one (in one transaction)."""
    conn.executescript(f"BEGIN IMMEDIATE; {SCHEMA} INSERT OR IGNORE INTO classes (label) {_FROM_EXAMPLES}; COMMIT;")


def ids(conn: sqlite3.Connection) -> dict[str, int]:
    """``{label: id}`` of every class; a read-only store from before the table numbers
    its classes as the migration will."""
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'classes'").fetchone()
    if has_table:
        return dict(conn.execute("SELECT label, id FROM classes"))
    return {label: n for n, (label,) in enumerate(conn.execute(_FROM_EXAMPLES), 1)}
