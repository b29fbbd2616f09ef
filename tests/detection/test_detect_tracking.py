"""detect(..., track=True) and stream=True: ids that persist, the tracker kept across calls, the generator."""

import pytest

from cvapps.core.tracking import Tracker, TrackOptions
from cvapps.detection import Detections, detect


@pytest.fixture
def still(tiny_detector):
    from cvapps.core.sources import read_image

    model_path, root, _ = tiny_detector
    return model_path, read_image(root / "images" / "0.png")  # a red and a blue square


def test_the_same_boxes_in_every_frame_keep_their_ids(still):
    model, image = still
    frames = detect([image] * 6, model, track=True)
    plain = detect(image, model)[0]
    assert all(f.track_id is not None and len(f) == len(plain) for f in frames)
    # TrackOptions.min_frames = 2: tentative (-1) on the first frame, confirmed from the second
    assert set(frames[0].track_id.tolist()) == {-1}
    ids = [tuple(sorted(f.track_id.tolist())) for f in frames[1:]]
    assert len(set(ids)) == 1 and -1 not in ids[0] and len(set(ids[0])) == len(plain)
    assert "track_id" in frames[-1].to_dict()[0] and "track_id" not in plain.to_dict()[0]


def test_a_tracker_of_yours_persists_across_calls(still):
    model, image = still
    tracker = Tracker(TrackOptions(min_frames=1))
    first, second, third = (detect(image, model, track=tracker)[0] for _ in range(3))
    assert set(first.track_id.tolist()) == {-1}  # a track's first frame is tentative
    assert sorted(second.track_id.tolist()) == sorted(third.track_id.tolist())
    assert min(second.track_id) >= 0


def test_tracking_keeps_the_class_filter(still):
    model, image = still
    frames = detect([image] * 3, model, track=True, classes=["red"])
    assert all(set(f.class_name) <= {"red"} for f in frames)


def test_a_bad_track_value_is_refused(still):
    model, image = still
    with pytest.raises(TypeError, match="track must be True, False, a cvapps.core.tracking.TrackOptions"):
        detect(image, model, track="yes")


def test_stream_yields_frame_results_over_a_video(still, tmp_path):
    import cv2

    model, image = still
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for _ in range(4):
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    stream = detect(video, model, stream=True, track=True)
    assert not isinstance(stream, list)
    items = list(stream)
    assert [frame.index for frame, _ in items] == [0, 1, 2, 3]
    assert all(isinstance(found, Detections) and found.track_id is not None for _, found in items)


def test_detections_check_their_track_ids():
    with pytest.raises(ValueError, match="track_id must hold one integer per box"):
        Detections([[0, 0, 1, 1]], [0.5], [0], ("a",), track_id=[1, 2])
    found = Detections([[0, 0, 1, 1], [2, 2, 3, 3]], [0.5, 0.9], [0, 0], ("a",), track_id=[4, -1])
    assert found[found.confidence > 0.6].track_id.tolist() == [-1]
