"""Detector label files: one per line (with or without a background line) and id pairs."""

from __future__ import annotations

import pytest
from conftest import MODELS

from edgeknn.errors import DetectorError
from edgeknn.vision.labelmap import LabelMap, parse_labels, read_labels


def test_background_line_shifts_ids_by_one():
    labels = parse_labels("???\nAbyssinian\namerican_bulldog\n")
    assert labels.name(0) == "Abyssinian"
    assert labels.name(1) == "american_bulldog"
    assert len(labels) == 2


def test_background_word_counts_as_a_background_line():
    assert parse_labels("background\nperson\n").name(0) == "person"


def test_one_label_per_line_without_background_starts_at_zero():
    labels = parse_labels("person\nbicycle\nn/a\ntraffic light\n")
    assert labels.name(0) == "person"
    assert labels.name(2) == "n/a"
    assert labels.name(3) == "traffic light"


def test_id_label_pairs_keep_their_ids_and_gaps():
    labels = parse_labels("0  person\n1  bicycle\n12  stop sign\n")
    assert labels.name(12) == "stop sign"
    assert labels.name(11) is None
    assert labels.max_id == 12


def test_pairs_may_use_a_colon():
    assert parse_labels("1: cat\n2: dog\n").name(2) == "dog"


def test_a_line_file_whose_labels_start_with_digits_is_not_read_as_pairs():
    # Only some lines look like pairs, so the file is one label per line.
    labels = parse_labels("cat\n3 legged dog\n")
    assert labels.name(1) == "3 legged dog"


def test_blank_line_in_the_middle_is_an_error_naming_it():
    with pytest.raises(DetectorError, match="line 2 is blank"):
        parse_labels("cat\n\ndog\n")


def test_trailing_blank_lines_and_windows_line_ends_are_ignored():
    labels = parse_labels("cat\r\ndog\r\n\r\n\n")
    assert labels == LabelMap({0: "cat", 1: "dog"}, "labels")


def test_duplicate_pair_id_is_an_error():
    with pytest.raises(DetectorError, match="class id 1 is named twice"):
        parse_labels("1 cat\n1 dog\n")


def test_empty_file_is_an_error():
    with pytest.raises(DetectorError, match="empty"):
        parse_labels("\n\n", "empty.txt")


def test_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(DetectorError, match="nope.txt does not exist"):
        read_labels(tmp_path / "nope.txt")


def test_real_pets_labels_name_class_11_egyptian_mau():
    labels = read_labels(MODELS / "pets_labels.txt")
    assert len(labels) == 37
    assert labels.name(11) == "Egyptian_Mau"
    assert "Sphynx" in labels


def test_real_coco_labels_are_one_per_line_with_placeholders():
    labels = read_labels(MODELS / "coco_labels.txt")
    assert labels.name(0) == "person"
    assert labels.name(11) == "n/a"
    assert labels.max_id == 89
