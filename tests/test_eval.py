"""`edgeknn eval`: every method side by side on the same split (the accuracy goal is in
test_fewshot_accuracy.py)."""

import json

import numpy as np
import pytest
from conftest import DATASETS

from edgeknn.cli import main
from edgeknn.errors import DatasetError
from edgeknn.tools.evaluation import split


@pytest.mark.slow  # embeds the whole dataset (240 images, mirrored and 4 corner views)
def test_every_method_is_reported_side_by_side_for_each_shot_count(capsys):
    assert main(["eval", str(DATASETS / "hymenoptera"), "--shots", "3", "5", "--seeds", "2",
                 "--json", "--accelerator", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    [embedder] = report["embedders"].values()
    assert embedder["features"].startswith("pow0.5-mean")
    assert set(embedder["shots"]) == {"3", "5"}
    methods = embedder["shots"]["5"]
    assert set(methods) == {"knn-3", "class-mean", "balanced", "logreg", "logreg+mirror", "logreg+crops"}
    assert len(methods["logreg"]["per_seed"]) == 2 and methods["logreg"]["refit_ms"] > 0
    # every query is counted once per seed, by every method
    counts = {sum(map(sum, m["confusion"])) for m in methods.values()}
    assert counts == {2 * (240 - 2 * 5)}


@pytest.mark.slow  # embeds the whole dataset (240 images)
def test_the_report_prints_the_table_gains_per_class_and_confusion(capsys):
    assert main(["eval", str(DATASETS / "hymenoptera"), "--shots", "3", "--seeds", "2",
                 "--no-mirror", "--accelerator", "cpu"]) == 0
    out = capsys.readouterr().out
    for word in ("knn-3", "class-mean", "balanced", "logreg", "gain over class-mean", "per class",
                 "confusion", "ants", "bees"):
        assert word in out
    assert "logreg+mirror" not in out and "logreg+crops" not in out


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
