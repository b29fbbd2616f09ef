"""Sources: one iterator of RGB frames over an image, a folder, a glob, a video, a webcam or a network stream.

    >>> from cvapps.core.sources import iter_frames
    >>> for frame in iter_frames("photos/"):          # doctest: +SKIP
    ...     if frame.error:                            # a corrupt file: reported, not raised
    ...         print(frame.error); continue
    ...     frame.image.shape, frame.source, frame.index  # (H, W, 3) uint8 RGB, name, 0

Images are read with Pillow, EXIF orientation applied; grayscale, RGBA, palette and 16-bit
images become RGB uint8. A file that cannot be read yields a :class:`Frame` with ``image=None``
and ``error`` set, so one bad file never ends a batch. Folders are walked recursively and sorted.

Two process-wide read options, seen by every thread:

- truncated files (a JPEG missing its last bytes) are refused by default, with a message that
  names the file; ``cvapps --allow-truncated``, ``CVAPPS_ALLOW_TRUNCATED=1`` or
  :func:`set_allow_truncated` decodes what is there (:func:`truncated_scope`).
- an image of more than 50 megapixels is refused with a message naming it and the cap, before
  it is decoded (a 140 KB PNG can hold 144 megapixels: 430 MB as RGB); ``CVAPPS_MAX_PIXELS=N``
  or :func:`set_max_pixels` moves the cap, ``read_image(path, max_pixels=N)`` sets it for one
  read. ``read_image(path, reduce_to=S)`` decodes a large JPEG at 1/2, 1/4 or 1/8 scale when
  the caller shrinks it to S anyway.

Network streams (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``tcp://`` or a
name ending in ``.m3u8``) are read through OpenCV's FFmpeg backend. Opening and each read wait at
most ``CVAPPS_STREAM_TIMEOUT`` seconds (default 10); a stream whose frames stop is reopened as its
:class:`ReconnectPolicy` says, and frames, messages and records name it by :func:`display_name`
(its password masked).
"""

from __future__ import annotations

import glob as globlib
import math
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import cv2
    import PIL.Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
DEFAULT_STREAM_TIMEOUT = 10.0  # seconds; CVAPPS_STREAM_TIMEOUT overrides it


@dataclass(frozen=True)
class Frame:
    """One image or video frame.

    Attributes:
        image: (H, W, 3) uint8 RGB, or None when the frame could not be read.
        source: the file path, ``"camera:N"`` or the stream URL with its password masked
            (:func:`display_name`) it came from.
        index: frame number within a video, camera or network stream (counting on across
            reconnects); 0 for still images.
        error: one-line reason the frame could not be read, else None.
    """

    image: np.ndarray | None
    source: str
    index: int = 0
    error: str | None = None


# --- process-wide read options -----------------------------------------------------------------
# Plain module globals, not thread-locals or context variables, so the worker threads that decode
# ahead (_image_frames, the loaders' thread pools, PyDataset workers) see what the main thread set.

DEFAULT_MAX_PIXELS = 50_000_000
_UNSET = object()
_allow_truncated: bool | None = None  # None: follow CVAPPS_ALLOW_TRUNCATED
_max_pixels: object = _UNSET  # _UNSET: follow CVAPPS_MAX_PIXELS, else DEFAULT_MAX_PIXELS
_scope_lock = threading.Lock()
_scope_depth = 0
_scope_saved = False


def set_allow_truncated(allow: bool | None) -> None:
    """Decode images whose file is cut short (the part that is there; the rest is grey) instead
    of refusing them, in every read of this process (``cvapps --allow-truncated``).

    ``None`` goes back to the environment: on when ``CVAPPS_ALLOW_TRUNCATED`` is ``1``/``true``/``yes``.
    """
    global _allow_truncated
    if allow is not None and not isinstance(allow, bool):
        raise TypeError(f"set_allow_truncated expects True, False or None, received {allow!r}.")
    _allow_truncated = allow


