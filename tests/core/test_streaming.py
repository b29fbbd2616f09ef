"""The frame-by-frame result stream behind ``detect|classify|segment|stylize(source, stream=True)``."""

import numpy as np
import pytest
from PIL import Image

from cvapps.core.streaming import FrameResult, FrameStream, stream_results


def write_video(path, frames=5, size=(32, 24), fps=10):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for k in range(frames):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:, k * 4 : k * 4 + 4] = 255
        writer.write(frame)
    writer.release()
    return path


def test_a_video_streams_in_order_with_its_frame_rate(tmp_path):
    frames = FrameStream(write_video(tmp_path / "clip.avi"))
    assert frames.fps == pytest.approx(10)
    results = list(stream_results(frames, lambda frame: frame.image.shape))
    assert [r.frame.index for r in results] == [0, 1, 2, 3, 4]
    assert all(r.result == (24, 32, 3) and r.milliseconds >= 0 for r in results)


def test_a_bad_file_in_a_folder_is_a_result_without_a_value_and_the_rest_goes_on(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "c.png")
    results = list(stream_results(FrameStream(tmp_path), lambda frame: frame.image.shape[1]))
    assert [r.result for r in results] == [4, None, 6]
    assert "b.png" in results[1].frame.error


def test_a_missing_source_fails_at_the_call_not_at_the_first_frame(tmp_path):
    with pytest.raises(ValueError, match="no such file or folder"):
        FrameStream(tmp_path / "nope.mp4")


def test_a_result_unpacks_into_frame_and_value():
    from cvapps.core.sources import Frame

    frame, value = FrameResult(Frame(None, "x"), 3, 1.5)
    assert (frame.source, value) == ("x", 3)


def test_closing_early_stops_the_stream(tmp_path):
    stream = stream_results(FrameStream(write_video(tmp_path / "clip.avi", frames=30)), lambda frame: frame.index)
    assert next(stream).result == 0
    stream.close()  # releases the video; no more frames
    with pytest.raises(StopIteration):
        next(stream)


def test_an_app_streams_results_from_a_network_stream(tiny_classifier):
    """classify(url, stream=True) over a local MJPEG server: results while the stream runs."""
    import itertools

    from test_streams import MjpegServer

    import cvapps

    server = MjpegServer(per_connection=50, pause=0.02)
    try:
        stream = cvapps.classify(server.url(), tiny_classifier, stream=True)
        first = list(itertools.islice(stream, 3))
        stream.close()  # an endless source: the consumer stops it
    finally:
        server.close()
    assert len(first) == 3 and all(r.result is not None and r.frame.source == server.url() for r in first)
    indices = [r.frame.index for r in first]
    assert indices == sorted(set(indices))  # in order; stale frames may be skipped (gaps)
