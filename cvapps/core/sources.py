"""Sources: one iterator of RGB frames over an image, a folder, a glob, a video or a webcam.

    >>> from cvapps.core.sources import iter_frames
    >>> for frame in iter_frames("photos/"):          # doctest: +SKIP
    ...     if frame.error:                            # a corrupt file: reported, not raised
    ...         print(frame.error); continue
    ...     frame.image.shape, frame.source, frame.index  # (H, W, 3) uint8 RGB, name, 0

Images are read with Pillow, EXIF orientation applied; grayscale, RGBA, palette and 16-bit
images become RGB uint8. A file that cannot be read yields a :class:`Frame` with ``image=None``
and ``error`` set, so one bad file never ends a batch. Folders are walked recursively and sorted.
"""

from __future__ import annotations

import glob as globlib
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import cv2
    import PIL.Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True)
class Frame:
    """One image or video frame.

    Attributes:
        image: (H, W, 3) uint8 RGB, or None when the frame could not be read.
        source: the file path (or ``"camera:N"``) it came from.
        index: frame number within a video or camera stream; 0 for still images.
        error: one-line reason the frame could not be read, else None.
    """

    image: np.ndarray | None
    source: str
    index: int = 0
    error: str | None = None


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB with EXIF orientation applied.

    Raises:
        ValueError: the file is missing, empty, truncated or not an image; the message names it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = str(path)
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return to_rgb_uint8(image)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file.") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image Pillow can read (expected JPEG, PNG, BMP, ...).") from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"{path}: image too large to decode safely ({error}).") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path}: unreadable image ({error}).") from None


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


def resolve_source(source: str | int | Path) -> tuple[str, list]:
    """Classify ``source`` as ("camera", [index]), ("video", [path]) or ("images", [paths]).

    Raises:
        ValueError: nothing exists at that path, a folder or glob holds no images, or the
            file type is unknown.
    """
    text = str(source)
    if isinstance(source, int) or text.isdigit():
        return "camera", [int(text)]
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
        "a video file or a camera index such as 0."
    )


@dataclass(frozen=True)
class Source:
    """A resolved source: what it is and what it holds, listed once.

    Attributes:
        kind: ``"images"``, ``"video"`` or ``"camera"``.
        items: image paths, ``[video path]`` or ``[camera index]``.
    """

    kind: str
    items: list

    @property
    def is_stream(self) -> bool:
        return self.kind in ("video", "camera")

    def frames(self, prefetch: int = 64, workers: int = 2) -> Iterator[Frame]:
        """Frames in order (see :func:`iter_frames`)."""
        if self.kind == "images":
            return _ahead(_image_frames(self.items, workers, prefetch), prefetch)
        if self.kind == "video":
            return _ahead(_video_frames(str(self.items[0]), str(self.items[0])), prefetch)
        return _video_frames(self.items[0], f"camera:{self.items[0]}")

    def count(self) -> int | None:
        """Number of frames, when known cheaply (for progress bars), else None."""
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


def iter_frames(source: str | int | Path | Source, prefetch: int = 64, workers: int = 2) -> Iterator[Frame]:
    """Yield :class:`Frame` objects from any source, in order, decoding ahead of the consumer.

    Args:
        source: image path, folder, glob pattern, video path, or camera index (int or "0").
        prefetch: how many decoded frames may wait ahead of the consumer (overlaps decoding
            with whatever the consumer does, e.g. inference).
        workers: threads decoding image files (Pillow releases the GIL while decoding).

    Raises:
        ValueError: the source does not exist or holds nothing (see :func:`resolve_source`),
            or a video or camera cannot be opened.
    """
    return open_source(source).frames(prefetch, workers)


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
    """An opened ``cv2.VideoCapture`` or a ValueError naming what could not be opened."""
    import cv2

    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        what = f"camera {target}" if isinstance(target, int) else f"video {name}"
        hint = "check it is connected and not in use" if isinstance(target, int) else "check the file plays"
        raise ValueError(f"{name}: could not open {what}; {hint}.")
    return capture


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


def is_image_path(path: str | Path) -> bool:
    return os.path.splitext(str(path))[1].lower() in IMAGE_SUFFIXES


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) to (size, size, 3): area averaging when shrinking, bilinear when growing."""
    import cv2

    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrinking = image.shape[0] * image.shape[1] > size * size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