def get_allow_truncated() -> bool:
    """Whether truncated images are decoded (see :func:`set_allow_truncated`); default False."""
    if _allow_truncated is not None:
        return _allow_truncated
    return os.environ.get("CVAPPS_ALLOW_TRUNCATED", "").strip().lower() in ("1", "true", "yes", "on")


def set_max_pixels(pixels: int | None) -> None:
    """The largest image, in pixels (width x height decoded), that reads accept in this process.

    ``0`` removes the cap (Pillow's own decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``,
    still applies); ``None`` goes back to ``CVAPPS_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS` (50 MP).
    """
    global _max_pixels
    if pixels is None:
        _max_pixels = _UNSET
        return
    if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or pixels < 0:
        raise ValueError(f"max pixels must be a whole number >= 0 (0: no cap), received {pixels!r}.")
    _max_pixels = int(pixels)


def get_max_pixels() -> int | None:
    """The process-wide pixel cap per image (see :func:`set_max_pixels`); None when there is none.

    Raises:
        ValueError: ``CVAPPS_MAX_PIXELS`` is set but not a whole number.
    """
    if _max_pixels is _UNSET:
        text = os.environ.get("CVAPPS_MAX_PIXELS", "").strip()
        if not text:
            return DEFAULT_MAX_PIXELS
        try:
            value = int(float(text)) if re.fullmatch(r"\d+(\.\d*)?([eE]\d+)?", text) else -1
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(
                f"CVAPPS_MAX_PIXELS={text!r}: expected a whole number of pixels such as 100000000 (0: no cap)."
            )
        return value or None
    return _max_pixels or None


@contextmanager
def truncated_scope() -> Iterator[None]:
    """Inside it, Pillow decodes truncated files when :func:`get_allow_truncated` says so.

    Pillow has one switch for the whole process (``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``); it is
    turned on only while at least one of our reads is inside this scope (counted across threads)
    and put back as it was after the last one, so it does not stay on for other code.
    """
    global _scope_depth, _scope_saved
    if not get_allow_truncated():
        yield
        return
    from PIL import ImageFile

    with _scope_lock:
        if _scope_depth == 0:
            _scope_saved = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = True
        _scope_depth += 1
    try:
        yield
    finally:
        with _scope_lock:
            _scope_depth -= 1
            if _scope_depth == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _scope_saved


def _cap(max_pixels):
    return get_max_pixels() if max_pixels is None else (int(max_pixels) or None)


class _Refused(ValueError):
    """A refusal of ours (message already names the file), not one of Pillow's errors."""


def _check_pixels(path, width, height, cap):
    if cap is not None and width * height > cap:
        raise _Refused(
            f"{path}: {width}x{height} is {width * height / 1e6:.1f} megapixels, over the limit of "
            f"{cap / 1e6:g} megapixels per image; raise it with CVAPPS_MAX_PIXELS={width * height} "
            "(or cvapps.core.sources.set_max_pixels) or shrink the file."
        )


