"""`edgeknn eval`: few-shot accuracy on the shared datasets, beside the two baselines."""

import json

import numpy as np
import pytest
from conftest import DATASETS

from edgeknn.cli import main
from edgeknn.errors import DatasetError
from edgeknn.tools.evaluation import split


@pytest.mark.parametrize("dataset", ["flower_photos", "sign_language_digits", "hymenoptera"])
def test_edgeknn_beats_plain_knn_at_five_shots(capsys, dataset):
    assert main(["eval", str(DATASETS / dataset), "--shots", "5", "--seeds", "10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    methods = report["methods"]
    assert set(methods) == {"edgeknn", "knn-3", "class-mean"}
    ours, knn = methods["edgeknn"], methods["knn-3"]
    assert ours["accuracy"] > knn["accuracy"], methods
    assert len(ours["per_seed"]) == 10
    assert len(ours["confusion"]) == len(report["classes"])
    # every query is counted once per seed
    n_queries = sum(map(sum, ours["confusion"]))
    assert n_queries == sum(map(sum, knn["confusion"]))


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
