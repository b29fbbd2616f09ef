"""Sinks: where results go. Annotated images, videos and JSON Lines records.

    >>> from cvapps.core.sinks import ImageSink, JsonLinesSink
    >>> images = ImageSink("out/", multiple=True)              # doctest: +SKIP
    >>> images.plan(["photos/a/cat.jpg", "photos/b/cat.jpg"])  # every destination checked first  # doctest: +SKIP
    >>> images.write(annotated_rgb, source="photos/a/cat.jpg") # -> out/a/cat.jpg  # doctest: +SKIP
    >>> with JsonLinesSink("-") as records:                    # doctest: +SKIP
    ...     records.write({"source": "photos/cat.jpg", "results": [...]})

Rules every sink follows:
- output goes exactly where the user said: a file for one input, a folder for several (no
  auto-numbered run folders);
- an existing file is never replaced unless ``overwrite=True``, and a destination that cannot
  be written (a read-only folder, a parent that is a file, a name too long) is refused: both
  checked before any work;
- files are written atomically (a temporary file in the same folder, then a rename), so an
  interrupted run leaves no half-written file behind; an ``OSError`` while writing (a full disk)
  is a one-line ValueError naming the destination, never the temporary file.

A video's codec follows its suffix (:func:`video_codec`): ``.webm`` is VP8 and ``.mp4`` H.264 when
this OpenCV can encode it (both play in browsers), else MPEG-4 part 2 (browsers do not play it).
"""

from __future__ import annotations

import errno
import glob as globlib
import json
import os
import secrets
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cvapps.core.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, quiet_opencv_log

# Temporary files made by atomic_path and not yet renamed or removed: a signal that lands between
# two bytecodes of a writer can skip its own cleanup, remove_unfinished() then finds them here.
_unfinished: set[Path] = set()


def atomic_path(path: str | Path) -> Path:
    """A new, empty temporary file beside ``path`` (same folder, same suffix, a hidden name, the mode
    ``open()`` gives) for an atomic write; the folder is created if need be.

    The caller renames it onto ``path`` or removes it; until then it is listed for
    :func:`remove_unfinished`.

    Raises:
        ValueError: ``path`` is a folder, or its folder cannot be created or written; the message
            names ``path`` and the reason (never the temporary name).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; name a file to write (e.g. {path / 'out'}{path.suffix or '.json'}).")
    # A short prefix, so that the temporary name is never longer than the name itself allows.
    prefix, suffix = f".{path.stem[:32]}.", path.suffix[:16]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            temporary = path.parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
            _unfinished.add(temporary)  # listed before it exists: no moment when it exists unlisted
            try:
                # 0o666 less the umask, as open() would make it (mkstemp's 0600 would survive the rename).
                os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return temporary
            except FileExistsError:
                _unfinished.discard(temporary)  # someone else's file
            except OSError:
                _unfinished.discard(temporary)  # not made
                raise
            except BaseException:  # a signal, maybe just after the file was made
                _finished(temporary)
                raise
    except OSError as error:
        check_writable(path)  # the clearer words for a parent that is a file, a name too long...
        raise ValueError(f"{path}: cannot write ({_reason(error)}); choose a writable place.") from None
    raise ValueError(f"{path}: cannot write (no free temporary name beside it); remove the files {prefix}*.")


def _finished(temporary: Path | None) -> None:
    """Remove ``temporary`` if it is still there (renamed or not) and forget it."""
    if temporary is not None:
        temporary.unlink(missing_ok=True)
        _unfinished.discard(temporary)


def remove_unfinished() -> list[Path]:
    """Remove the temporary files of this process's atomic writes that were neither renamed into
    place nor removed (a writer interrupted by a signal at the wrong moment); returns them.

    For the end of an interrupted run (the CLI calls it after Ctrl-C or SIGTERM): a write still in
    progress in another thread would lose its temporary file.
    """
    removed = []
    for temporary in list(_unfinished):
        try:
            if temporary.exists():
                temporary.unlink()
                removed.append(temporary)
        except OSError:
            pass
        _unfinished.discard(temporary)
    return removed


def check_writable(path: str | Path, folder: bool = False) -> None:
    """Refuse, before any work, a destination that cannot be written: the file ``path`` (or the
    folder ``path`` when ``folder=True``) must be creatable in its nearest existing folder.

    Checks that no part of the name is longer than the file system allows, that the nearest
    existing ancestor is a folder (not a file) and that it is writable. Nothing is created.

    Raises:
        ValueError: one line naming ``path`` and what is wrong.
    """
    path = Path(path)
    place = path if folder else path.parent
    ancestor = place
    try:
        while not _exists(ancestor) and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        is_folder = ancestor.is_dir()
    except OSError as error:
        raise ValueError(f"{path}: cannot write ({_reason(error)}); choose a writable place.") from None
    if not is_folder:
        raise ValueError(f"{path}: cannot write ({ancestor} is a file, not a folder); choose another place.")
    limit = _name_max(ancestor)
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise ValueError(
                f"{path}: cannot write (File name too long: {part[:24]}... is {len(os.fsencode(part))} bytes, "
                f"at most {limit}); choose a shorter name."
            )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        reason = "Read-only file system" if _read_only(ancestor) else f"Permission denied in {ancestor}"
        raise ValueError(f"{path}: cannot write ({reason}); choose a writable place.")


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; a name too long to look up does not (the caller says why)."""
    try:
        return path.exists()
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            return False
        raise