def _read_error(path, error):
    """The one-line ValueError for a Pillow failure on ``path``."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, FileNotFoundError):
        return ValueError(f"{path}: no such file.")
    if isinstance(error, UnidentifiedImageError):
        return ValueError(f"{path}: not an image Pillow can read (expected JPEG, PNG, BMP, ...).")
    if isinstance(error, Image.DecompressionBombError):
        return ValueError(f"{path}: image too large to decode safely ({error}).")
    if "truncated" in str(error).lower():
        return ValueError(
            f"{path}: unreadable image ({error}); pass --allow-truncated to decode what is there "
            "(or CVAPPS_ALLOW_TRUNCATED=1; Python: cvapps.core.sources.set_allow_truncated(True))."
        )
    return ValueError(f"{path}: unreadable image ({error}).")


_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def read_image(
    path: str | Path, max_pixels: int | None = None, *, reduce_to: int | tuple[int, int] | None = None
) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB with EXIF orientation applied.

    Args:
        path: the image file.
        max_pixels: refuse images of more pixels than this (width x height as decoded); None:
            the process-wide cap (:func:`get_max_pixels`, 50 megapixels unless ``CVAPPS_MAX_PIXELS``
            or :func:`set_max_pixels` says otherwise); 0: no cap.
        reduce_to: the size the caller will shrink the image to anyway, ``(width, height)`` or one
            number for a square. A JPEG is then decoded at 1/2, 1/4 or 1/8 scale (``Image.draft``)
            when that still covers this size, so the array may be smaller than the file; the pixel
            cap applies to what is decoded. Other formats are decoded whole.

    A truncated file is refused unless :func:`set_allow_truncated` (``cvapps --allow-truncated``,
    ``CVAPPS_ALLOW_TRUNCATED=1``) is on; then what is there is decoded.

    Raises:
        ValueError: the file is missing, empty, truncated, too large or not an image; the message names it.
    """
    from PIL import Image, ImageOps

    path = str(path)
    cap = _cap(max_pixels)
    try:
        with truncated_scope(), Image.open(path) as image:
            if reduce_to is not None and image.format == "JPEG":
                want = (reduce_to, reduce_to) if isinstance(reduce_to, (int, np.integer)) else tuple(reduce_to)
                if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # stored sideways: the draft size too
                    want = want[::-1]
                image.draft(None, (max(1, int(want[0])), max(1, int(want[1]))))
            _check_pixels(path, image.size[0], image.size[1], cap)
            image = ImageOps.exif_transpose(image)
            return to_rgb_uint8(image)
    except _Refused:
        raise
    except (Image.DecompressionBombError, *_PILLOW_ERRORS) as error:
        raise _read_error(path, error) from None


