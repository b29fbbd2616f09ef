"""cvapps.core.tracking: ByteTrack ids through crossings and occlusions, line counts, zone counts."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvapps.core.tracking import LineCounter, PolygonZone, Tracker, TrackOptions, parse_points

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def square(cx, cy, half=20):
    return [cx - half, cy - half, cx + half, cy + half]


# ----------------------------------------------------------------------------------------------
# TrackOptions
# ----------------------------------------------------------------------------------------------


def test_track_options_defaults_and_validation():
    options = TrackOptions()
    assert (options.activation_threshold, options.high_threshold, options.lost_frames) == (0.25, 0.25, 30)
    assert (options.min_iou, options.min_frames, options.trail) == (0.1, 2, 30)
    with pytest.raises(ValueError, match=r"activation_threshold must be in \[0, 1\]; received 1.5"):
        TrackOptions(activation_threshold=1.5)
    with pytest.raises(ValueError, match="high_threshold must be at most activation_threshold"):
        TrackOptions(activation_threshold=0.3, high_threshold=0.5)
    with pytest.raises(ValueError, match="min_frames must be an integer >= 1; received 0"):
        TrackOptions(min_frames=0)
    with pytest.raises(ValueError, match="lost_frames must be an integer >= 0; received -1"):
        TrackOptions(lost_frames=-1)
    with pytest.raises(TypeError, match="trail must be an integer"):
        TrackOptions(trail=2.5)
    with pytest.raises(TypeError, match="min_iou must be a number"):
        TrackOptions(min_iou="0.3")
    with pytest.raises(ValueError, match="frame_rate must be a positive number"):
        Tracker(frame_rate=0)
    with pytest.raises(TypeError, match="Tracker takes a cvapps.core.tracking.TrackOptions"):
        Tracker({"lost_frames": 3})


def test_importing_tracking_does_not_import_trackers():
    code = (
        "import sys, cvapps.core.tracking, cvapps.core.annotate; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('trackers', 'supervision')); assert not bad, bad[:3]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, cvapps.core.annotate; assert 'cvapps.core.tracking' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------------
# Tracker
# ----------------------------------------------------------------------------------------------


def synthetic_sequence(frames=60, seed=0):
    """Per frame: (xyxy, confidence, truth) with ``truth[i]`` the ground-truth object of box i.

    Object 0 moves right along y = 200 and object 1 left along y = 212 (6 px/frame each, 40 px
    boxes, x0 = 60 + 6 t, x1 = 580 - 6 t): their boxes overlap while |x0 - x1| = |520 - 12 t| < 40,
    i.e. 480 < 12 t < 560, frames 41..46 (IoU up to 28 / 52 = 0.54 when x0 = x1).
    Object 2 moves diagonally (4, 3) px/frame from (100, 380) up-right and is not detected in
    frames 20..24 (occluded), then reappears. Boxes get +-1 px noise; confidences 0.5..0.95;
    the boxes of each frame come in a shuffled order.
    """
    rng = np.random.default_rng(seed)
    sequence = []
    for t in range(frames):
        boxes, truth = [], []
        boxes.append(square(60 + 6 * t, 200))
        truth.append(0)
        boxes.append(square(580 - 6 * t, 212))
        truth.append(1)
        if not 20 <= t <= 24:
            boxes.append(square(100 + 4 * t, 380 - 3 * t))
            truth.append(2)
        boxes = np.array(boxes, np.float32) + rng.uniform(-1, 1, (len(boxes), 4)).astype(np.float32)
        confidence = rng.uniform(0.5, 0.95, len(boxes)).astype(np.float32)
        order = rng.permutation(len(boxes))
        sequence.append((boxes[order], confidence[order], np.array(truth)[order]))
    return sequence


@pytest.mark.parametrize("seed", range(30))
def test_three_objects_keep_their_ids_through_a_crossing_and_an_occlusion(seed):
    tracker = Tracker(TrackOptions(min_frames=2))
    ids_of = {0: set(), 1: set(), 2: set()}
    for t, (boxes, confidence, truth) in enumerate(synthetic_sequence(seed=seed)):
        index, track_id = tracker.update(boxes, confidence, np.zeros(len(boxes), np.int64))
        assert index.tolist() == sorted(index.tolist())  # input order
        assert index.tolist() == list(range(len(boxes)))  # every box scores >= 0.5: all kept
        if t == 0:
            assert track_id.tolist() == [-1] * len(boxes)  # min_frames = 2: tentative on the first frame
        if t >= 2:
            assert np.all(track_id >= 0)
            for i, tid in zip(index, track_id):
                ids_of[int(truth[i])].add(int(tid))
    assert all(len(ids) == 1 for ids in ids_of.values()), ids_of  # no swap at the crossing, same id after 20..24
    assert len(set.union(*ids_of.values())) == 3  # unique ids


def test_empty_frames_first_frame_and_vanishing():
    tracker = Tracker(TrackOptions(lost_frames=3))
    index, track_id = tracker.update(np.zeros((0, 4), np.float32), [], [])  # N = 0 first frame
    assert index.shape == track_id.shape == (0,) and index.dtype == track_id.dtype == np.int64
    first = []
    for t in range(4):
        _, track_id = tracker.update([square(50 + 2 * t, 50)], [0.9], [0])
        first.append(int(track_id[0]))
    assert first == [-1, 0, 0, 0]
    index, track_id = tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0))  # an empty frame
    assert len(index) == len(track_id) == 0 and tracker.trails == {}
    _, track_id = tracker.update([square(60, 50)], [0.9], [0])  # back after 1 missed frame: same id
    assert track_id.tolist() == [0]
    for _ in range(5):  # everything vanishes for more than lost_frames = 3 frames
        tracker.update(np.zeros((0, 4)), [], [])
    _, track_id = tracker.update([square(62, 50)], [0.9], [0])
    assert track_id.tolist() == [-1]  # the old track has ended: a new one starts
    _, track_id = tracker.update([square(64, 50)], [0.9], [0])
    assert track_id.tolist() == [1]  # ... with a new id, never 0 again
    tracker.reset()
    for _ in range(2):
        _, track_id = tracker.update([square(300, 300)], [0.9], [0])
    assert track_id.tolist() == [2]  # ids are not reused after a reset either


def test_low_confidence_boxes_continue_tracks_and_are_dropped_otherwise():
    tracker = Tracker()  # activation = high = 0.25
    for t in range(20):
        confidence = 0.15 if 8 <= t < 13 else 0.9  # the object's score dips for 5 frames
        stray = square(500, 400)  # a low box that matches no track
        index, track_id = tracker.update([square(50 + 3 * t, 100), stray], [confidence, 0.15], [0, 0])
        if t >= 1:
            assert index.tolist() == [0] and track_id.tolist() == [0], t  # the low box kept, same id
    # a low box that continues only a tentative track is dropped; a confident one is kept tentative
    # (min_frames = 3: two matched frames leave the track tentative)
    tracker = Tracker(TrackOptions(min_frames=3))
    index, track_id = tracker.update([square(50, 50), square(200, 50)], [0.9, 0.2], [0, 1])
    assert index.tolist() == [0] and track_id.tolist() == [-1]
    index, track_id = tracker.update([square(51, 50)], [0.2], [0])
    assert index.tolist() == [] and track_id.tolist() == []


def test_inputs_are_checked():
    tracker = Tracker()
    with pytest.raises(ValueError, match="one confidence and one class id per box; received 1 boxes, 2 confidences"):
        tracker.update([square(5, 5)], [0.5, 0.6], [0])
    with pytest.raises(ValueError, match=r"xyxy must be \(N, 4\) boxes; received shape \(1, 3\)"):
        tracker.update([[1, 2, 3]], [0.5], [0])
    with pytest.raises(ValueError, match=r"confidence must be in \[0, 1\]"):
        tracker.update([square(5, 5)], [1.5], [0])
    with pytest.raises(ValueError, match="x1 <= x2"):
        tracker.update([[10, 10, 5, 20]], [0.5], [0])


def test_trails_hold_the_last_centres_oldest_first():
    tracker = Tracker(TrackOptions(trail=3))
    for t in range(6):
        tracker.update([square(10 + 2 * t, 50), square(300, 10 + t)], [0.9, 0.9], [0, 0])
    trails = tracker.trails
    assert sorted(trails) == [0, 1]
    # the first box's centre x is 10 + 2 t: the last three frames t = 3, 4, 5 give 16, 18, 20
    np.testing.assert_allclose(trails[0], [[16, 50], [18, 50], [20, 50]])
    assert trails[0].dtype == np.float32 and trails[1].shape == (3, 2)
    tracker.update([square(22, 50)], [0.9], [0])  # track 1 not seen this frame: not in the trails
    assert sorted(tracker.trails) == [0]


def test_a_rendered_sequence_tracks_two_squares():
    import cv2

    tracker = Tracker()
    seen = {}
    for t in range(12):
        frame = np.zeros((64, 96), np.uint8)
        frame[10:22, 4 + 3 * t : 16 + 3 * t] = 255  # moving right
        frame[40:52, 80 - 2 * t : 92 - 2 * t] = 255  # moving left
        contours, _ = cv2.findContours(frame, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        xywh = np.array([cv2.boundingRect(c) for c in contours], np.float32)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        index, track_id = tracker.update(xyxy, np.full(len(xyxy), 0.9), np.zeros(len(xyxy)))
        for i, tid in zip(index, track_id):
            if tid >= 0:
                seen.setdefault("top" if xyxy[i, 1] < 32 else "bottom", set()).add(int(tid))
    assert seen == {"top": {seen["top"].copy().pop()}, "bottom": {seen["bottom"].copy().pop()}}
    assert seen["top"] != seen["bottom"]


def test_name_tracks_keeps_the_majority_name():
    tracker = Tracker()
    assert tracker.name_tracks([5], ["ada"]) == ["ada"]
    assert tracker.name_tracks([5], ["unknown"]) == ["ada"]  # unknown is no vote
    assert tracker.name_tracks([5], ["ada"]) == ["ada"]
    assert tracker.name_tracks([5, 6, -1], ["bob", "unknown", "eve"]) == ["ada", "unknown", "eve"]  # ada 2, bob 1
    assert tracker.name_tracks([5], ["bob"]) == ["bob"]  # a tie (2 - 2): the latest wins
    assert tracker.name_tracks(np.zeros(0, np.int64), []) == []
    with pytest.raises(ValueError, match="one name per track id; received 2 ids and 1 names"):
        tracker.name_tracks([1, 2], ["ada"])


# ----------------------------------------------------------------------------------------------
# parse_points, fractions
# ----------------------------------------------------------------------------------------------


def test_parse_points():
    assert parse_points("10,20,30,40", "--count-line").tolist() == [[10, 20], [30, 40]]
    assert parse_points(" 1 2, 3 4 ,5,6 ", "--zone").shape == (3, 2)
    with pytest.raises(ValueError, match=r"--count-line takes x1,y1,x2,y2.*received 'a,b' \('a' is not a number\)"):
        parse_points("a,b", "--count-line")
    with pytest.raises(ValueError, match=r"--zone takes .*\(3 values: x and y come in pairs\)"):
        parse_points("1,2,3", "--zone")
    with pytest.raises(ValueError, match="1 point.*at least 2 are needed"):
        parse_points("1,2", "--count-line")
    with pytest.raises(ValueError, match="values must be finite"):
        parse_points("0,0,inf,1", "--count-line")
    with pytest.raises(ValueError, match="--count-line takes exactly 2"):
        LineCounter("0,0,1,1,2,2")
    with pytest.raises(ValueError, match="two different points"):
        LineCounter("5,5,5,5")
    with pytest.raises(ValueError, match="--zone takes at least 3"):
        PolygonZone([[0, 0], [10, 10]])


def test_fractions_are_resolved_against_the_first_frame_size():
    line = LineCounter("0.5,0,0.5,1")
    assert line.to_dict()["line"] == [[0.5, 0.0], [0.5, 1.0]]  # not resolved yet
    assert line.resolve((480, 640, 3)).tolist() == [[320, 0], [320, 480]]  # x * W, y * H
    assert line.resolve((10, 10)).tolist() == [[320, 0], [320, 480]]  # once, at first use
    assert LineCounter("0,0.5,2,0.5").resolve((480, 640)).tolist() == [[0, 0.5], [2, 0.5]]  # 2 > 1: pixels
    zone = PolygonZone("0,0, 1,0, 1,1, 0,1")
    assert zone.resolve((100, 200)).tolist() == [[0, 0], [200, 0], [200, 100], [0, 100]]
    with pytest.raises(ValueError, match=r"frame_shape must be \(H, W\)"):
        PolygonZone("0,0,1,0,1,1").resolve((0, 5))


# ----------------------------------------------------------------------------------------------
# LineCounter
# ----------------------------------------------------------------------------------------------


def walk(counter, centres, track_id=1, name="person", frame_shape=(100, 200)):
    """Feed one track's centres (a 10 x 10 box around each); returns the per-frame (in, out) flags."""
    flags = []
    for x, y in centres:
        crossed_in, crossed_out = counter.update([square(x, y, 5)], [track_id], [name], frame_shape)
        flags.append((bool(crossed_in[0]), bool(crossed_out[0])))
    return flags


