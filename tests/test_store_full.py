"""A full disk: adds answered ``store full``, removing still possible, nothing taught lost.

The store lives on a small tmpfs the test mounts (root only; skipped with the
reason elsewhere), and a filler file takes whatever room is left.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing

import numpy as np
import pytest

from edgeknn.errors import StoreFull
from edgeknn.store import NewExample, Store
from edgeknn.store.space import RESERVE_BYTES

DIM = 256
THUMB = os.urandom(12_000)  # about what a 256 px JPEG thumbnail weighs


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB file system of its own."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("mount is not installed: cannot make a small file system")
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run([mount, "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.strip() or 'not permitted'}); "
                    "the full-disk tests need root")
    yield disk
    subprocess.run([umount, "--lazy", str(disk)], check=True)


def integrity(path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def example(label: str, seed: int) -> NewExample:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return NewExample(label, vector, THUMB, "test")


def fill(store: Store) -> list[int]:
    """Add until the disk is full; the ids of every add that was acknowledged."""
    acknowledged = []
    for seed in range(100_000):
        try:
            acknowledged.append(store.add_many([example(f"c{seed % 3}", seed)])[0])
        except StoreFull:
            return acknowledged
    raise AssertionError("the disk never filled")


def squeeze(disk) -> None:
    """Take every byte left with a filler file."""
    try:
        with open(disk / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass


def test_a_full_disk_is_answered_store_full_and_keeps_every_acknowledged_example(small_disk):
    path = small_disk / "store.db"
    with Store.open(path) as store:
        store.bind("fp", DIM)
        acknowledged = fill(store)
        with pytest.raises(StoreFull, match=r"^store full: no room left beside .*store\.db"):
            store.add_many([example("late", 1)])
    with Store.open(path, readonly=True) as store:
        assert sorted(i for i, *_ in store.iter_examples()) == acknowledged
    assert integrity(path) == "ok"


def test_removing_works_on_a_full_disk_and_makes_room_to_teach_again(small_disk):
    path = small_disk / "store.db"
    with Store.open(path) as store:
        store.bind("fp", DIM)
        acknowledged = fill(store)
        squeeze(small_disk)  # not one byte left, even for the WAL
        assert shutil.disk_usage(small_disk).free < 4096 + RESERVE_BYTES
        label = store.remove(acknowledged[0])
        removed = store.clear_class("c1")
        assert removed > 0 and label == "c0"
        (small_disk / "filler").unlink()
        store.add_many([example("again", 7)])  # the freed space is usable
        assert store.counts()["again"] == 1
    assert integrity(path) == "ok"


def test_removing_gives_the_space_back_to_the_disk(small_disk):
    path = small_disk / "store.db"
    with Store.open(path) as store:
        store.bind("fp", DIM)
        for seed in range(60):
            store.add_many([example("many", seed)])
        used = shutil.disk_usage(small_disk).used
        store.clear()
        assert shutil.disk_usage(small_disk).used < used - 60 * len(THUMB) // 2


def test_the_wal_stays_bounded_through_many_adds(small_disk, tmp_path):
    path = tmp_path / "store.db"  # a roomy disk: only the WAL's own bound limits it
    largest = 0
    with Store.open(path) as store:
        store.bind("fp", DIM)
        for seed in range(400):
            store.add_many([example("c", seed)])
            wal = path.with_name("store.db-wal")
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
    assert largest < RESERVE_BYTES  # the reserve can always hold what the WAL needs