def check_image(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image file, EXIF orientation applied, after the cheap checks that
    :func:`read_image` will take it: the header opens, the size is within the pixel cap, and a JPEG
    or PNG is not cut short. Loaders call it for every file up front, so a bad file is reported
    and left out once instead of failing later in a batch.

    Cost: the header and the last bytes of the file. Only a JPEG or PNG whose end marker is
    missing is decoded (a JPEG at 1/8 scale) to tell truncation from trailing bytes; other formats
    are checked by header only. Nothing is decoded when truncated images are allowed.

    Raises:
        ValueError: the same one-line messages as :func:`read_image`.
    """
    from PIL import Image

    path = str(path)
    cap = _cap(max_pixels)
    try:
        with truncated_scope(), Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
            _check_pixels(path, width, height, cap)
            if not get_allow_truncated() and image.format in _END_MARKERS and not _ends_well(path, image.format):
                if image.format == "JPEG":
                    image.draft(None, (max(1, width // 8), max(1, height // 8)))
                image.load()
    except _Refused:
        raise
    except (Image.DecompressionBombError, *_PILLOW_ERRORS) as error:
        raise _read_error(path, error) from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}


def _ends_well(path, format_):
    """True when the file ends with its format's end marker (trailing NULs or newlines allowed)."""
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        file.seek(max(0, file.tell() - 64))
        tail = file.read().rstrip(b"\x00\r\n ")
    return tail.endswith(_END_MARKERS[format_])


def to_rgb_uint8(image: PIL.Image.Image) -> np.ndarray:
    """A Pillow image in any mode (L, LA, P, RGBA, I;16, I, F, CMYK...) -> (H, W, 3) uint8 RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        # 16-bit and float images: scale the full range of the type to [0, 255].
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        if image.mode == "F":
            top = max(float(array.max()), 1e-12)
        gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels over white, the way viewers show them.
        rgba = image.convert("RGBA")
        from PIL import Image

        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder``, recursively, sorted by path."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


# --- network streams ---------------------------------------------------------------------------

_SECRET_PARAMETERS = ("password", "passwd", "pass", "pwd", "secret", "token", "key", "auth", "signature", "sig")
_SECRET_QUERY = re.compile(r"([?&;](?:" + "|".join(_SECRET_PARAMETERS) + r")=)[^&;#]*", re.IGNORECASE)


def is_stream_url(source: str | int | Path) -> bool:
    """Whether ``source`` names a network stream: a string starting with one of
    :data:`STREAM_SCHEMES` (``rtsp://``, ``http://``, ...) or ending in ``.m3u8`` (an HLS
    playlist), case-insensitive.

    >>> is_stream_url("RTSP://cam.local/live"), is_stream_url("clips/live.M3U8"), is_stream_url("clip.mp4")
    (True, True, False)
    """
    if isinstance(source, int):
        return False
    text = str(source).lower()
    return text.startswith(STREAM_SCHEMES) or text.endswith(".m3u8")


def display_name(url: str) -> str:
    """``url`` as cvapps shows it in frames, messages and records: the password of its user info and
    the values of query parameters named password, passwd, pass, pwd, secret, token, key, auth,
    signature or sig replaced by ``***``. Anything else (a user name, a path) is returned unchanged;
    masking twice changes nothing.

    >>> display_name("rtsp://user:secret@host/x")
    'rtsp://user:***@host/x'
    >>> display_name("http://cam.local/video.mjpg?user=admin&password=hunter2&fps=5")
    'http://cam.local/video.mjpg?user=admin&password=***&fps=5'
    >>> display_name("rtsp://user@host/x"), display_name("clip.mp4")
    ('rtsp://user@host/x', 'clip.mp4')
    """
    text = str(url)
    scheme, separator, rest = text.partition("://")
    if not separator:
        return text
    # The authority ends at the first "/", "?" or "#"; its user info at the last "@" in it (as FFmpeg splits it).
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.split(':', 1)[0]}:***@{host}"
    return f"{scheme}://{authority}{_SECRET_QUERY.sub(lambda m: m.group(1) + '***', tail)}"


def stream_timeout() -> float:
    """Seconds a network stream may take to open, and each read to deliver: ``CVAPPS_STREAM_TIMEOUT``
    when set, else :data:`DEFAULT_STREAM_TIMEOUT` (10).

    Raises:
        ValueError: ``CVAPPS_STREAM_TIMEOUT`` is set but not a number of seconds > 0.
    """
    text = os.environ.get("CVAPPS_STREAM_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_STREAM_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"CVAPPS_STREAM_TIMEOUT={text!r}: expected a number of seconds > 0 such as 10 (the default).")
    return value


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a network stream whose frames stop (a read fails or times out) is reopened.

    The reader releases the stream, waits ``delay`` seconds and reopens it; each failed attempt
    doubles the wait, up to ``max_delay``. An attempt fails when the stream does not open within
    :func:`stream_timeout` or opens without delivering a frame. After ``attempts`` failures in a
    row the stream ends with one error :class:`Frame`. Frame indices count on across reconnects.

    >>> ReconnectPolicy().delays()
    (1.0, 2.0, 4.0, 8.0, 16.0)
    >>> ReconnectPolicy(attempts=3, delay=0.5, max_delay=1.0).delays()
    (0.5, 1.0, 1.0)

    Attributes:
        attempts: reopen attempts in a row before giving up; 0 never reconnects.
        delay: seconds before the first attempt (>= 0).
        max_delay: the longest wait between attempts, in seconds (>= ``delay``).

    Raises (constructor):
        ValueError: a negative or non-integer ``attempts``, or a negative or non-finite delay.
    """

    attempts: int = 5
    delay: float = 1.0
    max_delay: float = 16.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, (int, np.integer)) or self.attempts < 0:
            raise ValueError(f"ReconnectPolicy attempts={self.attempts!r}; expected a whole number >= 0 (0: never).")
        for field, value in (("delay", self.delay), ("max_delay", self.max_delay)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= value < math.inf:
                raise ValueError(f"ReconnectPolicy {field}={value!r}; expected a number of seconds >= 0.")
        if self.max_delay < self.delay:
            raise ValueError(
                f"ReconnectPolicy max_delay={self.max_delay!r} is below delay={self.delay!r}; "
                "expected max_delay >= delay."
            )

    def delays(self) -> tuple[float, ...]:
        """The wait before each attempt, in seconds: ``delay * 2**k`` capped at ``max_delay``."""
        return tuple(float(min(self.delay * 2**k, self.max_delay)) for k in range(int(self.attempts)))


_log_lock = threading.Lock()
_log_depth = 0
_log_saved = 0


@contextmanager
def quiet_opencv_log() -> Iterator[None]:
    """Inside it, OpenCV's own logger (its ``[ WARN:0@...]`` and ``[ERROR:0@...]`` lines) is silent.

    The level is one setting for the whole process (``cv2.utils.logging``); it is lowered while at
    least one caller is inside this scope (counted across threads) and put back after the last.
    FFmpeg's own lines (``[tcp @ 0x...]``) are not OpenCV's logger and still show.
    """
    import cv2

    global _log_depth, _log_saved
    with _log_lock:
        if _log_depth == 0:
            _log_saved = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _log_depth += 1
    try:
        yield
    finally:
        with _log_lock:
            _log_depth -= 1
            if _log_depth == 0:
                cv2.utils.logging.setLogLevel(_log_saved)


def resolve_source(source: str | int | Path) -> tuple[str, list]:
    """Classify ``source`` as ("camera", [index]), ("stream", [url]), ("video", [path]) or
    ("images", [paths]). A stream is what :func:`is_stream_url` says; nothing is opened here.

    Raises:
        ValueError: nothing exists at that path, a folder or glob holds no images, or the
            file type is unknown.
    """
    text = str(source)
    if isinstance(source, int) or text.isdigit():
        return "camera", [int(text)]
    if is_stream_url(text):
        return "stream", [text]
    path = Path(text)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise ValueError(f"{text}: folder holds no images (looked recursively for {', '.join(IMAGE_SUFFIXES)}).")
        return "images", images
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return "video", [path]
        return "images", [path]
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in globlib.glob(text, recursive=True))
        images = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise ValueError(f"{text}: the pattern matches no image files.")
        return "images", images
    raise ValueError(
        f"{text}: no such file or folder. Expected an image, a folder, a glob such as 'photos/*.jpg', "
        "a video file, a camera index such as 0 or a stream URL such as rtsp://host/path."
    )