def test_in_is_from_the_left_to_the_right_of_the_direction():
    # line (0, 50) -> (100, 50): d = (100, 0), s = d_x (P_y - 50) / |d| = P_y - 50; below (y > 50) is the right
    counter = LineCounter([[0, 50], [100, 50]])
    assert walk(counter, [(50, 40), (50, 60)]) == [(False, False), (True, False)]  # s -10 -> +10: in
    assert walk(counter, [(50, 40)]) == [(False, True)]  # back up: out
    assert counter.to_dict() == {
        "line": [[0.0, 50.0], [100.0, 50.0]],
        "in": {"person": 1},
        "out": {"person": 1},
        "total_in": 1,
        "total_out": 1,
    }
    # line (0.5, 0) -> (0.5, 1) on 100 x 200: (100, 0) -> (100, 100), d = (0, 100),
    # s = -d_y (P_x - 100) / |d| = 100 - P_x: x < 100 is the right, so moving right to left is in
    vertical = LineCounter("0.5,0,0.5,1")
    assert walk(vertical, [(120, 50), (80, 50)]) == [(False, False), (True, False)]
    assert walk(vertical, [(130, 50)], track_id=2) == [(False, False)]
    assert walk(vertical, [(70, 50)], track_id=2) == [(True, False)]
    assert (vertical.total_in, vertical.total_out) == (2, 0)


