"""The webcam / video loop, headless: real and generated videos, dropping, errors, recording."""

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from cvapps.core.annotate import draw_text_lines
from cvapps.core.webcam import LatestFrameReader, LoopStats, _Latest, capture_target, draw_fps, run_loop

WIDTH, HEIGHT = 64, 48


def make_video(path, frames=12, fps=25.0):
    """An MJPG .avi of ``frames`` flat frames; frame i has red = 10 * i % 250 (BGR written, RGB read)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(frames):
        bgr = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        bgr[:, :, 2] = 10 * i % 250
        writer.write(bgr)
    writer.release()
    return Path(path)


def count_frames(path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def hidden_files(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".")]


@pytest.mark.realdata
def test_real_video_headless(tmp_path):
    data = os.environ.get("CVAPPS_DATA")
    if not data:
        pytest.skip("CVAPPS_DATA is not set (point it at the shared data folder)")
    video = Path(data) / "style" / "videos" / "fox.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is missing")
    seen = []

    def process(rgb):
        seen.append(rgb.shape)
        return rgb[::2, ::2].copy()  # identity-ish: half size

    out = tmp_path / "out.mp4"
    stats = run_loop(video, process, show=False, output=out, max_frames=20, realtime=False)
    assert isinstance(stats, LoopStats)
    assert stats.frames == 20 and len(seen) == 20 and stats.dropped == 0
    assert stats.fps > 0 and stats.seconds > 0
    assert seen[0][2] == 3
    assert out.is_file() and not hidden_files(tmp_path)
    assert abs(count_frames(out) - 20) <= 1
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) == seen[0][1] // 2
    capture.release()


def test_generated_video_every_frame_in_rgb(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=12)
    reds = []

    def process(rgb):
        assert rgb.shape == (HEIGHT, WIDTH, 3) and rgb.dtype == np.uint8
        reds.append(int(rgb[HEIGHT - 1, WIDTH - 1, 0]))
        assert rgb[..., 1:].max() < 20  # RGB order: the red channel carries the value
        return rgb

    out = tmp_path / "out.avi"
    stats = run_loop(str(video), process, show=False, output=out, realtime=False)
    assert stats.frames == 12 and stats.dropped == 0  # ends with the stream, max_frames=None
    assert all(abs(red - 10 * i) <= 6 for i, red in enumerate(reds)), reds
    assert count_frames(out) == 12
    capture = cv2.VideoCapture(str(out))
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (HEIGHT, WIDTH, 3)
    assert first[HEIGHT - 1, WIDTH - 1].max() < 30  # bottom-right: untouched dark frame
    assert first[:14, :40].max() > 150  # top-left: the white FPS text


def test_max_frames_stops_early(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=12)
    assert run_loop(video, lambda rgb: rgb, show=False, max_frames=5, realtime=False).frames == 5


def test_reader_in_order_and_fps(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=8, fps=12.0)
    with LatestFrameReader(str(video), realtime=False) as reader:
        assert reader.fps == pytest.approx(12.0)
        frames = []
        while (frame := reader.read()) is not None:
            frames.append(frame)
    assert [f.index for f in frames] == list(range(8))
    assert all(f.source == str(video) and f.image.shape == (HEIGHT, WIDTH, 3) for f in frames)
    assert reader.dropped == 0


def test_realtime_reader_drops_stale_frames(tmp_path):
    # 60 frames played at 200 fps (0.3 s) while the consumer takes 50 ms per frame.
    video = make_video(tmp_path / "fast.avi", frames=60, fps=200.0)
    indices = []
    with LatestFrameReader(str(video), realtime=True) as reader:
        while (frame := reader.read()) is not None:
            indices.append(frame.index)
            time.sleep(0.05)
        dropped = reader.dropped
    assert dropped >= 1
    assert len(indices) + dropped == 60  # every frame is either delivered or counted as dropped
    assert indices == sorted(set(indices)) and indices[-1] == 59  # newest frames, in order, the last one kept


def test_latest_buffer_logic():
    latest = _Latest(realtime=True)
    for i in range(3):
        latest.put(i)
    assert latest.get(0.1) == 2 and latest.dropped == 2
    latest.end()
    assert latest.get(0.1) is None

    fifo = _Latest(realtime=False, size=4)
    for i in range(3):
        fifo.put(i)
    fifo.end()
    assert [fifo.get(0.1) for _ in range(4)] == [0, 1, 2, None] and fifo.dropped == 0
    with pytest.raises(TimeoutError):
        _Latest(realtime=True).get(0.01)


def test_undecodable_video(tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match="broken.avi"):  # cannot be opened, or no frames decode
        run_loop(broken, lambda rgb: rgb, show=False, output=tmp_path / "out.avi")
    assert not (tmp_path / "out.avi").exists()


def test_no_tensorflow_import():
    code = "import sys, cvapps.core.webcam, cvapps.core.annotate; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_missing_camera():
    with pytest.raises(ValueError, match=r"camera 97.*--source path/to/video.mp4"):
        run_loop(97, lambda rgb: rgb, show=False)
    with pytest.raises(ValueError, match="camera 97"):
        run_loop("97", lambda rgb: rgb, show=False)


def test_capture_target_keeps_a_stream_url(tmp_path):
    # Classified only: nothing is opened (test_streams.py reads a local server).
    assert capture_target("rtsp://user:secret@cam.local/live") == "rtsp://user:secret@cam.local/live"
    assert capture_target("https://cam.local/index.m3u8") == "https://cam.local/index.m3u8"
    assert capture_target("3") == 3 and capture_target(make_video(tmp_path / "a.avi", 2)) == str(tmp_path / "a.avi")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"is an image source; .* or a stream URL \(rtsp://...\)"):
        capture_target(tmp_path / "a.png")


def test_refuses_to_overwrite_output(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=4)
    out = tmp_path / "out.avi"
    out.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="already exists"):
        run_loop(video, lambda rgb: rgb, show=False, output=out, realtime=False)
    assert out.read_bytes() == b"keep me"
    stats = run_loop(video, lambda rgb: rgb, show=False, output=out, overwrite=True, realtime=False)
    assert stats.frames == 4 and count_frames(out) == 4


def test_failure_mid_loop_leaves_no_file(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=12)
    calls = []

    def process(rgb):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("model failed")
        return rgb

    out = tmp_path / "out" / "annotated.avi"
    with pytest.raises(RuntimeError, match="model failed"):
        run_loop(video, process, show=False, output=out, realtime=False)
    assert not out.exists() and not hidden_files(out.parent)


def test_ctrl_c_keeps_recording(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=12)
    calls = []

    def process(rgb):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return rgb

    out = tmp_path / "out.avi"
    stats = run_loop(video, process, show=False, output=out, realtime=False)
    assert stats.frames == 3 and count_frames(out) == 3


def test_bad_process_output_and_arguments(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=4)
    with pytest.raises(ValueError, match=r"frame 0: process returned shape \(48, 64\).*\(H, W, 3\) uint8"):
        run_loop(video, lambda rgb: rgb[..., 0], show=False)
    with pytest.raises(ValueError, match="process returned NoneType"):
        run_loop(video, lambda rgb: None, show=False)
    with pytest.raises(ValueError, match="max_frames=0"):
        run_loop(video, lambda rgb: rgb, show=False, max_frames=0)
    sizes = iter([(48, 64), (40, 64)])
    with pytest.raises(ValueError, match="frame 1 is 64x40 but the video is 64x48"):
        run_loop(video, lambda rgb: np.zeros((*next(sizes), 3), np.uint8), show=False, output=tmp_path / "o.avi")
    assert not (tmp_path / "o.avi").exists()
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="is an image source"):
        run_loop(image, lambda rgb: rgb, show=False)
    with pytest.raises(ValueError, match="no such file"):
        run_loop(tmp_path / "missing.mp4", lambda rgb: rgb, show=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is for Linux")
def test_show_without_display_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = make_video(tmp_path / "clip.avi", frames=2)
    with pytest.raises(ValueError, match="--no-show"):
        run_loop(video, lambda rgb: rgb, show=True)


def test_draw_fps_and_text_lines():
    image = np.full((120, 160, 3), 128, np.uint8)
    out = draw_fps(image, 12.34)
    assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
    assert (image == 128).all()  # input untouched
    region = out[:30, :80]
    assert region.min() < 60 and region.max() > 200  # dark box, white text
    assert (out[60:, :] == 128).all()  # nothing drawn elsewhere
    assert (draw_text_lines(image, []) == image).all()
    tall = draw_text_lines(image, ["one", "two", "three"], origin=(150, 110))  # runs off the edge: clipped
    assert tall.shape == image.shape
    with pytest.raises(ValueError, match=r"expected \(H, W, 3\) uint8"):
        draw_fps(np.zeros((10, 10), np.float32), 1.0)


class FakeGui:
    """Stands in for OpenCV's window functions, so the show=True path runs without a display."""

    def __init__(self, monkeypatch, keys=(), visible=()):
        self.keys, self.visible, self.shown, self.destroyed = list(keys), list(visible), [], []
        monkeypatch.setenv("DISPLAY", ":99")
        monkeypatch.setattr(cv2, "imshow", lambda name, bgr: self.shown.append((name, bgr.shape)))
        monkeypatch.setattr(cv2, "waitKey", lambda delay: self.keys.pop(0) if self.keys else -1)
        monkeypatch.setattr(cv2, "getWindowProperty", lambda name, prop: self.visible.pop(0) if self.visible else 1.0)
        monkeypatch.setattr(cv2, "destroyWindow", self.destroyed.append)


@pytest.mark.parametrize("key", [ord("q"), 27])
def test_show_quits_on_q_or_esc(tmp_path, monkeypatch, key):
    gui = FakeGui(monkeypatch, keys=[-1, -1, key])
    video = make_video(tmp_path / "clip.avi", frames=12)
    stats = run_loop(video, lambda rgb: rgb, show=True, window_name="demo", realtime=False)
    assert stats.frames == 3 and len(gui.shown) == 3
    assert gui.shown[0] == ("demo", (HEIGHT, WIDTH, 3)) and gui.destroyed == ["demo"]


def test_show_stops_when_window_closed(tmp_path, monkeypatch):
    gui = FakeGui(monkeypatch, visible=[1.0, 1.0, 0.0])
    video = make_video(tmp_path / "clip.avi", frames=12)
    assert run_loop(video, lambda rgb: rgb, show=True, realtime=False).frames == 3
    assert gui.destroyed == ["cvapps"]


def test_show_ignores_visibility_a_backend_cannot_report(tmp_path, monkeypatch):
    FakeGui(monkeypatch, visible=[-1.0] * 12)
    video = make_video(tmp_path / "clip.avi", frames=12)
    assert run_loop(video, lambda rgb: rgb, show=True, realtime=False).frames == 12
