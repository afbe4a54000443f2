"""Stable class ids: what Home Assistant's entities and users' automations hang off."""

import sqlite3

import numpy as np
import pytest

from edgeknn.store import Store

DIM = 8


def vec(seed):
    v = np.random.default_rng(seed).random(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "store.db")
    s.bind("model-a", DIM)
    yield s
    s.close()


def test_each_class_gets_an_id_when_first_taught(store):
    store.add("cat", vec(1))
    store.add("dog", vec(2))
    store.add("cat", vec(3))
    ids = store.class_ids()
    assert set(ids) == {"cat", "dog"} and ids["cat"] != ids["dog"]


def test_a_renamed_class_keeps_its_id(store):
    store.add("cat", vec(1))
    store.add("dog", vec(2))
    before = store.class_ids()
    store.rename("cat", "kitten")
    assert store.class_ids() == {"kitten": before["cat"], "dog": before["dog"]}


def test_merging_into_an_existing_class_keeps_the_target_id(store):
    store.add("cat", vec(1))
    store.add("dog", vec(2))
    dog = store.class_ids()["dog"]
    store.rename("cat", "dog")
    assert store.class_ids() == {"dog": dog}


def test_ids_of_removed_classes_are_never_reused(store):
    store.add("cat", vec(1))
    cat = store.class_ids()["cat"]
    store.clear_class("cat")
    assert store.class_ids() == {}
    store.add("cat", vec(2))
    assert store.class_ids()["cat"] != cat


def test_removing_the_last_example_removes_the_class_id(store):
    first = store.add("cat", vec(1))
    second = store.add("cat", vec(2))
    store.remove(first)
    assert "cat" in store.class_ids()
    store.remove(second)
    assert store.class_ids() == {}


def test_clear_and_replace_forget_every_id(store, tmp_path):
    store.add("cat", vec(1))
    store.clear()
    assert store.class_ids() == {}
    store.add("dog", vec(2))
    other = Store.open(tmp_path / "other.db")
    other.bind("model-a", DIM)
    other.add("bird", vec(3))
    store.import_from(other, replace=True)
    other.close()
    assert list(store.class_ids()) == ["bird"]


def test_a_store_made_before_class_ids_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.db"
    with Store.open(path) as s:
        s.bind("model-a", DIM)
        for seed, label in enumerate(["dog", "cat", "dog", "bird"]):
            s.add(label, vec(seed))
    conn = sqlite3.connect(path)  # what a store of the previous version looks like
    conn.execute("DROP TABLE classes")
    conn.commit()
    conn.close()
    with Store.open(path, readonly=True) as ro:
        predicted = ro.class_ids()
    with Store.open(path) as s:
        assert s.class_ids() == predicted == {"dog": 1, "cat": 2, "bird": 3}  # in the order first taught
        assert s.counts() == {"dog": 2, "cat": 1, "bird": 1}
    with Store.open(path, readonly=True) as ro:
        assert ro.class_ids() == predicted