def test_touching_the_line_and_going_back_does_not_count():
    counter = LineCounter([[0, 50], [100, 50]])
    assert walk(counter, [(50, 40), (50, 50), (50, 51.5), (50, 40)]) == [(False, False)] * 4  # |s| <= 2
    assert counter.to_dict()["total_in"] == counter.to_dict()["total_out"] == 0


def test_jitter_within_the_margin_counts_once():
    counter = LineCounter([[0, 50], [100, 50]], margin=2)
    # s = y - 50: -10, -1, +1, +3 (in, once past the margin), -1, +1, -1.5, +2.5: all within 2 of the line
    flags = walk(counter, [(50, 40), (50, 49), (50, 51), (50, 53), (50, 49), (50, 51), (50, 48.5), (50, 52.5)])
    assert [f for f in flags if f != (False, False)] == [(True, False)]
    assert flags[3] == (True, False)
    assert walk(counter, [(50, 47)]) == [(False, True)]  # s = -3: out, once
    assert (counter.total_in, counter.total_out) == (1, 1)
    no_margin = LineCounter([[0, 50], [100, 50]], margin=0)
    assert walk(no_margin, [(50, 49), (50, 51), (50, 49)]) == [(False, False), (True, False), (False, True)]


def test_a_crossing_outside_the_segment_is_not_counted():
    counter = LineCounter([[0, 50], [100, 50]])
    # from (95, 40) to (105, 60): meets y = 50 at x = 100, u = 100 / 100 = 1: on the segment's end
    assert walk(counter, [(95, 40), (105, 60)], track_id=1) == [(False, False), (True, False)]
    # from (96, 40) to (106, 60): meets y = 50 at x = 101, u = 1.01: past the end
    assert walk(counter, [(96, 40), (106, 60)], track_id=2) == [(False, False), (False, False)]
    # far outside, then back through the segment: that one counts (out: from below to above)
    assert walk(counter, [(150, 40), (150, 60), (50, 60), (50, 40)], track_id=3)[-1] == (False, True)
    assert (counter.total_in, counter.total_out) == (1, 1)