def _reason(error: OSError) -> str:
    """The OS's words for ``error`` (``e.strerror``), without the file name it carries."""
    return error.strerror or type(error).__name__


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):  # Windows has no pathconf
        return 255


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):
        return False


def write_image(path: str | Path, image: np.ndarray, overwrite: bool = False) -> Path:
    """Write an (H, W, 3) uint8 RGB image (or (H, W, 4) RGBA to a .png) atomically; the format
    follows the suffix. The folder is created if need be.

    Raises:
        ValueError: the file exists and ``overwrite`` is False, the suffix is not an image type,
            or the file cannot be written (e.g. "out/x.jpg: cannot write (No space left on device)").
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
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGBA2BGRA if rgba else cv2.COLOR_RGB2BGR)
    try:
        ok, encoded = cv2.imencode(path.suffix.lower(), bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"{path}: could not encode the image as {path.suffix}.")
    # Encoded here and written by Python, so that a full disk is an OSError with its reason.
    _write_bytes_atomically(path, encoded.tobytes())
    return path


def _write_bytes_atomically(path: Path, data: bytes) -> None:
    temporary = atomic_path(path)
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except OSError as error:
        raise ValueError(f"{path}: cannot write ({_reason(error)}).") from None
    finally:
        _finished(temporary)


def refuse_existing(path: str | Path, overwrite: bool) -> None:
    """Raise ValueError when the file ``path`` exists (unless ``overwrite``) or is a folder, or
    cannot even be looked up (a name too long: the OS's reason)."""
    kind = _kind(path)
    if kind == "folder":
        raise ValueError(f"{path} is a folder; name a file to write.")
    if kind == "file" and not overwrite:
        raise ValueError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it.")


def _kind(path: str | Path) -> str | None:
    """``"folder"``, ``"file"`` or None (nothing there); ValueError when the lookup itself fails."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise ValueError(f"{path}: cannot write ({_reason(error)}); choose another name or place.") from None
    return "folder" if stat.S_ISDIR(mode) else "file"


def common_folder(paths: Sequence[str | Path]) -> Path | None:
    """The deepest folder holding every one of ``paths`` (None for no paths, or a mix of absolute
    and relative ones): ``photos/a/x.jpg`` and ``photos/b/x.jpg`` -> ``photos``."""
    if not paths:
        return None
    try:
        return Path(os.path.commonpath([str(Path(p).parent) for p in paths]))
    except ValueError:
        return None


class ImageSink:
    """Annotated images to one file (``multiple=False``) or into a folder (``multiple=True``).

    In a folder, a still image keeps its path relative to ``root`` (``photos/a/cat.jpg`` with
    ``root="photos"`` -> ``OUT/a/cat.jpg``), or just its file name when it is not under ``root`` or
    there is none (``cat.jpg``); :meth:`plan` sets ``root`` to the deepest folder holding all the
    inputs, so the names of a folder tree are unique and the files of one folder (a plain glob)
    keep their flat names. Video frames become ``<video stem>_<frame:06d>.jpg``. A name that is
    not an image type gets ``.png``. Two inputs mapping to one file is an error, not a silent
    overwrite.

    Raises (constructor):
        ValueError: for one input, ``output`` is a folder, exists (without ``overwrite``) or has
            no image suffix; for several, it is an image file name or an existing file; or the
            destination cannot be written (see :func:`check_writable`).
    """

    def __init__(
        self, output: str | Path, multiple: bool, overwrite: bool = False, root: str | Path | None = None
    ) -> None:
        self.output = Path(output)
        self.multiple = multiple
        self.overwrite = overwrite
        self.root = Path(root) if root is not None else None
        self.written: set[Path] = set()
        if multiple:
            if self.output.suffix.lower() in IMAGE_SUFFIXES:
                raise ValueError(f"{output}: several inputs need an output folder, not an image file name.")
            if _kind(self.output) == "file":
                raise ValueError(f"{output}: exists and is not a folder.")
            check_writable(self.output, folder=True)
        else:
            check_writable(self.output)
            if _kind(self.output) == "folder":
                raise ValueError(f"{output}: is a folder; for one input give an image file name such as out.jpg.")
            if self.output.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(
                    f"{output}: output image needs an image suffix ({', '.join(IMAGE_SUFFIXES[:5])}, ...)."
                )
            refuse_existing(self.output, overwrite)

    def path_for(self, source: str | Path, index: int = 0, video: bool = False) -> Path:
        """Where the annotated ``source`` (frame ``index`` of it when ``video``) is written."""
        if not self.multiple:
            return self.output
        source = Path(source)
        if video:
            name = Path(f"{source.stem or 'frame'}_{index:06d}.jpg")
        else:
            name = Path(source.name)
            if self.root is not None:
                try:
                    relative = source.relative_to(self.root)
                except ValueError:
                    relative = None
                if relative is not None and ".." not in relative.parts and relative.parts:
                    name = relative
        if name.suffix.lower() not in IMAGE_SUFFIXES:
            name = name.with_name(f"{name.stem}.png")
        return self.output / name

    def plan(self, sources: Sequence[str | Path], video: bool = False) -> list[Path]:
        """Fix and check every destination before the first image is written; returns them.

        For still images, sets ``root`` (when None) to :func:`common_folder` of ``sources``, then
        refuses a destination that exists (unless ``overwrite``), one that two sources share, and a
        folder that cannot be written. For a video (``video=True``, ``sources`` = its one path or
        ``"camera:N"``), refuses existing ``<stem>_NNNNNN.jpg`` frames (unless ``overwrite``).

        Raises:
            ValueError: one line naming the first clashing destination (and how many others clash).
        """
        if not self.multiple:
            return [self.output]
        if video:
            stem = Path(str(sources[0])).stem or "frame"
            pattern = globlib.escape(str(self.output / stem)) + "_" + "[0-9]" * 6 + ".jpg"
            existing = sorted(globlib.glob(pattern))
            if existing and not self.overwrite:
                more = f" (and {len(existing) - 1} other frames)" if len(existing) > 1 else ""
                raise ValueError(
                    f"{existing[0]} already exists{more}; pass --overwrite (overwrite=True) to replace them, "
                    "or choose another output folder."
                )
            return []
        if self.root is None:
            self.root = common_folder(sources)
        paths = [self.path_for(source) for source in sources]
        seen: dict[Path, str | Path] = {}
        existing = []
        for source, path in zip(sources, paths):
            if path in seen:
                raise ValueError(
                    f"{path}: both {seen[path]} and {source} would be written here; use separate output folders."
                )
            seen[path] = source
            kind = _kind(path)
            if kind == "folder":
                raise ValueError(f"{path} is a folder; it is where the annotated {source} would go.")
            if kind == "file" and not self.overwrite:
                existing.append(path)
        if existing:
            more = f" (and {len(existing) - 1} other outputs)" if len(existing) > 1 else ""
            raise ValueError(
                f"{existing[0]} already exists{more}; pass --overwrite (overwrite=True) to replace, "
                "or choose another output folder."
            )
        for folder in sorted({path.parent for path in paths}):
            check_writable(folder, folder=True)
        return paths

    def write(self, image: np.ndarray, source: str | Path, index: int = 0, video: bool = False) -> Path:
        """Write the annotated ``source`` (see :meth:`path_for`); returns the path written.

        Raises:
            ValueError: the destination exists (without ``overwrite``), another input was already
                written there, or it cannot be written (see :func:`write_image`).
        """
        path = self.path_for(source, index, video)
        if path in self.written:
            raise ValueError(f"{path}: two inputs map to the same output file; use separate output folders.")
        write_image(path, image, self.overwrite)
        self.written.add(path)
        return path


# --- video codecs -------------------------------------------------------------------------------

CODEC_NAMES = {"avc1": "H.264", "VP80": "VP8", "mp4v": "MPEG-4 part 2", "MJPG": "Motion JPEG"}
_MP4_SUFFIXES = (".mp4", ".m4v", ".mov")
_encodes: dict[tuple[str, str], bool] = {}  # (fourcc, suffix) -> this OpenCV writes it; probed once
_probe_lock = threading.Lock()
_stderr_lock = threading.RLock()


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Inside it, file descriptor 2 points at the null device, so the lines FFmpeg and OpenCV print
    from C (``[h264_v4l2m2m @ 0x...] Could not find a valid device``, ``OpenCV: FFMPEG: tag ... is
    not supported``) do not reach the terminal; restored on the way out, whatever happens.

    Process-wide: whatever another thread writes to stderr meanwhile is lost too, so it is held
    only around the opening of a writer (milliseconds). Without a usable descriptor 2 (closed, or
    no dup on this platform) nothing is redirected.
    """
    with _stderr_lock:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()  # what Python already wrote goes where it was going
        except (AttributeError, OSError, ValueError):
            pass
        saved = None
        try:
            saved = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, 2)
            finally:
                os.close(null)
        except OSError:
            if saved is not None:
                os.close(saved)
            saved = None
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)