@dataclass(frozen=True)
class Source:
    """A resolved source: what it is and what it holds, listed once.

    Attributes:
        kind: ``"images"``, ``"video"``, ``"camera"`` or ``"stream"`` (a network stream).
        items: image paths, ``[video path]``, ``[camera index]`` or ``[stream URL]`` (as given,
            password included: show it with :func:`display_name`).
    """

    kind: str
    items: list

    @property
    def is_stream(self) -> bool:
        """True for a sequence of frames (a video, a camera or a network stream), False for images."""
        return self.kind in ("video", "camera", "stream")

    def frames(self, prefetch: int = 64, workers: int = 2, reconnect: ReconnectPolicy | None = None) -> Iterator[Frame]:
        """Frames in order (see :func:`iter_frames`).

        Raises:
            ValueError: a network stream cannot be opened (at this call; a video or camera is
                opened at the first frame).
        """
        if self.kind == "images":
            return _ahead(_image_frames(self.items, workers, prefetch), prefetch)
        if self.kind == "video":
            return _ahead(_video_frames(str(self.items[0]), str(self.items[0])), prefetch)
        if self.kind == "stream":
            url = self.items[0]
            return stream_frames(url, open_video(url, display_name(url)), reconnect)
        return _video_frames(self.items[0], f"camera:{self.items[0]}")

    def count(self) -> int | None:
        """Number of frames, when known cheaply (for progress bars), else None (cameras, streams)."""
        if self.kind == "images":
            return len(self.items)
        if self.kind == "video":
            import cv2

            capture = cv2.VideoCapture(str(self.items[0]))
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            capture.release()
            return count or None
        return None


