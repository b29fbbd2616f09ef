"""Sinks: where results go. Annotated images, videos and JSON Lines records.

    >>> from cvapps.core.sinks import ImageSink, JsonLinesSink
    >>> images = ImageSink("out/", multiple=True)              # doctest: +SKIP
    >>> images.write(annotated_rgb, source="photos/cat.jpg")   # -> out/cat.jpg  # doctest: +SKIP
    >>> with JsonLinesSink("-") as records:                    # doctest: +SKIP
    ...     records.write({"source": "photos/cat.jpg", "results": [...]})

Rules every sink follows:
- output goes exactly where the user said: a file for one input, a folder for several (no
  auto-numbered run folders);
- an existing file is never replaced unless ``overwrite=True`` (checked before any work);
- files are written atomically (a temporary file in the same folder, then a rename), so an
  interrupted run leaves no half-written file behind.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cvapps.core.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES


def atomic_path(path: str | Path) -> Path:
    """A temporary path beside ``path`` (same folder, same suffix) for an atomic write."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; name a file to write (e.g. {path / 'out'}{path.suffix or '.json'}).")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as error:
        raise ValueError(
            f"cannot write {path}: {error.strerror or error} ({error.filename or path.parent}); "
            "choose a writable place."
        ) from None
    os.close(handle)
    # mkstemp makes the file 0600 and os.replace keeps that; give it the mode open() would (0666 - umask).
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    return Path(temporary)


def write_image(path: str | Path, image: np.ndarray, overwrite: bool = False) -> Path:
    """Write an (H, W, 3) uint8 RGB image (or (H, W, 4) RGBA to a .png) atomically; the format
    follows the suffix.

    Raises:
        ValueError: the file exists and ``overwrite`` is False, or the suffix is not an image type.
    """
    import cv2

    path = Path(path)
    image = np.asarray(image)
    rgba = image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8 and path.suffix.lower() == ".png"
    if not rgba and (image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8):
        raise ValueError(
            f"{path}: expected an (H, W, 3) uint8 RGB image (or (H, W, 4) RGBA for a .png), "
            f"received {image.dtype} of shape {image.shape}."
        )
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: output image needs an image suffix ({', '.join(IMAGE_SUFFIXES[:5])}, ...).")
    refuse_existing(path, overwrite)
    temporary = atomic_path(path)
    try:
        if not cv2.imwrite(
            str(temporary),
            cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGBA2BGRA if rgba else cv2.COLOR_RGB2BGR),
        ):
            raise ValueError(f"{path}: could not encode the image as {path.suffix}.")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def refuse_existing(path: str | Path, overwrite: bool) -> None:
    """Raise ValueError when the file ``path`` exists (unless ``overwrite``) or is a folder."""
    if Path(path).is_dir():
        raise ValueError(f"{path} is a folder; name a file to write.")
    if Path(path).exists() and not overwrite:
        raise ValueError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it.")


class ImageSink:
    """Annotated images to one file (``multiple=False``) or into a folder (``multiple=True``).

    In a folder, a still image keeps its file name (``cat.jpg``); video frames become
    ``<video stem>_<frame:06d>.jpg``. Two inputs with the same name in one folder is an error,
    not a silent overwrite.
    """

    def __init__(self, output: str | Path, multiple: bool, overwrite: bool = False):
        self.output = Path(output)
        self.multiple = multiple
        self.overwrite = overwrite
        self.written = set()
        if multiple:
            if self.output.suffix.lower() in IMAGE_SUFFIXES:
                raise ValueError(f"{output}: several inputs need an output folder, not an image file name.")
            if self.output.exists() and not self.output.is_dir():
                raise ValueError(f"{output}: exists and is not a folder.")
        else:
            if self.output.is_dir():
                raise ValueError(f"{output}: is a folder; for one input give an image file name such as out.jpg.")
            refuse_existing(self.output, overwrite)

    def path_for(self, source: str | Path, index: int = 0, video: bool = False) -> Path:
        if not self.multiple:
            return self.output
        stem = Path(source).stem or "frame"
        name = f"{stem}_{index:06d}.jpg" if video else Path(source).name
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            name = f"{Path(name).stem}.png"
        return self.output / name

    def write(self, image: np.ndarray, source: str | Path, index: int = 0, video: bool = False) -> Path:
        path = self.path_for(source, index, video)
        if path in self.written:
            raise ValueError(f"{path}: two inputs map to the same output file; use separate output folders.")
        write_image(path, image, self.overwrite)
        self.written.add(path)
        return path


class VideoSink:
    """Frames to a video file, written to a temporary file and renamed on :meth:`close`."""

    def __init__(self, path: str | Path, fps: float | None = 25.0, overwrite: bool = False):
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"{path}: a video output needs a video suffix such as .mp4 or .avi.")
        refuse_existing(self.path, overwrite)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.temporary = None
        self.writer = None
        self.frames = 0
        self.size = None

    def write(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; every frame must have the first frame's size."""
        import cv2

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: got a frame of shape {image.shape}, dtype {image.dtype}; expected (H, W, 3) uint8 RGB."
            )
        height, width = image.shape[:2]
        if self.size is not None and self.size != (width, height):
            # OpenCV would silently drop such a frame.
            raise ValueError(
                f"{self.path}: frame {self.frames} is {width}x{height} but the video is {self.size[0]}x{self.size[1]}; "
                "resize every frame to one size before writing."
            )
        if self.writer is None:
            self.temporary = atomic_path(self.path)
            fourcc = cv2.VideoWriter_fourcc(
                *("mp4v" if self.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG")
            )
            self.size = (width, height)
            self.writer = cv2.VideoWriter(str(self.temporary), fourcc, self.fps, (width, height))
            if not self.writer.isOpened():
                raise ValueError(f"{self.path}: OpenCV cannot write this video format here.")
        self.writer.write(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file; ``keep=False`` (an error happened) removes it instead."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            if keep and self.frames:
                os.replace(self.temporary, self.path)
            elif self.temporary.exists():
                self.temporary.unlink()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        self.close(keep=kind is None)


class JsonLinesSink:
    """One JSON object per line, to stdout (``"-"``) or to a file written atomically on close."""

    def __init__(self, target: str | Path, overwrite: bool = False):
        self.target = target
        if target == "-":
            self.stream, self.temporary = sys.stdout, None
        else:
            refuse_existing(target, overwrite)
            self.temporary = atomic_path(target)
            self.stream = open(self.temporary, "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self, keep: bool = True) -> None:
        if self.temporary is None:
            return
        self.stream.close()
        if keep:
            os.replace(self.temporary, self.target)
        elif self.temporary.exists():
            self.temporary.unlink()
        self.temporary = None

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        # A run that processed its batch keeps its records, even if some inputs failed.
        self.close(keep=kind is None or issubclass(kind, (SystemExit, KeyboardInterrupt)))


def write_json(path: str | Path, obj: Any, overwrite: bool = False) -> Path:
    """Write one JSON object to ``path`` atomically; an existing file is refused unless ``overwrite``
    (the rule of every cvapps output)."""
    path = Path(path)
    refuse_existing(path, overwrite)
    temporary = atomic_path(path)
    try:
        temporary.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path