def _open_writer(path: Path, fourcc: str, fps: float, size: tuple[int, int]):
    """A ``cv2.VideoWriter`` on ``path`` (opened or not), with OpenCV's and FFmpeg's noise silenced."""
    import cv2

    with quiet_opencv_log(), _native_stderr_silenced():
        try:
            return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        except cv2.error:
            return None


def _can_encode(fourcc: str, suffix: str) -> bool:
    """Whether this OpenCV writes ``fourcc`` into a ``suffix`` file: a 64x48 frame written to a
    temporary file, once per process (cached)."""
    key = (fourcc, suffix)
    with _probe_lock:
        if key not in _encodes:
            with tempfile.TemporaryDirectory(prefix="cvapps-codec-") as folder:
                writer = _open_writer(Path(folder) / f"probe{suffix}", fourcc, 25.0, (64, 48))
                works = writer is not None and writer.isOpened()
                if writer is not None:
                    if works:
                        with quiet_opencv_log(), _native_stderr_silenced():
                            writer.write(np.zeros((48, 64, 3), np.uint8))
                            writer.release()
                    else:
                        writer.release()
            _encodes[key] = works
        return _encodes[key]


def video_codec(path: str | Path) -> tuple[str, str, bool]:
    """``(fourcc, codec name, browser_playable)`` that :class:`VideoSink` writes ``path`` with.

    By suffix: ``.webm`` VP8 (``"VP80"``); ``.mp4``, ``.m4v``, ``.mov`` H.264 (``"avc1"``) when this
    OpenCV can encode it, else MPEG-4 part 2 (``"mp4v"``); ``.mkv`` VP8 when it can, else Motion
    JPEG; ``.avi`` and the rest Motion JPEG (``"MJPG"``). Browsers play H.264 in .mp4/.m4v and VP8
    in .webm (``browser_playable``); not MPEG-4 part 2, Motion JPEG or a .mov/.mkv container.

    The first call for a suffix may open a tiny writer on a temporary file to find out (a few
    milliseconds, once per process), its stderr noise silenced.

        >>> video_codec("out.webm")
        ('VP80', 'VP8', True)
        >>> video_codec("out.avi")
        ('MJPG', 'Motion JPEG', False)

    Raises:
        ValueError: ``path`` has no video suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(
            f"{path}: a video output needs a video suffix such as .mp4, .webm or .avi (received {suffix or 'none'})."
        )
    if suffix == ".webm":
        fourcc = "VP80"
    elif suffix in _MP4_SUFFIXES:
        fourcc = "avc1" if _can_encode("avc1", suffix) else "mp4v"
    elif suffix == ".mkv":
        fourcc = "VP80" if _can_encode("VP80", suffix) else "MJPG"
    else:
        fourcc = "MJPG"
    playable = (fourcc == "avc1" and suffix in (".mp4", ".m4v")) or (fourcc == "VP80" and suffix == ".webm")
    return fourcc, CODEC_NAMES[fourcc], playable


class VideoSink:
    """Frames to a video file, written to a temporary file and renamed on :meth:`close`.

    Attributes:
        codec: the codec's name, from the suffix (see :func:`video_codec`): ``"H.264"``,
            ``"VP8"``, ``"MPEG-4 part 2"`` or ``"Motion JPEG"``.
        fourcc: its four-character code (``"avc1"``, ``"VP80"``, ``"mp4v"``, ``"MJPG"``).
        browser_playable: True for H.264 in .mp4/.m4v and VP8 in .webm.

    Raises (constructor):
        ValueError: no video suffix, the file exists (without ``overwrite``), or it cannot be
            written (see :func:`check_writable`).
    """

    def __init__(self, path: str | Path, fps: float | None = 25.0, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.fourcc, self.codec, self.browser_playable = video_codec(self.path)
        check_writable(self.path)
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
            writer = _open_writer(self.temporary, self.fourcc, self.fps, (width, height))
            if writer is None or not writer.isOpened():
                _finished(self.temporary)
                self.temporary = None
                raise ValueError(
                    f"{self.path}: this OpenCV cannot write {self.codec} ({self.fourcc}) video at {width}x{height}; "
                    "write an .avi (Motion JPEG) instead."
                )
            self.writer, self.size = writer, (width, height)
        self.writer.write(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file; ``keep=False`` (an error happened) removes it instead.

        Raises:
            ValueError: the finished file cannot be moved into place (the reason from the OS).
        """
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            try:
                if keep and self.frames:
                    os.replace(self.temporary, self.path)
            except OSError as error:
                raise ValueError(f"{self.path}: cannot write ({_reason(error)}).") from None
            finally:
                _finished(self.temporary)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        # Frames written before Ctrl-C (or SystemExit) are a truthful partial video: kept.
        self.close(keep=kind is None or issubclass(kind, (SystemExit, KeyboardInterrupt)))


