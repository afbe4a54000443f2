"""`edgeknn eval`: few-shot accuracy on the shared datasets, beside the two baselines."""

import json

import numpy as np
import pytest
from conftest import DATASETS

from edgeknn.cli import main
from edgeknn.errors import DatasetError
from edgeknn.tools.evaluation import split


# Accuracy over seeds 0..9 (5 examples per class drawn by each), edgeknn's method minus
# plain k=3 KNN, as measured on the CPU: flowers +3.5 points, sign language +4.3,
# hymenoptera +0.6.  Each test asserts about half its lead; hymenoptera's lead is smaller
# than the spread between seeds (-3.9..+3.9 points), so there edgeknn must only not lose.
@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "margin"), [
    ("flower_photos", 0.015), ("sign_language_digits", 0.02), ("hymenoptera", 0.0),
])
def test_edgeknn_beats_plain_knn_at_five_shots(capsys, dataset, margin):
    assert main(["eval", str(DATASETS / dataset), "--shots", "5", "--seed", "0", "--seeds", "10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    methods = report["methods"]
    assert set(methods) == {"edgeknn", "knn-3", "class-mean"}
    assert report["seeds"] == list(range(10))
    ours, knn = methods["edgeknn"], methods["knn-3"]
    assert ours["accuracy"] - knn["accuracy"] >= margin, methods
    assert len(ours["per_seed"]) == 10
    assert len(ours["confusion"]) == len(report["classes"])
    # every query is counted once per seed
    n_queries = sum(map(sum, ours["confusion"]))
    assert n_queries == sum(map(sum, knn["confusion"]))


@pytest.mark.slow  # embeds the whole dataset (240 images)
def test_the_report_prints_all_three_methods_per_class_and_confusion(capsys):
    assert main(["eval", str(DATASETS / "hymenoptera"), "--shots", "3", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    for word in ("edgeknn", "knn-3", "class-mean", "per class", "confusion", "ants", "bees"):
        assert word in out


def test_split_draws_shots_per_class_and_tests_on_the_rest():
    codes = np.array([0] * 10 + [1] * 7)
    support, queries = split(codes, 3, seed=4)
    assert np.bincount(codes[support]).tolist() == [3, 3]
    assert sorted(np.concatenate([support, queries]).tolist()) == list(range(17))
    again, _ = split(codes, 3, seed=4)
    assert support.tolist() == again.tolist()


def test_too_many_shots_is_a_clear_error():
    with pytest.raises(DatasetError, match="leaves none to test"):
        split(np.array([0, 0, 1, 1]), 2, seed=0)