def test_the_crossing_is_measured_from_the_last_position_on_the_old_side():
    counter = LineCounter([[0, 50], [100, 50]])
    # s: -10, -1 (margin: still left), +1 (margin), +5 (right: in). Last left position (50, 40).
    assert walk(counter, [(50, 40), (50, 49), (50, 51), (50, 55)]) == [(False, False)] * 3 + [(True, False)]


def test_counts_per_class_and_tentative_tracks_ignored():
    counter = LineCounter([[0, 50], [100, 50]])
    above, below = [square(x, 40, 5) for x in (10, 50, 90)], [square(x, 60, 5) for x in (10, 50, 90)]
    names = ["car", "person", "car"]
    counter.update(above[:2] + below[2:], [1, 2, 3], names, (100, 100))
    crossed_in, crossed_out = counter.update(below[:2] + above[2:], [1, 2, 3], names, (100, 100))
    assert crossed_in.tolist() == [True, True, False] and crossed_out.tolist() == [False, False, True]
    counter.update(above, [-1, -1, -1], names, (100, 100))
    crossed_in, _ = counter.update(below, [-1, -1, -1], names, (100, 100))  # -1: never counted
    assert not crossed_in.any()
    assert counter.to_dict() == {
        "line": [[0.0, 50.0], [100.0, 50.0]],
        "in": {"car": 1, "person": 1},
        "out": {"car": 1},
        "total_in": 2,
        "total_out": 1,
    }
    empty_in, empty_out = counter.update(np.zeros((0, 4)), [], [], (100, 100))
    assert empty_in.shape == empty_out.shape == (0,)
    with pytest.raises(ValueError, match="one track id and class name per box; received 1 boxes, 2 ids"):
        counter.update([square(1, 1)], [1, 2], ["a"], (100, 100))
    with pytest.raises(ValueError, match=r"needs track ids; received None. Track the detections first \(--track\)"):
        counter.update([square(1, 1)], None, ["a"], (100, 100))
    counter.reset()
    assert counter.to_dict()["total_in"] == 0


