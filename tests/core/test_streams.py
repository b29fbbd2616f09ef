"""Network streams: a local MJPEG-over-HTTP server read through OpenCV's FFmpeg, timeouts, reconnects.

Everything runs on 127.0.0.1. FFmpeg opens the server's ``multipart/x-mixed-replace`` response with
its mpjpeg demuxer whatever the URL's suffix (it probes the body); each part carries a
Content-Length, without which the demuxer holds a frame back until the next boundary arrives. FFmpeg
opens a stream only once it has probed about 2 KB of it: a connection that ends sooner (two 64x48
frames of ~0.9 KB) does not open, so every server here sends at least three frames per connection.
"""

import functools
import http.server
import itertools
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from cvapps.core.sources import (
    ReconnectPolicy,
    display_name,
    iter_frames,
    stream_timeout,
)
from cvapps.core.webcam import LatestFrameReader, run_loop

WIDTH, HEIGHT, SQUARE, STEP = 64, 48, 8, 4
BOUNDARY = "cvappsframe"
FAST = ReconnectPolicy(attempts=2, delay=0.05, max_delay=0.1)


def square_x(k):
    """Left edge of the white square in the k-th frame the server sends."""
    return STEP * k % (WIDTH - SQUARE)


def jpeg(k):
    bgr = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    bgr[20 : 20 + SQUARE, square_x(k) : square_x(k) + SQUARE] = 255
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


