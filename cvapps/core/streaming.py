"""Results frame by frame: the generator behind ``detect|classify|segment|stylize(source, stream=True)``.

    >>> import cvapps
    >>> for frame, found in cvapps.detect("clip.mp4", stream=True):       # doctest: +SKIP
    ...     print(frame.index, len(found))                                 # one video frame at a time
    >>> for frame, found in cvapps.detect(0, stream=True, track=True):    # doctest: +SKIP
    ...     found.track_id                                                 # a camera, tracked

A stream holds a few decoded frames at most (``prefetch``), never the whole video, so an hour of
video or an endless camera costs the memory of one frame and its result. A frame that could not be
decoded (a corrupt file in a folder) comes as ``FrameResult(frame, None)`` with ``frame.error`` set,
and the stream goes on; a source that does not exist or cannot be opened raises ``ValueError`` at
the call, before the first frame.

A camera or a network stream is read like the webcam loop reads it (:class:`cvapps.core.webcam.LatestFrameReader`):
only the newest frame waits, so a slow consumer sees fresh frames instead of a growing lag (the
skipped ones show as gaps in ``frame.index``). Files, folders and globs deliver every frame in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cvapps.core.sources import Frame, Source, open_source, video_fps

DEFAULT_PREFETCH = 4  # decoded frames that may wait ahead of the consumer


@dataclass(frozen=True)
class FrameResult:
    """One frame of a stream and the app's result for it (``for frame, result in ...`` unpacks it).

    Attributes:
        frame: the :class:`~cvapps.core.sources.Frame` (``image`` (H, W, 3) uint8 RGB, ``source``,
            ``index`` in the video, ``error``).
        result: what the app returns for one image (``Detections``, ``Classification``, ...);
            None when the frame could not be decoded (``frame.error`` says why).
        milliseconds: the time the app took on this frame (decoding not included).
    """

    frame: Frame
    result: Any
    milliseconds: float = 0.0

    def __iter__(self) -> Iterator[Any]:
        """``frame, result = item``: the two things a loop wants."""
        return iter((self.frame, self.result))


class FrameStream:
    """The frames of one source, opened now (errors at once), iterated once, closed at the end.

    Args:
        source: an image, folder, glob, video file, camera index (int or "0") or stream URL
            (anything :func:`cvapps.core.sources.open_source` takes), or an opened ``Source``.
        realtime: keep only the newest frame (drop stale ones) as the webcam loop does; None: for
            cameras and network streams only.
        prefetch: frames of a file source decoded ahead of the consumer.

    Attributes:
        source: the resolved :class:`~cvapps.core.sources.Source`.
        fps: the video's or camera's frame rate (None for still images, or when it is unknown).

    Raises:
        ValueError: the source does not exist, holds nothing, or cannot be opened.
    """

    def __init__(self, source: Any, realtime: bool | None = None, prefetch: int = DEFAULT_PREFETCH) -> None:
        self.source: Source = open_source(source)
        self.fps: float | None = None
        self._reader = None
        live = self.source.kind in ("camera", "stream")
        if (live if realtime is None else bool(realtime)) and self.source.kind != "images":
            from cvapps.core.webcam import LatestFrameReader

            self._reader = LatestFrameReader(self.source.items[0], realtime=True)
            self.fps = self._reader.fps
            self._frames: Iterator[Frame] = self._read(self._reader)
        else:
            if self.source.kind == "video":
                self.fps = video_fps(self.source.items[0])
            self._frames = self.source.frames(prefetch=prefetch)

    @staticmethod
    def _read(reader) -> Iterator[Frame]:
        try:
            while True:
                frame = reader.read()
                if frame is None:
                    return
                yield frame
        finally:
            reader.close()

    def __iter__(self) -> Iterator[Frame]:
        return self._frames

    def __next__(self) -> Frame:
        return next(self._frames)

    def close(self) -> None:
        """Stop decoding and release the video, camera or stream."""
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def stream_results(frames: FrameStream, predict: Callable[[Frame], Any]) -> Iterator[FrameResult]:
    """``FrameResult(frame, predict(frame))`` for each frame of ``frames``, in order; a frame that could
    not be decoded gives ``FrameResult(frame, None)``. Closes ``frames`` when done or closed early.

    >>> import numpy as np, tempfile, os
    >>> from PIL import Image
    >>> folder = tempfile.mkdtemp()
    >>> Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(os.path.join(folder, "a.png"))
    >>> [(r.frame.index, r.result) for r in stream_results(FrameStream(folder), lambda f: f.image.shape)]
    [(0, (4, 6, 3))]
    """
    try:
        for frame in frames:
            if frame.error:
                yield FrameResult(frame, None)
                continue
            started = time.perf_counter()
            result = predict(frame)
            yield FrameResult(frame, result, (time.perf_counter() - started) * 1000)
    finally:
        frames.close()
