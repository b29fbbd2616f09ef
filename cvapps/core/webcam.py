"""One webcam / video loop for every app: read, process, overlay FPS, show, record.

    >>> from cvapps.core.webcam import run_loop
    >>> stats = run_loop(0, lambda rgb: rgb)   # q or Esc quits  # doctest: +SKIP
    >>> stats = run_loop("clip.mp4", model_fn, show=False,     # doctest: +SKIP
    ...                  output="annotated.mp4", realtime=False)
    >>> stats.frames, stats.fps, stats.dropped                 # doctest: +SKIP

Frames are read on a daemon thread. For a camera or a network stream (``rtsp://``, ``http://``,
``.m3u8``, ...) only the newest frame is kept, so a slow model lowers the displayed frame rate
instead of building up lag; a video file is delivered frame by frame (nothing dropped) unless
``realtime=True``, which plays it at its own frame rate like a camera. A network stream is opened
and read with the timeout and reconnect policy of :mod:`cvapps.core.sources`
(:func:`~cvapps.core.sources.stream_frames`), and named with its password masked. Windows are
opened only by :func:`run_loop` with ``show=True``.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvapps.core.annotate import draw_text_lines
from cvapps.core.sinks import VideoSink
from cvapps.core.sources import (
    Frame,
    ReconnectPolicy,
    display_name,
    is_stream_url,
    open_video,
    resolve_source,
    stream_frames,
    stream_timeout,
    video_fps,
)

DEFAULT_FPS = 25.0
QUEUE_SIZE = 4  # frames a non-realtime reader may decode ahead of the consumer
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Q, Esc


def capture_target(source: str | int | Path) -> int | str:
    """``source`` as a ``cv2.VideoCapture`` target: an int camera index, a video path string or a
    network stream URL (returned as given, password included; nothing is opened here).

    Raises:
        ValueError: the path does not exist, or it is an image, folder or glob rather than a video.
    """
    kind, items = resolve_source(source)
    if kind == "camera":
        return items[0]
    if kind in ("video", "stream"):
        return str(items[0])
    raise ValueError(
        f"{source}: is an image source; the webcam loop expects a camera index such as 0, a video "
        "file (.mp4, .avi, ...) or a stream URL (rtsp://...). Use the app's image mode for images and folders."
    )


class _Latest:
    """Frame buffer between the reader thread and the consumer.

    ``realtime=True``: holds at most one frame; putting a new one drops the unread one (counted
    in ``dropped``). ``realtime=False``: a FIFO of up to ``size`` frames; ``put`` waits for room.
    """

    def __init__(self, realtime, size=QUEUE_SIZE):
        self.realtime = realtime
        self.size = 1 if realtime else max(1, size)
        self.frames = collections.deque()
        self.dropped = 0
        self.ended = False
        self.closed = False
        self.error = None
        self.condition = threading.Condition()

    def put(self, frame) -> bool:
        """Add a frame; False when the buffer was closed (the producer should stop)."""
        with self.condition:
            if self.realtime:
                self.dropped += len(self.frames)
                self.frames.clear()
            else:
                while len(self.frames) >= self.size and not self.closed:
                    self.condition.wait(0.1)
            if self.closed:
                return False
            self.frames.append(frame)
            self.condition.notify_all()
            return True

    def end(self, error=None):
        with self.condition:
            self.ended, self.error = True, error
            self.condition.notify_all()

    def close(self):
        with self.condition:
            self.closed = True
            self.frames.clear()
            self.condition.notify_all()

    def get(self, timeout):
        """The next frame; None once the stream ended and every kept frame was taken.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
        """
        with self.condition:
            if not self.condition.wait_for(lambda: self.frames or self.ended, timeout):
                raise TimeoutError
            if self.frames:
                frame = self.frames.popleft()
                self.condition.notify_all()
                return frame
            if self.error is not None:
                raise self.error
            return None


class LatestFrameReader:
    """Reads frames on a daemon thread from a ``cv2.VideoCapture`` target.

    Args:
        target: camera index (int or digit string), video file path (str or Path) or network
            stream URL (see :func:`~cvapps.core.sources.is_stream_url`).
        realtime: True keeps only the newest frame (stale ones are dropped and counted in
            ``dropped``), so a slow model never freezes the display; a video file is then
            played at its own FPS, like a camera. False delivers every frame in order (headless
            processing, tests). None: True for a camera or a stream, False for a video file.
        reconnect: how a network stream is reopened when its frames stop (None: the default
            :class:`~cvapps.core.sources.ReconnectPolicy`). Ignored for cameras and files.

    Attributes:
        name: what messages and frames call the source: ``"camera:N"``, the file path, or the
            stream URL with its password masked (:func:`~cvapps.core.sources.display_name`).
        stream: whether ``target`` is a network stream.
        fps: the capture's reported FPS (25.0 when unknown).
        dropped: frames dropped as stale so far.

    Raises:
        ValueError: the camera, video or stream cannot be opened (a stream: within
            ``CVAPPS_STREAM_TIMEOUT`` seconds, default 10); the message names it.
    """

    def __init__(
        self, target: int | str | Path, realtime: bool | None = None, reconnect: ReconnectPolicy | None = None
    ):
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        elif not isinstance(target, int):
            target = str(target)  # a pathlib.Path
        self.camera = isinstance(target, int)
        self.stream = not self.camera and is_stream_url(target)
        self.name = f"camera:{target}" if self.camera else display_name(target) if self.stream else str(target)
        self.realtime = (self.camera or self.stream) if realtime is None else bool(realtime)
        self.reconnect = ReconnectPolicy() if reconnect is None else reconnect
        if self.camera:
            try:
                capture = open_video(target, self.name)
            except ValueError:
                raise ValueError(
                    f"{self.name}: could not open camera {target}; check it is connected and not in use, "
                    "or pass --source path/to/video.mp4 to test without a camera."
                ) from None
        else:
            capture = open_video(target, self.name)

        self.fps = video_fps(capture) or DEFAULT_FPS
        if self.stream:
            # The longest the reader thread can take to deliver something: a read that times out,
            # then every reconnect attempt (its wait, an open and a first read, each bounded).
            limit = stream_timeout()
            self._patience = limit + sum(delay + 2 * limit for delay in self.reconnect.delays()) + 5.0
        self._stop = threading.Event()
        self._buffer = _Latest(self.realtime)
        self._thread = threading.Thread(target=self._work, args=(capture, target), daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    def _frames(self, capture, target):
        """The capture's frames: a stream's with its reconnect policy, a file's paced when realtime."""
        if self.stream:
            yield from stream_frames(target, capture, self.reconnect, self._stop)
            return
        import cv2

        pace = self.realtime and not self.camera  # play a file at its own rate, like a camera
        start = time.perf_counter()
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            if pace:
                delay = start + index / self.fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.name, index)
            index += 1

    def _work(self, capture, target):
        buffer, error, delivered = self._buffer, None, 0
        frames = self._frames(capture, target)
        try:
            for frame in frames:
                if buffer.closed:
                    break
                if frame.error is not None and delivered == 0:  # opened, yet not one frame came
                    error = ValueError(frame.error)
                    break
                if not buffer.put(frame):
                    break
                delivered += 1
        except Exception as caught:  # re-raised by read() in the consumer's thread
            error = caught
        finally:
            frames.close()  # releases a reopened stream
            capture.release()
            if error is None and delivered == 0 and not buffer.closed:
                error = ValueError(f"{self.name}: no frames could be read; check the file plays or the camera works.")
            buffer.end(error)

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next :class:`~cvapps.core.sources.Frame` ((H, W, 3) uint8 RGB, ``source`` = :attr:`name`,
        ``index`` = position in the stream, so drops show as gaps); None at the end.

        A network stream lost after its reconnect attempts gives one last Frame with ``image=None``
        and ``error`` saying so, then None.

        Args:
            timeout: seconds to wait for a frame. None: 5 s for a camera or file; for a stream,
                as long as its reader can take to read or give up (a read timeout plus every
                reconnect attempt of its policy, about 146 s with the defaults).

        Raises:
            ValueError: no frame arrived within ``timeout`` seconds, or none could be read at all.
        """
        if timeout is None:
            timeout = self._patience if self.stream else 5.0
        try:
            return self._buffer.get(timeout)
        except TimeoutError:
            hint = (
                "check that the stream is live and the network is up"
                if self.stream
                else "check the camera is not in use by another program, or pass --source path/to/video.mp4"
            )
            raise ValueError(f"{self.name}: no frame arrived within {timeout:g} s; {hint}.") from None

    def close(self) -> None:
        """Stop the reader thread and release the capture (waits up to 2 s for the thread; a stream
        still opening finishes that on its own, bounded by its timeout, and is then released)."""
        self._stop.set()
        self._buffer.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        self.close()


@dataclass
class LoopStats:
    """What :func:`run_loop` did: ``frames`` processed in ``seconds`` of wall time (``fps`` =
    frames / seconds), and ``dropped`` frames the reader skipped as stale."""

    frames: int
    seconds: float
    fps: float
    dropped: int


def draw_fps(image_rgb: np.ndarray, fps: float) -> np.ndarray:
    """A copy of (H, W, 3) uint8 RGB ``image_rgb`` with ``FPS 12.3`` top-left (white on a dark box)."""
    return draw_text_lines(image_rgb, [f"FPS {fps:.1f}"])


def run_loop(
    source: str | int | Path,
    process: Callable[[np.ndarray], np.ndarray],
    *,
    show: bool = True,
    output: str | Path | None = None,
    overwrite: bool = False,
    max_frames: int | None = None,
    window_name: str = "cvapps",
    realtime: bool | None = None,
    reconnect: ReconnectPolicy | None = None,
) -> LoopStats:
    """Read frames, run ``process`` on each, overlay a smoothed FPS, show and/or record them.

    Args:
        source: camera index (int or digit string such as "0"), a video file path or a network
            stream URL (``rtsp://...``, ``http://...``, ``.m3u8``; read like a camera, with the
            timeout and reconnect policy of :func:`~cvapps.core.sources.stream_frames`).
        process: callable taking a (H, W, 3) uint8 RGB frame and returning the annotated
            (H', W', 3) uint8 RGB frame (any size; one size throughout when recording).
        show: display in a window (q or Esc quits, as does closing the window); False is the
            headless mode (``--no-show``) for machines without a display.
        output: video file (.mp4, .avi, ...) for the annotated frames, written atomically at
            the source's FPS; removed if the loop fails. None records nothing.
        overwrite: replace an existing ``output`` instead of refusing.
        max_frames: stop after this many frames (None: until the stream ends or the user quits).
        window_name: title of the display window.
        realtime: see :class:`LatestFrameReader` (None: drop stale frames for a camera or a stream).
        reconnect: how a network stream is reopened when its frames stop (None: the default
            :class:`~cvapps.core.sources.ReconnectPolicy`); ignored for cameras and files.

    Returns:
        :class:`LoopStats`. Ctrl+C stops the loop like q does: the recording is kept and the
        stats are returned.

    Raises:
        ValueError: a network stream was lost after its reconnect attempts (the frames recorded
            until then are kept in ``output``); the source cannot be opened, ``output`` exists (without ``overwrite``) or
            has no video suffix, ``show=True`` without a display, ``max_frames`` is not a
            positive int, ``process`` returned something other than (H, W, 3) uint8, or (when
            recording) a frame whose size differs from the first one.
    """
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames={max_frames!r}; expected a positive int or None (no limit).")
    if show:
        _check_display()
    target = capture_target(source)
    sink = VideoSink(output, overwrite=overwrite) if output is not None else None  # refuses before any work
    frames, dropped, keep, window, watch_close, lost = 0, 0, False, False, False, None
    start = time.perf_counter()
    try:
        with LatestFrameReader(target, realtime, reconnect) as reader:
            if sink is not None:
                sink.fps = reader.fps
            start = last = time.perf_counter()
            period = None  # exponential moving average of seconds per frame
            try:
                while max_frames is None or frames < max_frames:
                    frame = reader.read()
                    if frame is None:
                        break
                    if frame.error is not None:  # a stream lost for good: keep what was recorded, then say so
                        lost = frame.error
                        break
                    annotated = _check_processed(process(frame.image), frame)
                    now = time.perf_counter()
                    weight = max(0.1, 1.0 / (frames + 1))  # plain mean over the first 10 frames
                    period = now - last if period is None else (1 - weight) * period + weight * (now - last)
                    last = now
                    annotated = draw_fps(annotated, 1.0 / period if period > 0 else 0.0)
                    if sink is not None:
                        sink.write(annotated)
                    frames += 1
                    if show:
                        quit_key, visible = _show(window_name, annotated)
                        if not window:  # a GUI backend that cannot report visibility says < 1 from the start
                            window, watch_close = True, visible >= 1
                        if quit_key or (watch_close and visible < 1):
                            break
            except KeyboardInterrupt:
                pass  # Ctrl+C is the headless way to stop a camera: keep what was recorded
            dropped = reader.dropped
        keep = True
    finally:
        seconds = time.perf_counter() - start
        if sink is not None:
            sink.close(keep=keep)
        if window:
            _close_window(window_name)
    if lost is not None:
        raise ValueError(lost)
    return LoopStats(frames, seconds, frames / seconds if seconds > 0 else 0.0, dropped)


def _check_display():
    # OpenCV's Qt build aborts the whole process (no exception) when there is no display.
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ValueError(
            "show=True needs a display but neither DISPLAY nor WAYLAND_DISPLAY is set; "
            "pass --no-show (show=False) to run headless, e.g. with --output annotated.mp4."
        )


def _check_processed(image, frame) -> np.ndarray:
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        got = f"shape {image.shape}, dtype {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(
            f"{frame.source} frame {frame.index}: process returned {got}; expected an (H, W, 3) uint8 RGB array."
        )
    return image


def _show(window_name, image_rgb) -> tuple[bool, float]:
    """Display one frame; (q or Esc was pressed, the window's visibility: < 1 once the user closed it)."""
    import cv2

    try:
        cv2.imshow(window_name, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        visible = cv2.getWindowProperty(window_name, cv2.WND_PROP_VISIBLE)
    except cv2.error as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        raise ValueError(f"could not show a window ({message}); pass --no-show (show=False) to run headless.") from None
    return key in QUIT_KEYS, visible


def _close_window(window_name):
    import cv2

    try:
        cv2.destroyWindow(window_name)
        cv2.waitKey(1)  # let the GUI event loop actually close it
    except cv2.error:
        pass
