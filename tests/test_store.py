"""The durable store: SQLite on disk, the search matrix in memory."""

import sqlite3

import numpy as np
import pytest

from edgeknn.errors import FingerprintMismatch, LabelError, StoreCorrupt, StoreError, UnknownExample, UnknownLabel
from edgeknn.store import NewExample, Store

DIM = 16


def vec(seed):
    v = np.random.default_rng(seed).random(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


OPENED: list[Store] = []


def open_store(path, **options):
    """Store.open, closed after the test (a writer holds its lock until closed)."""
    OPENED.append(Store.open(path, **options))
    return OPENED[-1]


@pytest.fixture(autouse=True)
def _close_stores():
    yield
    while OPENED:
        OPENED.pop().close()


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "store.db")
    s.bind("model-a", DIM)
    return s


def reopen(s):
    s.close()
    return open_store(s.path)


def test_an_added_example_is_there_after_reopening(store):
    example_id = store.add("mug", vec(1), b"thumb")
    store = reopen(store)
    assert store.counts() == {"mug": 1}
    assert [(i, label) for i, label, *_ in store.iter_examples()] == [(example_id, "mug")]
    assert store.predict(vec(1)).label == "mug"


def test_predict_finds_the_class_of_the_nearest_examples(store):
    for i in range(5):
        store.add("a", vec(i))
        store.add("b", -vec(i) + 2 * vec(100))
    assert store.predict(vec(2)).label == "a"


def test_remove_one_example(store):
    ids = store.add_many([NewExample("a", vec(i)) for i in range(3)])
    assert store.remove(ids[1]) == "a"
    assert store.counts() == {"a": 2}
    assert [n.example_id for n in store.predict(vec(1)).neighbors if n.example_id == ids[1]] == []
    assert reopen(store).counts() == {"a": 2}


def test_removing_an_unknown_example_names_the_id(store):
    with pytest.raises(UnknownExample, match="no example with id 999"):
        store.remove(999)


def test_clear_a_class_keeps_the_others(store):
    store.add_many([NewExample("a", vec(i)) for i in range(3)] + [NewExample("b", vec(10))])
    assert store.clear_class("a") == 3
    assert store.counts() == {"b": 1}
    assert store.predict(vec(1)).label == "b"
    assert reopen(store).counts() == {"b": 1}


def test_clearing_an_unknown_class_lists_the_known_ones(store):
    store.add("a", vec(1))
    with pytest.raises(UnknownLabel, match="no class 'zz'.*classes: a"):
        store.clear_class("zz")


def test_clear_all(store):
    store.add_many([NewExample("a", vec(i)) for i in range(3)])
    assert store.clear() == 3
    assert len(store) == 0 and store.counts() == {}
    assert store.predict(vec(1)).label is None
    store.add("b", vec(2))  # still usable, still bound to its model
    assert reopen(store).counts() == {"b": 1}


def test_rename_a_class_and_merge_into_another(store):
    store.add_many([NewExample("a", vec(1)), NewExample("b", vec(2)), NewExample("c", vec(3))])
    store.rename("a", "alpha")
    assert store.counts() == {"alpha": 1, "b": 1, "c": 1}
    store.rename("b", "c")
    assert store.counts() == {"alpha": 1, "c": 2}
    assert store.predict(vec(2)).label == "c"
    assert reopen(store).counts() == {"alpha": 1, "c": 2}


@pytest.mark.parametrize("label", ["", " ", "x" * 65, "bad\nlabel", "a/b", "a+b", "a#b", "tab\there"])
def test_bad_labels_are_refused_and_nothing_is_written(store, label):
    store.add("ok", vec(1))
    with pytest.raises(LabelError):
        store.add_many([NewExample("fine", vec(2)), NewExample(label, vec(3))])
    assert reopen(store).counts() == {"ok": 1}


def test_a_store_from_another_model_is_refused_with_the_fix(store):
    store.add("a", vec(1))
    with pytest.raises(FingerprintMismatch, match="edgeknn store reembed"):
        store.bind("model-b", DIM)


def test_an_empty_store_binds_to_the_first_embedder(tmp_path):
    s = open_store(tmp_path / "s.db")
    s.bind("model-x", 8)
    s.close()
    assert open_store(tmp_path / "s.db").fingerprint == "model-x"


def test_reembed_replaces_every_embedding_and_the_fingerprint(store):
    store.add_many([NewExample("a", vec(1), b"t1"), NewExample("b", vec(2), b"t2")])
    new_dim = 4
    store.reembed(lambda thumb: np.eye(new_dim, dtype=np.float32)[int(thumb[1:]) - 1], "model-b", new_dim)
    store = reopen(store)
    assert store.fingerprint == "model-b" and store.dim == new_dim
    assert store.predict(np.eye(new_dim, dtype=np.float32)[1]).label == "b"


def test_reembed_refuses_examples_without_thumbnails(store):
    store.add("a", vec(1))
    with pytest.raises(StoreError, match="no thumbnail"):
        store.reembed(lambda t: vec(1), "model-b", DIM)
    assert reopen(store).fingerprint == "model-a"


