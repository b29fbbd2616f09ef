"""cvapps.core.annotate: tracked boxes, trails, counting lines and zones drawn on copies."""

import numpy as np
import pytest

from cvapps.core.annotate import (
    LINE_RGB,
    ZONE_OPACITY,
    ZONE_RGB,
    class_colour,
    draw_count_line,
    draw_detections,
    draw_trails,
    draw_zone,
    track_colour,
)
from cvapps.core.tracking import LineCounter, PolygonZone
from cvapps.detection import Detections


def background(height=120, width=160):
    return np.full((height, width, 3), 40, np.uint8)


def near(pixel, colour, tolerance=40):
    """Whether a pixel is within ``tolerance`` of ``colour`` in every channel (anti-aliased 1 px lines blend)."""
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(colour, int)) <= tolerance))


def test_untracked_boxes_keep_their_class_colours_and_tracked_ones_get_track_colours():
    image = background()
    plain = Detections([[20, 40, 60, 100], [90, 40, 140, 100]], [0.9, 0.3], [0, 1], ("person", "car"))
    out = draw_detections(image, plain)
    assert out.shape == image.shape and out.dtype == np.uint8 and np.all(image == 40)  # a copy
    assert tuple(out[70, 20]) == class_colour(0) and tuple(out[70, 90]) == class_colour(1)  # left edges
    tracked = Detections(plain.xyxy, plain.confidence, plain.class_id, plain.class_names, [7, -1])
    out = draw_detections(image, tracked)
    assert tuple(out[70, 20]) == track_colour(7) == class_colour(7)
    assert tuple(out[70, 90]) == track_colour(-1) == (160, 160, 160)  # tentative: grey
    # the labels are "#7 person 0.90" and "car 0.30": drawing those texts by hand gives the same picture
    assert np.array_equal(out, draw_detections(image, tracked, labels=["#7 person 0.90", "car 0.30"]))
    assert not np.array_equal(out, draw_detections(image, tracked, labels=["ada", "car 0.30"]))
    with pytest.raises(ValueError, match=r"one label per detection \(2\); received 1"):
        draw_detections(image, tracked, labels=["ada"])
    empty = draw_detections(image, Detections.empty(("person",)))
    assert np.array_equal(empty, image)


def test_trails_are_drawn_in_the_track_colour_wider_for_newer_points():
    image = background()
    trail = np.array([[10, 60], [50, 60], [90, 60], [130, 60]], np.float32)
    out = draw_trails(image, {3: trail}, scale=1.0)  # widths 1 + 3 k / 3 for k = 1, 2, 3: 2, 3, 4 px
    assert out.shape == image.shape and np.all(image == 40)
    assert tuple(out[60, 110]) == track_colour(3)
    column = lambda x: int(np.count_nonzero(np.any(out[:, x] != 40, axis=1)))  # noqa: E731
    assert column(30) < column(110)  # the oldest segment is thinner than the newest
    assert np.all(out[:40] == 40) and np.all(out[80:] == 40)  # nothing far from the trail
    assert np.array_equal(draw_trails(image, {}), image)
    assert np.array_equal(draw_trails(image, {1: trail[:1]}), image)  # one point: no segment


def test_count_line_draws_the_line_the_in_arrow_and_the_counts():
    image = background(100, 200)
    counter = LineCounter("0,0.5,1,0.5")  # (0, 50) -> (200, 50): in is down
    counter.update([[95, 30, 105, 40]], [1], ["cat"], image.shape)
    counter.update([[95, 60, 105, 70]], [1], ["cat"], image.shape)
    assert counter.total_in == 1
    out = draw_count_line(image, counter)
    assert out.shape == image.shape and np.all(image == 40)
    assert near(out[50, 30], LINE_RGB)  # on the line
    assert near(out[60, 100], LINE_RGB)  # the arrow's shaft, below the middle (the in side)
    above, below = out[:45], out[56:]
    # white text on the dark box (0.3 * 40 + 0.7 * 20 = 26), above the line
    assert np.any(np.all(above > 200, axis=2)) and np.any(np.all(above == 26, axis=2))
    assert not np.any(below < 40)  # no label box below


def test_zone_is_tinted_outlined_and_labelled():
    image = background(100, 100)
    zone = PolygonZone("0.2,0.2,0.8,0.2,0.8,0.8,0.2,0.8")  # (20, 20) .. (80, 80)
    out = draw_zone(image, zone, total=4)
    assert out.shape == image.shape and np.all(image == 40)
    # inside: (1 - a) 40 + a colour, a = 0.25: (0.75 * 40 + 0.25 * (255, 170, 0)) = (93.75, 72.5, 30)
    expected = 0.75 * 40 + ZONE_OPACITY * np.array(ZONE_RGB)
    assert np.abs(out[60, 60].astype(float) - expected).max() <= 1
    assert np.all(out[90:] == 40) and np.all(out[:, 90:] == 40)  # outside: untouched
    assert near(out[50, 80], ZONE_RGB)  # the outline
    assert np.any(np.all(out[20:40, 20:60] > 200, axis=2))  # the "inside 4" text at the top vertex


def test_images_are_checked():
    with pytest.raises(ValueError, match=r"expected \(H, W, 3\) uint8 RGB"):
        draw_trails(np.zeros((10, 10), np.uint8), {})
    with pytest.raises(ValueError, match=r"expected \(H, W, 3\) uint8 RGB"):
        draw_zone(np.zeros((10, 10, 3), np.float32), PolygonZone("1,1,5,1,5,5"), 0)
