"""The store's SQLite file: schema, opening (read-only or as the one writer), transactions.

Write-ahead logging with ``synchronous=FULL``: a committed transaction is on
disk (the WAL fsynced) before COMMIT returns, and a half-written one is
invisible after a crash.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from edgeknn.errors import StoreCorrupt, StoreError
from edgeknn.store import space

FORMAT = "edgeknn-store"
VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS examples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL,
    embedding BLOB NOT NULL,
    thumbnail BLOB,
    source TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS examples_label ON examples(label);
"""


def connect_readonly(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               check_same_thread=False, isolation_level=None, timeout=10)
        if read_format(conn) != FORMAT:
            raise StoreCorrupt(f"store {path} is not an edgeknn store")
        return conn
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupt(f"store {path} is damaged or not an edgeknn store ({exc})") from None


def connect_writable(path: Path) -> sqlite3.Connection:
    """Open a store file for writing, creating its tables in a new (empty) file."""
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        # Only takes effect in a new file (before WAL mode writes the header): then
        # removals give disk space back (see space.py).
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={space.JOURNAL_LIMIT}")
        conn.execute(f"PRAGMA wal_autocheckpoint={space.CHECKPOINT_PAGES}")
        fmt = read_format(conn)
        if fmt is None:
            if has_tables(conn):
                raise StoreCorrupt(f"store {path} is an SQLite file but not an edgeknn store")
            conn.executescript(
                f"BEGIN IMMEDIATE; {SCHEMA} INSERT INTO meta VALUES ('format', '{FORMAT}'); "
                f"INSERT INTO meta VALUES ('version', '{VERSION}'); COMMIT;"
            )
        elif fmt != FORMAT:
            raise StoreCorrupt(f"store {path} is not an edgeknn store (format {fmt!r})")
        return conn
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupt(f"store {path} is damaged or not an edgeknn store ({exc})") from None


def writer_lock(path: Path) -> BinaryIO:
    """An exclusive advisory lock beside the store, held while it is open for writing."""
    lock = open(f"{path}.lock", "a+b")  # noqa: SIM115 (held open until Store.close)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().decode(errors="replace").strip() or "?"
        lock.close()
        raise StoreError(
            f"store {path} is in use by another edgeknn process (pid {holder}), e.g. the service; "
            "teach the running service over MQTT or with its buttons, or stop it first"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()).encode())
    lock.flush()
    return lock


def read_format(conn: sqlite3.Connection) -> str | None:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    return row[0] if row else ""


def has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] > 0


@contextmanager
def transaction(conn: sqlite3.Connection, path: Path | None = None) -> Iterator[None]:
    """All or nothing; with ``path``, a full disk is StoreFull (and rolled back)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")  # inside: a COMMIT that fails (disk full) is rolled back too
    except BaseException as exc:
        if conn.in_transaction:  # SQLite may have rolled back by itself
            conn.execute("ROLLBACK")
        if path is not None and isinstance(exc, sqlite3.Error) and space.is_disk_full(exc, path):
            raise space.full(path) from None
        raise