# ----------------------------------------------------------------------------------------------
# PolygonZone
# ----------------------------------------------------------------------------------------------


def box_at(x, y):
    """A 10 x 10 box whose bottom-centre is (x, y)."""
    return [x - 5, y - 10, x + 5, y]


def test_polygon_zone_by_hand():
    zone = PolygonZone([[10, 10], [30, 10], [30, 30], [10, 30]])
    points = [(20, 20), (20, 30), (10, 20), (30, 30), (30, 10), (20, 31), (40, 20), (20, 5), (9.9, 20)]
    expected = [True, True, True, True, True, False, False, False, False]  # inside, 3 edges, 2 corners, out
    boxes = np.array([box_at(x, y) for x, y in points], np.float32)
    assert zone.contains(boxes, (100, 100)).tolist() == expected
    names = ["a", "b", "a", "a", "b", "a", "a", "a", "a"]
    assert zone.count(boxes, names, (100, 100)) == {
        "polygon": [[10.0, 10.0], [30.0, 10.0], [30.0, 30.0], [10.0, 30.0]],
        "inside": {"a": 3, "b": 2},
        "total": 5,
    }
    assert zone.contains(np.zeros((0, 4)), (100, 100)).shape == (0,)
    # a concave "C": the notch (x 15..30, y 15..25) is outside
    notch = PolygonZone("10,10 30,10 30,15 15,15 15,25 30,25 30,30 10,30")
    assert notch.contains([box_at(20, 20), box_at(12, 20), box_at(20, 28)], (100, 100)).tolist() == [False, True, True]