def open_source(source: str | int | Path | Source) -> Source:
    """Resolve ``source`` once (see :func:`resolve_source`) into a :class:`Source`."""
    if isinstance(source, Source):
        return source
    return Source(*resolve_source(source))


def iter_frames(
    source: str | int | Path | Source,
    prefetch: int = 64,
    workers: int = 2,
    *,
    reconnect: ReconnectPolicy | None = None,
) -> Iterator[Frame]:
    """Yield :class:`Frame` objects from any source, in order, decoding ahead of the consumer.

    Args:
        source: image path, folder, glob pattern, video path, camera index (int or "0") or
            network stream URL (see :func:`is_stream_url`).
        prefetch: how many decoded frames may wait ahead of the consumer (overlaps decoding
            with whatever the consumer does, e.g. inference). Cameras and streams are read when
            the consumer asks, every frame in order (the webcam loop's reader drops stale ones).
        workers: threads decoding image files (Pillow releases the GIL while decoding).
        reconnect: how a network stream is reopened when its frames stop (None: the default
            :class:`ReconnectPolicy`, 5 attempts 1 to 16 s apart). Ignored for other sources.

    A stream that is lost (every reconnect attempt failed) ends with one error :class:`Frame`
    (``image=None``) naming it and the frames read. A stream URL that reports a frame count (a
    file served over HTTP, an HLS VOD playlist) is read to its end like a video file, without
    reconnecting (reopening would start it again from the beginning).

    Raises:
        ValueError: the source does not exist or holds nothing (see :func:`resolve_source`),
            a network stream cannot be opened within :func:`stream_timeout` (at this call), or
            a video or camera cannot be opened (at the first frame).
    """
    return open_source(source).frames(prefetch, workers, reconnect)


def _read_frame(path):
    try:
        return Frame(read_image(path), str(path))
    except ValueError as error:
        return Frame(None, str(path), 0, str(error))


def _image_frames(paths, workers=2, window=64):
    """Frames of ``paths`` in order, decoded by ``workers`` threads at most ``window`` ahead."""
    if workers <= 1:
        yield from map(_read_frame, paths)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        pending = deque()
        for path in paths:
            pending.append(pool.submit(_read_frame, path))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def open_video(target: str | int, name: str) -> cv2.VideoCapture:
    """An opened ``cv2.VideoCapture`` or a ValueError naming what could not be opened.

    A network stream (:func:`is_stream_url`) is opened with OpenCV's FFmpeg backend; opening and
    each later read wait at most :func:`stream_timeout` seconds, and messages name it by
    :func:`display_name` whatever ``name`` says.
    """
    import cv2

    if isinstance(target, str) and is_stream_url(target):
        return _open_stream(target, display_name(name))
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        what = f"camera {target}" if isinstance(target, int) else f"video {name}"
        hint = "check it is connected and not in use" if isinstance(target, int) else "check the file plays"
        raise ValueError(f"{name}: could not open {what}; {hint}.")
    return capture


def _open_stream(url, name):
    import cv2

    timeout = stream_timeout()
    milliseconds = max(1, round(timeout * 1000))
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds, cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds]
    try:
        with quiet_opencv_log():  # its warnings say what the ValueError below says
            capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    except cv2.error as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        raise ValueError(f"{name}: could not open the stream ({reason}).") from None
    if not capture.isOpened():
        capture.release()
        raise ValueError(
            f"{name}: could not open the stream within {timeout:g} s; check the address and that the server "
            "is up (CVAPPS_STREAM_TIMEOUT=seconds waits longer; this OpenCV reads rtsp/http/hls through FFmpeg)."
        )
    return capture