class JsonLinesSink:
    """One JSON object per line, to stdout (``"-"``) or to a file written atomically on close.

    The file's destination is checked when the sink is made (exists without ``overwrite``, a
    folder, not writable: ValueError); the hidden temporary file beside it is created by the
    first :meth:`write` (or by :meth:`close` for a run without records, which leaves an empty
    file). ``count`` is the number of records written.
    """

    def __init__(self, target: str | Path, overwrite: bool = False) -> None:
        self.target = target
        self.count = 0
        self.temporary: Path | None = None
        self.closed = False
        self._file = None
        self._complete = 0  # bytes of whole records in the temporary file
        if target == "-":
            self.stream = sys.stdout
        else:
            check_writable(target)
            refuse_existing(target, overwrite)
            self.stream = None

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line (flushed at once).

        Raises:
            ValueError: the sink is closed, or the file cannot be written (the reason from the OS).
        """
        line = json.dumps(record, ensure_ascii=False) + "\n"
        if self.target == "-":
            self.stream.write(line)
            self.stream.flush()
            self.count += 1
            return
        if self.closed:
            raise ValueError(f"{self.target}: the JSON Lines sink is closed; open a new one to write more.")
        if self._file is None:
            self._open()
        data = line.encode("utf-8")
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as error:
            raise ValueError(f"{self.target}: cannot write ({_reason(error)}).") from None
        self._complete, self.count = self._complete + len(data), self.count + 1

    def _open(self):
        self.temporary = atomic_path(self.target)
        try:
            self._file = open(self.temporary, "wb")
        except OSError as error:
            _finished(self.temporary)
            raise ValueError(f"{self.target}: cannot write ({_reason(error)}).") from None

    def close(self, keep: bool = True) -> None:
        """Finish the file with the whole records written so far; ``keep=False`` removes it instead.

        Raises:
            ValueError: the file cannot be finished (the reason from the OS).
        """
        if self.target == "-" or self.closed:
            return
        self.closed = True
        if self._file is None and not keep:
            return
        try:
            if self._file is None:
                self._open()  # a run without records still leaves its (empty) file
            self._file.close()
            if keep:
                self._keep_whole_records()
                os.replace(self.temporary, self.target)
        except OSError as error:
            raise ValueError(f"{self.target}: cannot write ({_reason(error)}).") from None
        finally:
            _finished(self.temporary)
            self.temporary = None

    def _keep_whole_records(self):
        """After an interrupt in the middle of a write: keep the record if all of it reached the
        file (a signal can strike just after the write, before it was counted), else cut it off."""
        if os.path.getsize(self.temporary) == self._complete:
            return
        with open(self.temporary, "rb") as handle:
            handle.seek(self._complete)
            tail = handle.read()
        whole = tail[: tail.rfind(b"\n") + 1]  # a record is one line: JSON escapes its newlines
        self._complete, self.count = self._complete + len(whole), self.count + whole.count(b"\n")
        os.truncate(self.temporary, self._complete)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        # A run that processed its batch keeps its records, even if some inputs failed.
        self.close(keep=kind is None or issubclass(kind, (SystemExit, KeyboardInterrupt)))


def write_text(path: str | Path, text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; the rules of :func:`write_json`."""
    path = Path(path)
    refuse_existing(path, overwrite)
    _write_bytes_atomically(path, text.encode("utf-8"))
    return path


def write_json(path: str | Path, obj: Any, overwrite: bool = False) -> Path:
    """Write one JSON object to ``path`` atomically; an existing file is refused unless ``overwrite``
    (the rule of every cvapps output).

    Raises:
        ValueError: the file exists (without ``overwrite``), is a folder, or cannot be written.
    """
    path = Path(path)
    refuse_existing(path, overwrite)
    _write_bytes_atomically(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path
