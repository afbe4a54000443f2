"""Disk space: a full disk answered ``store full``, removing always possible, the WAL bounded.

The strategy, in one place:

* **The WAL is bounded.**  It is checkpointed every :data:`CHECKPOINT_PAGES`
  pages (1 MB, not SQLite's 4 MB: on a nearly full disk the WAL is what
  fills it) and ``journal_size_limit`` truncates it to :data:`JOURNAL_LIMIT`
  afterwards, so one big import does not leave a big WAL behind.  After every
  removal a ``TRUNCATE`` checkpoint empties it.
* **Removing frees disk space.**  New stores use incremental auto-vacuum: after
  a removal the freed pages go back to the file system, :data:`VACUUM_STEP`
  pages at a time with a checkpoint after each step, so the WAL never needs
  more than a step's worth of room.  (Stores made before this keep their free
  pages for later adds; the file does not shrink.)
* **A reserve** of :data:`RESERVE_BYTES` (more than the WAL ever holds) sits beside the store
  (``<store>-reserve``).  Adds are refused with :class:`StoreFull` while it
  cannot be kept; a removal that meets a full disk deletes it and tries again,
  so a full disk never locks the owner out of making room.  It is remade as
  soon as there is space, and survives restarts.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from edgeknn.errors import StoreFull
from edgeknn.store import sqlite

log = logging.getLogger(__name__)

CHECKPOINT_PAGES = 256
JOURNAL_LIMIT = 1024 * 1024
RESERVE_BYTES = 2 * 1024 * 1024
VACUUM_STEP = 256  # pages (1 MB) given back per step
T = TypeVar("T")


def free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return -1


def is_disk_full(exc: sqlite3.Error, path: Path) -> bool:
    """SQLITE_FULL, or an I/O error on a file system with no room left."""
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return True
    return isinstance(exc, sqlite3.OperationalError) and 0 <= free_bytes(path) < RESERVE_BYTES


def full(path: Path) -> StoreFull:
    return StoreFull(
        f"store full: no room left beside {path} ({max(0, free_bytes(path)) // 1024} KB free); "
        "remove examples (cmd/remove, cmd/clear) or free disk space")


class Reserve:
    """Disk space set aside so that removing examples works on a full disk."""

    def __init__(self, store_path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = Path(f"{store_path}-reserve")
        self.size = size

    def ensure(self) -> bool:
        """Make sure the reserve exists; False if there is no room for it."""
        try:
            if self.path.stat().st_size >= self.size:
                return True
        except FileNotFoundError:
            pass
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            return True
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.debug("no room for the store's reserve %s: %s", self.path, exc)
            return False

    def release(self) -> bool:
        """Delete the reserve to make room; False if there was none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("the disk of %s is full: used its reserve to carry out a removal", self.path)
        return True


def give_back(conn: sqlite3.Connection) -> bool:
    """After a removal: free pages back to the file system, the WAL emptied.

    False if the disk had no room even for that (the data is safe either way)."""
    try:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # incremental
            before = None
            while (free := conn.execute("PRAGMA freelist_count").fetchone()[0]) and free != before:
                before = free
                conn.execute(f"PRAGMA incremental_vacuum({VACUUM_STEP})").fetchall()
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return True
    except sqlite3.OperationalError as exc:  # busy readers, or no room: the data is safe
        log.debug("could not give disk space back yet: %s", exc)
        return False


def write(conn: sqlite3.Connection, path: Path, reserve: Reserve | None, work: Callable[[], T], *,
          frees_space: bool = False) -> T:
    """``work`` in one transaction; a full disk is StoreFull, never a traceback.

    Adds (``frees_space`` false) need the reserve; removals may spend it, and
    give the space back afterwards."""
    if not frees_space and reserve is not None and not reserve.ensure():
        raise full(path)
    try:
        with sqlite.transaction(conn, path):
            result = work()
    except StoreFull:
        if not frees_space or reserve is None or not reserve.release():
            raise
        with sqlite.transaction(conn, path):
            result = work()
    if frees_space and reserve is not None:
        if not give_back(conn) and reserve.release():
            give_back(conn)
        reserve.ensure()
    return result