def stream_frames(
    url: str,
    capture: cv2.VideoCapture | None = None,
    reconnect: ReconnectPolicy | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Frame]:
    """Frames of the network stream ``url`` ((H, W, 3) uint8 RGB, ``source`` = :func:`display_name`
    of it, ``index`` counting on across reconnects), read when the consumer asks.

    Args:
        url: the stream URL (password included).
        capture: the stream already opened by :func:`open_video`, or None to open it at the first
            frame (a ValueError then).
        reconnect: the :class:`ReconnectPolicy` (None: the default one).
        stop: an event that ends the stream when set (checked between reads and during the
            waits between reconnect attempts, so a reader thread can be stopped at once).

    Ends with one error :class:`Frame` (``image=None``) when the stream opened but delivered no
    frame, or when it was lost and ``reconnect.attempts`` reopen attempts in a row failed. A URL
    that reports a frame count (a file over HTTP) ends at its end, without reconnecting. The
    capture (and every reopened one) is released when the generator ends or is closed.
    """
    import cv2

    policy = ReconnectPolicy() if reconnect is None else reconnect
    name = display_name(url)
    if capture is None:
        capture = open_video(url, name)
    total = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    finite = math.isfinite(total) and total > 0  # live streams report 0 or a negative count
    index = 0
    try:
        while stop is None or not stop.is_set():
            ok, bgr = capture.read()
            if not ok:
                if index == 0:
                    yield Frame(
                        None,
                        name,
                        0,
                        f"{name}: the stream opened but sent no frame within {stream_timeout():g} s; "
                        "check that it is live (CVAPPS_STREAM_TIMEOUT=seconds waits longer).",
                    )
                    return
                if finite:
                    return
                capture.release()
                capture, bgr = _reconnect(url, name, policy, stop)
                if capture is None:
                    if stop is not None and stop.is_set():
                        return
                    yield Frame(None, name, index, _lost_message(name, index, policy))
                    return
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), name, index)
            index += 1
    finally:
        if capture is not None:
            capture.release()


def _reconnect(url, name, policy, stop):
    """``(capture, first BGR frame)`` from reopening ``url`` as ``policy`` says; ``(None, None)``
    when every attempt failed or ``stop`` was set."""
    for delay in policy.delays():
        if stop is not None:
            if stop.wait(delay):
                return None, None
        elif delay > 0:
            time.sleep(delay)
        try:
            capture = open_video(url, name)
        except ValueError:
            continue
        ok, bgr = capture.read()
        if ok:
            return capture, bgr
        capture.release()
    return None, None


def _lost_message(name, index, policy):
    if policy.attempts == 0:
        return f"{name}: stream lost after {index} frames; reconnecting is off (ReconnectPolicy(attempts=0))."
    attempts = f"{policy.attempts} reconnect attempt{'s' if policy.attempts != 1 else ''}"
    return (
        f"{name}: stream lost after {index} frames; {attempts} failed "
        f"(waits {policy.delays()[0]:g} to {policy.delays()[-1]:g} s, up to {stream_timeout():g} s each to open); "
        "check that the server is up."
    )


def _video_frames(target, name):
    import cv2

    capture = open_video(target, name)
    index = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), name, index)
            index += 1
    finally:
        capture.release()
    if index == 0:
        yield Frame(None, name, 0, f"{name}: no frames could be decoded.")


_DONE = object()


def _ahead(iterator, size):
    """Run ``iterator`` on a daemon thread, up to ``size`` items ahead of the consumer."""
    if size <= 0:
        yield from iterator
        return
    items: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item):
        """Queue ``item`` unless the consumer has stopped; True when it was queued."""
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # re-raised in the consumer's thread
            put(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def video_fps(video: str | Path | cv2.VideoCapture) -> float | None:
    """The frame rate a video file (or an opened capture) reports, or None when it reports none usable
    (0, NaN, or above 1000, as some cameras and streams do)."""
    import math

    import cv2

    capture = video if isinstance(video, cv2.VideoCapture) else cv2.VideoCapture(str(video))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        if capture is not video:
            capture.release()
    return float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else None


def is_image_path(path: str | Path) -> bool:
    return os.path.splitext(str(path))[1].lower() in IMAGE_SUFFIXES


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) to (size, size, 3): area averaging when shrinking, bilinear when growing."""
    import cv2

    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrinking = image.shape[0] * image.shape[1] > size * size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