def test_export_then_import_carries_everything(store, tmp_path):
    store.add_many([NewExample("a", vec(1), b"jpeg-a"), NewExample("b", vec(2), b"jpeg-b")])
    exported = tmp_path / "backup.edgeknn"
    assert store.export(exported) == 2
    assert not (tmp_path / "backup.edgeknn-wal").exists()  # one portable file
    target = open_store(tmp_path / "other.db")
    with Store.open(exported, create=False) as source:
        assert target.import_from(source) == 2
    assert target.fingerprint == "model-a"
    assert target.counts() == {"a": 1, "b": 1}
    assert sorted(row[3] for row in target.iter_examples()) == [b"jpeg-a", b"jpeg-b"]


def test_import_from_another_model_is_refused(store, tmp_path):
    other = open_store(tmp_path / "other.db")
    other.bind("model-b", DIM)
    other.add("x", vec(1))
    with pytest.raises(FingerprintMismatch):
        store.import_from(other)


def test_export_never_overwrites(store, tmp_path):
    (tmp_path / "exists").write_text("keep me")
    with pytest.raises(StoreError, match="exists"):
        store.export(tmp_path / "exists")
    assert (tmp_path / "exists").read_text() == "keep me"


def test_a_file_that_is_not_a_database_is_reported_as_corrupt(tmp_path):
    bad = tmp_path / "store.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorrupt, match=str(bad)):
        Store.open(bad)
    assert bad.read_bytes() == b"this is not sqlite" * 100  # untouched


def test_another_sqlite_database_is_not_mistaken_for_a_store(tmp_path):
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    with pytest.raises(StoreCorrupt, match="not an edgeknn store"):
        Store.open(other)


def test_a_damaged_embedding_row_is_reported_with_its_id(store):
    example_id = store.add("a", vec(1))
    store.close()
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE examples SET embedding = x'0000' WHERE id = ?", (example_id,))
    conn.close()
    with pytest.raises(StoreCorrupt, match=f"example {example_id}"):
        Store.open(store.path)


def test_the_matrix_stays_consistent_through_many_adds_and_removes(store):
    rng = np.random.default_rng(0)
    live = {}
    for step in range(600):
        if live and rng.random() < 0.3:
            victim = int(rng.choice(list(live)))
            store.remove(victim)
            del live[victim]
        else:
            label = f"c{step % 4}"
            live[store.add(label, vec(step))] = label
    expected = {}
    for label in live.values():
        expected[label] = expected.get(label, 0) + 1
    assert store.counts() == expected
    fresh = reopen(store)
    for seed in (1, 50, 300):
        a, b = store.predict(vec(seed)), fresh.predict(vec(seed))
        assert a.label == b.label and a.similarity == pytest.approx(b.similarity)


def test_the_matrix_spans_several_blocks(tmp_path, monkeypatch):
    import edgeknn.store.matrix as matrix

    monkeypatch.setattr(matrix, "BLOCK", 7)
    s = open_store(tmp_path / "s.db")
    s.bind("m", DIM)
    ids = s.add_many([NewExample(f"c{i % 3}", vec(i)) for i in range(30)])
    for example_id in ids[::4]:
        s.remove(example_id)
    assert len(s) == 30 - len(ids[::4])
    best = s.predict(vec(5)).neighbors[0]
    assert best.example_id == ids[5] and best.similarity == pytest.approx(1.0, abs=1e-3)


def test_memory_is_float16(store):
    store.add_many([NewExample("a", vec(i)) for i in range(100)])
    assert store.info().dtype == "float16"


def test_a_second_writer_is_refused_while_readers_are_welcome(store):
    store.add("a", vec(1))
    with pytest.raises(StoreError, match="in use by another edgeknn process"):
        Store.open(store.path)
    with Store.open(store.path, readonly=True) as reader:
        assert reader.counts() == {"a": 1}
        with pytest.raises(StoreError, match="read-only"):
            reader.add("b", vec(2))
    store.close()
    Store.open(store.path).close()  # free again once the writer closed


def test_import_replace_swaps_everything_in_one_transaction(store, tmp_path):
    store.add_many([NewExample("old", vec(i)) for i in range(3)])
    other = open_store(tmp_path / "other.db")
    other.bind("model-a", DIM)
    other.add("new", vec(9))
    other.close()
    with Store.open(tmp_path / "other.db", readonly=True) as source:
        assert store.import_from(source, replace=True) == 1
    assert store.counts() == {"new": 1}
    assert reopen(store).counts() == {"new": 1}


def test_a_readonly_open_leaves_an_exported_file_untouched(store, tmp_path):
    store.add("a", vec(1))
    exported = tmp_path / "backup.edgeknn"
    store.export(exported)
    before = exported.read_bytes()
    with Store.open(exported, readonly=True) as source:
        assert source.counts() == {"a": 1}
    assert exported.read_bytes() == before
    assert not (tmp_path / "backup.edgeknn-wal").exists()