def found_x(image):
    """Left edge of the white square in an RGB frame."""
    return int(np.argmax(image[20 + SQUARE // 2, :, 0] > 128))


class MjpegServer:
    """``multipart/x-mixed-replace`` JPEG frames of a moving white square on black, 64x48.

    Each connection gets ``per_connection`` frames (``pause`` seconds apart) and is then closed; the
    square moves on across connections (``sent`` counts every frame sent). From connection
    ``refuse_after + 1`` on, requests get 503.
    """

    def __init__(self, per_connection=6, pause=0.0, refuse_after=None):
        self.per_connection, self.pause, self.refuse_after = per_connection, pause, refuse_after
        self.sent = 0
        self.requests = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with owner.lock:
                    owner.requests += 1
                    refused = owner.refuse_after is not None and owner.requests > owner.refuse_after
                if refused:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                try:
                    for _ in range(owner.per_connection):
                        with owner.lock:
                            data, owner.sent = jpeg(owner.sent), owner.sent + 1
                        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                        self.wfile.write(head.encode() + data + b"\r\n")
                        self.wfile.flush()
                        time.sleep(owner.pause)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader went away first

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path="stream.mjpg", auth=""):
        return f"http://{auth}127.0.0.1:{self.port}/{path}"

    def close(self):
        """Stop serving and close the listening socket: later connections are refused."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(timeout=5)
        self.server.server_close()


@pytest.fixture
def mjpeg():
    """Make MJPEG servers; every one is shut down when the test ends."""
    servers = []

    def make(**options):
        servers.append(MjpegServer(**options))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def free_port():
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_display_name_masks_passwords():
    assert display_name("rtsp://user:secret@host/x") == "rtsp://user:***@host/x"
    assert display_name("rtsp://user:p@ss@host:554/x") == "rtsp://user:***@host:554/x"  # up to the last @
    assert display_name("rtsp://user:***@host/x") == "rtsp://user:***@host/x"  # masking twice
    assert display_name("http://h/v?Token=abc&w=2;pwd=z#f") == "http://h/v?Token=***&w=2;pwd=***#f"
    assert display_name("rtsp://host/a:b@c") == "rtsp://host/a:b@c"  # an @ in the path is no user info
    assert display_name("http://user@host/x") == "http://user@host/x"
    assert display_name("clips/live.m3u8") == "clips/live.m3u8"


def test_frames_in_order_through_ffmpeg(mjpeg):
    server = mjpeg(per_connection=6)
    url = server.url()
    frames = list(iter_frames(url, reconnect=ReconnectPolicy(attempts=0)))
    assert len(frames) == 7 and server.requests == 1
    assert [f.index for f in frames] == list(range(7))
    assert all(f.source == url for f in frames)
    for k, frame in enumerate(frames[:6]):
        assert frame.error is None and frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
        assert found_x(frame.image) == square_x(k)
    assert frames[6].image is None
    assert frames[6].error == f"{url}: stream lost after 6 frames; reconnecting is off (ReconnectPolicy(attempts=0))."


def test_the_url_suffix_does_not_matter(mjpeg):
    for path in ("video", "frame.jpg", "cgi-bin/stream?fps=5"):
        server = mjpeg(per_connection=3)
        frames = list(iter_frames(server.url(path), reconnect=ReconnectPolicy(attempts=0)))
        assert [f.image.shape for f in frames[:3]] == [(HEIGHT, WIDTH, 3)] * 3 and frames[3].error, path


def test_a_password_never_shows(mjpeg):
    server = mjpeg(per_connection=3, refuse_after=1)
    url = server.url(auth="admin:hunter2@")
    frames = list(iter_frames(url, reconnect=FAST))
    masked = server.url(auth="admin:***@")
    assert [f.source for f in frames] == [masked] * 4
    assert frames[3].error.startswith(f"{masked}: stream lost after 3 frames; 2 reconnect attempts failed")
    assert "hunter2" not in frames[3].error
    with pytest.raises(ValueError) as caught:
        iter_frames(f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/live")
    assert "rtsp://admin:***@127.0.0.1:" in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_closed_port_fails_fast_naming_the_url(monkeypatch):
    monkeypatch.setenv("CVAPPS_STREAM_TIMEOUT", "2")
    url = f"http://user:pw@127.0.0.1:{free_port()}/stream.mjpg"
    start = time.perf_counter()
    with pytest.raises(
        ValueError, match=r"^http://user:\*\*\*@127\.0\.0\.1:\d+/stream\.mjpg: could not open the stream within 2 s"
    ):
        iter_frames(url)
    assert time.perf_counter() - start < 2 + 3


def test_a_silent_server_times_out_instead_of_hanging(monkeypatch):
    monkeypatch.setenv("CVAPPS_STREAM_TIMEOUT", "1")
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/stream.mjpg"
        start = time.perf_counter()
        with pytest.raises(ValueError, match=r"could not open the stream within 1 s; check the address"):
            iter_frames(url)
        assert 0.5 < time.perf_counter() - start < 1 + 3


def test_stream_timeout_from_the_environment(monkeypatch):
    monkeypatch.delenv("CVAPPS_STREAM_TIMEOUT", raising=False)
    assert stream_timeout() == 10.0
    monkeypatch.setenv("CVAPPS_STREAM_TIMEOUT", "2.5")
    assert stream_timeout() == 2.5
    for bad in ("soon", "0", "-1", "inf"):
        monkeypatch.setenv("CVAPPS_STREAM_TIMEOUT", bad)
        with pytest.raises(ValueError, match=rf"CVAPPS_STREAM_TIMEOUT='{bad}': expected a number of seconds > 0"):
            iter_frames("rtsp://127.0.0.1:1/x")


def test_reconnects_and_indices_count_on(mjpeg):
    server = mjpeg(per_connection=4)
    frames = iter_frames(server.url(), reconnect=FAST)
    got = list(itertools.islice(frames, 10))
    frames.close()
    assert [f.index for f in got] == list(range(10))
    assert all(f.error is None for f in got) and server.requests == 3
    assert [found_x(f.image) for f in got] == [square_x(k) for k in range(10)]  # no frame twice, none lost


def test_a_server_that_goes_away_ends_with_one_error_frame(mjpeg):
    server = mjpeg(per_connection=3)
    frames = iter_frames(server.url(), reconnect=FAST)
    assert [next(frames).index for _ in range(3)] == [0, 1, 2]
    server.close()  # connection refused from now on
    start = time.perf_counter()
    rest = list(frames)
    assert time.perf_counter() - start < 3
    assert len(rest) == 1 and rest[0].image is None and rest[0].index == 3
    assert rest[0].error.startswith(f"{server.url()}: stream lost after 3 frames; 2 reconnect attempts failed")


def test_reconnect_policy():
    assert ReconnectPolicy().delays() == (1.0, 2.0, 4.0, 8.0, 16.0)
    assert ReconnectPolicy(attempts=4, delay=3, max_delay=5).delays() == (3.0, 5.0, 5.0, 5.0)
    assert ReconnectPolicy(attempts=0).delays() == ()
    with pytest.raises(ValueError, match=r"attempts=-1; expected a whole number >= 0"):
        ReconnectPolicy(attempts=-1)
    with pytest.raises(ValueError, match=r"attempts=2.5; expected a whole number"):
        ReconnectPolicy(attempts=2.5)
    with pytest.raises(ValueError, match=r"delay=-1; expected a number of seconds >= 0"):
        ReconnectPolicy(delay=-1)
    with pytest.raises(ValueError, match=r"max_delay=0.5 is below delay=1.0"):
        ReconnectPolicy(max_delay=0.5)


def test_latest_frame_reader_reads_a_stream_like_a_camera(mjpeg):
    server = mjpeg(per_connection=8, pause=0.02)
    url = server.url(auth="u:pw@")
    with LatestFrameReader(url, reconnect=ReconnectPolicy(attempts=0)) as reader:
        assert reader.realtime and reader.name == server.url(auth="u:***@")
        frames = []
        while (frame := reader.read(timeout=5)) is not None:
            frames.append(frame)
            time.sleep(0.05)  # a slow consumer: stale frames are dropped
    good, last = frames[:-1], frames[-1]
    assert good and all(f.image.shape == (HEIGHT, WIDTH, 3) and f.source == reader.name for f in good)
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and indices[-1] == 8
    assert last.image is None and last.error.startswith(f"{reader.name}: stream lost after 8 frames")
    assert reader.dropped == 9 - len(frames) and reader.dropped > 0


def test_latest_frame_reader_refuses_an_unreachable_stream(monkeypatch):
    monkeypatch.setenv("CVAPPS_STREAM_TIMEOUT", "2")
    with pytest.raises(ValueError, match=r"^rtsp://u:\*\*\*@127\.0\.0\.1:\d+/x: could not open the stream within 2 s"):
        LatestFrameReader(f"rtsp://u:pw@127.0.0.1:{free_port()}/x")


def test_latest_frame_reader_reconnects(mjpeg):
    server = mjpeg(per_connection=3)
    with LatestFrameReader(server.url(), realtime=False, reconnect=FAST) as reader:
        got = [reader.read(timeout=5) for _ in range(7)]
    assert [f.index for f in got] == list(range(7)) and server.requests >= 3
    assert [found_x(f.image) for f in got] == [square_x(k) for k in range(7)]


def test_run_loop_records_a_stream_and_reports_its_loss(mjpeg, tmp_path):
    server = mjpeg(per_connection=5)
    out = tmp_path / "annotated.webm"
    with pytest.raises(ValueError, match=r"stream lost after 5 frames; reconnecting is off"):
        run_loop(
            server.url(), lambda rgb: rgb, show=False, output=out, realtime=False, reconnect=ReconnectPolicy(attempts=0)
        )
    capture = cv2.VideoCapture(str(out))  # what was recorded before the loss is kept
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count == 5 and sorted(p.name for p in tmp_path.iterdir()) == ["annotated.webm"]
    stats = run_loop(server.url(), lambda rgb: rgb, show=False, max_frames=3, realtime=False)
    assert stats.frames == 3


def test_a_video_file_over_http_ends_at_its_end(tmp_path):
    """A URL that reports a frame count is read like a file: no reconnect, no error frame at its end."""
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (WIDTH, HEIGHT))
    for k in range(5):
        writer.write(cv2.imdecode(np.frombuffer(jpeg(k), np.uint8), cv2.IMREAD_COLOR))
    writer.release()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        frames = list(iter_frames(f"http://127.0.0.1:{server.server_address[1]}/clip.avi", reconnect=FAST))
    finally:
        server.shutdown()
        server.server_close()
    assert [f.index for f in frames] == [0, 1, 2, 3, 4] and all(f.error is None for f in frames)
    assert [found_x(f.image) for f in frames] == [square_x(k) for k in range(5)]


def test_an_hls_playlist_is_read_through_ffmpeg(tmp_path):
    """A .m3u8 (HLS) playlist of one MPEG-TS segment served on 127.0.0.1 (the segment written with PyAV)."""
    import functools

    av = pytest.importorskip("av")
    from cvapps.core.streaming import FrameStream

    out = av.open(str(tmp_path / "seg0.ts"), "w", format="mpegts")
    stream = out.add_stream("mpeg2video", rate=10)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    for k in range(20):
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[10:30, k * 2 : k * 2 + 20] = 255
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    (tmp_path / "live.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\nseg0.ts\n#EXT-X-ENDLIST\n"
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.m3u8"
        frames = FrameStream(url)
        assert frames.source.kind == "stream"
        read = [frame for frame in frames if frame.image is not None]
    finally:
        server.shutdown()
        server.server_close()
    assert read and all(frame.image.shape == (HEIGHT, WIDTH, 3) and frame.source == url for frame in read)
    assert [frame.index for frame in read] == sorted({frame.index for frame in read})