polygons = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=3, max_size=8)
grid_points = st.lists(st.tuples(st.integers(-2, 42), st.integers(-2, 42)), min_size=1, max_size=30)


@FAST
@given(polygons, grid_points, st.integers(0, 7), st.booleans())
def test_contains_does_not_depend_on_the_starting_vertex_or_orientation(polygon, points, shift, flip):
    boxes = np.array([box_at(x, y) for x, y in points], np.float32)
    moved = np.roll(np.array(polygon, np.float32), shift % len(polygon), axis=0)
    moved = moved[::-1] if flip else moved
    expected = PolygonZone(polygon).contains(boxes, (50, 50))
    assert PolygonZone(moved).contains(boxes, (50, 50)).tolist() == expected.tolist()


@FAST
@given(polygons, grid_points)
def test_contains_agrees_with_opencv_point_polygon_test(polygon, points):
    import cv2

    vertices = np.array(polygon, np.float32)
    if np.all((vertices >= 0) & (vertices <= 1)):
        vertices = vertices + 2  # keep them pixels (all in [0, 1] would read as fractions)
    boxes = np.array([box_at(x, y) for x, y in points], np.float32)
    expected = [cv2.pointPolygonTest(vertices.reshape(-1, 1, 2), (float(x), float(y)), False) >= 0 for x, y in points]
    assert PolygonZone(vertices).contains(boxes, (50, 50)).tolist() == expected


# ----------------------------------------------------------------------------------------------
# Speed
# ----------------------------------------------------------------------------------------------


def test_update_with_20_boxes_is_fast():
    import time

    rng = np.random.default_rng(0)
    start = rng.uniform(0, 600, (20, 2))
    tracker = Tracker()
    tracker.update(np.zeros((0, 4)), [], [])  # imports trackers
    began = time.perf_counter()
    for t in range(50):
        centres = start + 2 * t
        tracker.update(np.concatenate([centres - 15, centres + 15], 1), np.full(20, 0.8), np.zeros(20))
    per_frame = (time.perf_counter() - began) / 50
    assert per_frame < 0.02, per_frame  # measured about 1 ms on a CPU


def test_class_aware_tracks_keep_to_their_class():
    # a "dog" box moving over a still "bed" box it overlaps (IoU about 0.4): agnostic matching may
    # swap them; class-aware keeps each box with the track of its own class
    bed = [0.0, 0.0, 100.0, 60.0]
    aware = Tracker(TrackOptions(class_aware=True))
    seen = {}
    for t in range(6):
        dog = [10.0 + 4 * t, 10.0, 70.0 + 4 * t, 60.0]
        index, ids = aware.update(np.array([bed, dog]), np.array([0.9, 0.9]), np.array([1, 0]))
        for i, track in zip(index, ids):
            if track >= 0:
                seen.setdefault(int(i), set()).add(int(track))
    assert len(seen[0]) == 1 and len(seen[1]) == 1 and seen[0] != seen[1]
    # a class flip starts a new track when class-aware (the price of never crossing classes)
    index, ids = aware.update(np.array([bed, [34.0, 10, 94, 60]]), np.array([0.9, 0.9]), np.array([1, 2]))
    assert ids[list(index).index(1)] not in seen[1]


def test_class_aware_must_be_a_bool():
    with pytest.raises(TypeError, match="class_aware must be True or False"):
        TrackOptions(class_aware="yes")
