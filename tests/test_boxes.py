"""Box geometry: model input -> frame, clipping, IoU."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeknn.boxes import clip_box, iou, iou_matrix, model_box_to_frame
from edgeknn.images import crop_for, fit
from edgeknn.results import Box


def test_squash_maps_model_coordinates_straight_to_the_frame():
    crop = crop_for(640, 480, 300, 300, "squash")
    box = model_box_to_frame(0.25, 0.5, 0.75, 1.0, crop)  # ymin, xmin, ymax, xmax
    assert box == Box(0.5, 0.25, 1.0, 0.75)
    assert box.to_pixels(640, 480) == (320, 120, 640, 360)


def test_center_crop_of_a_wide_frame_maps_into_the_middle_square():
    crop = crop_for(640, 480, 300, 300, "center-crop")  # the 480x480 square at x = 80
    box = model_box_to_frame(0.0, 0.0, 1.0, 1.0, crop)
    assert box.to_pixels(640, 480) == (80, 0, 560, 480)
    assert box.xmin == pytest.approx(80 / 640) and box.xmax == pytest.approx(560 / 640)


def test_center_crop_of_a_tall_frame_maps_into_the_middle_band():
    crop = crop_for(300, 600, 300, 300, "center-crop")  # the square at y = 150
    box = model_box_to_frame(0.5, 0.5, 1.0, 1.0, crop)
    assert box.to_pixels(300, 600) == (150, 300, 300, 450)


def test_boxes_reaching_past_the_model_input_are_clipped_to_the_frame():
    crop = crop_for(640, 480, 300, 300, "squash")
    assert model_box_to_frame(-0.1, -0.2, 1.3, 0.5, crop) == Box(0.0, 0.0, 0.5, 1.0)


def test_center_crop_box_past_the_crop_can_still_reach_the_uncropped_margin():
    # The model saw only the middle square, but a box it extends past that
    # square's edge lands in the margin the crop cut off, still inside the frame.
    crop = crop_for(640, 480, 300, 300, "center-crop")
    box = model_box_to_frame(0.0, -0.1, 1.0, 0.5, crop)
    assert box.to_pixels(640, 480) == (32, 0, 320, 480)


def test_clip_orders_swapped_corners():
    assert clip_box(Box(0.8, 0.9, 0.2, 0.1)) == Box(0.2, 0.1, 0.8, 0.9)


def test_box_wholly_outside_the_frame_clips_to_nothing():
    assert clip_box(Box(1.2, 0.1, 1.5, 0.4)).area == 0.0


@pytest.mark.parametrize("policy", ["squash", "center-crop"])
@pytest.mark.parametrize("size", [(640, 480), (360, 720), (300, 300)])
def test_an_object_found_in_the_fitted_image_maps_back_onto_the_frame(policy, size):
    # A white rectangle in a real frame, fitted as the detector fits it; its
    # box measured in the model input must map back onto where it was drawn.
    width, height = size
    frame = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = width // 3, height // 3, width // 2, 2 * height // 3
    frame[y0:y1, x0:x1] = 255
    fitted, crop = fit(frame, 300, 300, policy)
    ys, xs = np.nonzero(fitted[:, :, 0] > 127)
    found = model_box_to_frame(
        ys.min() / 300, xs.min() / 300, (ys.max() + 1) / 300, (xs.max() + 1) / 300, crop
    )
    px = found.to_pixels(width, height)
    assert np.abs(np.array(px) - [x0, y0, x1, y1]).max() <= 3


def test_iou_of_known_overlaps():
    a = Box(0.0, 0.0, 0.5, 0.5)
    assert iou(a, a) == 1.0
    assert iou(a, Box(0.25, 0.0, 0.75, 0.5)) == pytest.approx(1 / 3)
    assert iou(a, Box(0.5, 0.0, 1.0, 0.5)) == 0.0  # touching edges share no area
    assert iou(Box(0.1, 0.1, 0.1, 0.1), Box(0.1, 0.1, 0.1, 0.1)) == 0.0  # empty boxes


coords = st.floats(0, 100, allow_nan=False)
boxes = st.tuples(coords, coords, coords, coords).map(
    lambda c: (min(c[0], c[2]), min(c[1], c[3]), max(c[0], c[2]), max(c[1], c[3]))
)


@given(st.lists(boxes, max_size=5), st.lists(boxes, max_size=5))
def test_iou_matrix_agrees_with_pairwise_iou(a, b):
    m = iou_matrix(np.array(a, float), np.array(b, float))
    assert m.shape == (len(a), len(b))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            assert m[i, j] == pytest.approx(iou(Box(*p), Box(*q)), abs=1e-12)
            assert 0.0 <= m[i, j] <= 1.0
