"""The KNN decision rules, without files or threads."""

import numpy as np
import pytest

from edgeknn.classify import Examples, Smoother, classify, knn_scores


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def setup(vectors, labels_per_row):
    labels = tuple(dict.fromkeys(labels_per_row))
    codes = np.array([labels.index(x) for x in labels_per_row], dtype=np.int32)
    matrix = np.stack([unit(v) for v in vectors])
    sums = np.zeros((len(labels), matrix.shape[1]))
    np.add.at(sums, codes, matrix)
    return matrix, sums, Examples(labels, codes, np.arange(1, len(codes) + 1, dtype=np.int64))


def predict(matrix, sums, examples, query, k=3, method="balanced", threshold=0.0):
    q = unit(query)
    return classify(q, matrix @ q, sums, examples, k=k, method=method, threshold=threshold)


def test_a_small_class_is_not_outvoted_for_being_small():
    # Two "mug" examples very close to the query, fifty "background" examples a bit further.
    rng = np.random.default_rng(1)
    mug = [[1.0, 0.05 * i, 0.0] for i in range(2)]
    background = [[0.85, 0.5 + 0.01 * rng.random(), 0.2] for _ in range(50)]
    matrix, sums, examples = setup(mug + background, ["mug"] * 2 + ["background"] * 50)
    query = [1.0, 0.3, 0.05]
    assert predict(matrix, sums, examples, query, method="knn", k=3).label == "background"
    assert predict(matrix, sums, examples, query, method="balanced", k=3).label == "mug"


def test_knn_confidence_is_the_share_of_the_k_votes():
    matrix, sums, examples = setup([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], ["a", "a", "b", "b"])
    pred = predict(matrix, sums, examples, [1, 0.2], method="knn", k=3)
    assert pred.label == "a"
    assert pred.confidence == pytest.approx(2 / 3, abs=1e-4)
    assert pred.scores["b"] == pytest.approx(1 / 3, abs=1e-4)


def test_shares_sum_to_one_and_name_every_class():
    matrix, sums, examples = setup([[1, 0, 0], [0, 1, 0], [0, 0, 1]], ["a", "b", "c"])
    for method in ("balanced", "knn", "ncm"):
        pred = predict(matrix, sums, examples, [1, 0.1, 0], method=method)
        assert set(pred.scores) == {"a", "b", "c"}
        assert sum(pred.scores.values()) == pytest.approx(1.0)
        assert pred.label == "a"


def test_unknown_when_the_best_similarity_is_below_the_threshold():
    matrix, sums, examples = setup([[1, 0, 0], [0.9, 0.1, 0]], ["a", "a"])
    far = predict(matrix, sums, examples, [0, 0.2, 1], threshold=0.5)
    assert far.unknown and far.label == "a"  # the nearest class is still named
    near = predict(matrix, sums, examples, [1, 0, 0], threshold=0.5)
    assert not near.unknown


def test_neighbors_are_sorted_by_similarity_and_carry_ids():
    matrix, sums, examples = setup([[1, 0], [0, 1], [0.7, 0.7]], ["a", "b", "c"])
    pred = predict(matrix, sums, examples, [1, 0.1])
    sims = [n.similarity for n in pred.neighbors]
    assert sims == sorted(sims, reverse=True)
    assert pred.neighbors[0].label == "a" and pred.neighbors[0].example_id == 1


def test_knn_ties_go_to_the_closer_class():
    scores = knn_scores(np.array([0.9, 0.8]), np.array([1, 0]), 2, 2)
    assert scores.argmax() == 1


def test_empty_store_predicts_nothing():
    examples = Examples((), np.empty(0, np.int32), np.empty(0, np.int64))
    pred = classify(unit([1, 0]), np.empty(0, np.float32), np.zeros((0, 2)), examples,
                    k=3, method="balanced", threshold=0.0)
    assert pred.label is None and pred.unknown


def test_smoother_takes_the_majority_of_the_last_n():
    s = Smoother(4)
    assert [s.push(x) for x in ["a", "a", "b", "b", "b"]] == ["a", "a", "a", "b", "b"]
    s = Smoother(4)
    outputs = [s.push(x) for x in ["a", "a", "a", "b", "a", "b", "b", "b"]]
    assert outputs == ["a", "a", "a", "a", "a", "b", "b", "b"]


def test_smoother_of_one_follows_every_frame():
    s = Smoother(1)
    assert [s.push(x) for x in ["a", "b", "a"]] == ["a", "b", "a"]


def test_balanced_scores_agree_for_small_and_large_stores(monkeypatch):
    import edgeknn.classify as classify_module

    rng = np.random.default_rng(3)
    sims = rng.random(500).astype(np.float32)
    codes = rng.integers(0, 7, 500).astype(np.int32)
    codes[codes == 5] = 6  # a class with no examples
    small = classify_module.balanced_scores(sims, codes, 8, 3)
    monkeypatch.setattr(classify_module, "SMALL_STORE", 0)
    large = classify_module.balanced_scores(sims, codes, 8, 3)
    assert np.allclose(small[np.isfinite(small)], large[np.isfinite(large)])
    assert np.isinf(small[5]) and np.isinf(large[5]) and np.isinf(small[7])
