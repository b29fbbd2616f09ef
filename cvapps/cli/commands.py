"""What the command bodies of every app share: the predict sinks (:class:`Outputs`), progress bars,
the eval report's header, the destination checks and the webcam loop call.

Command bodies print, show progress and write files; the library does not.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import numpy as np

from cvapps.cli.common import OutputOptions, ReportOptions, WebcamOptions
from cvapps.core.records import error_record
from cvapps.core.sinks import ImageSink, JsonLinesSink, VideoSink, refuse_existing, remove_unfinished
from cvapps.core.sources import VIDEO_SUFFIXES, video_fps

if TYPE_CHECKING:
    from cvapps.core.sources import Frame, Source
    from cvapps.core.streaming import FrameResult
    from cvapps.core.webcam import LoopStats

T = TypeVar("T")
NOT_PLAYABLE = "browsers do not play it; write .webm for a video that plays in a browser"


def batched(iterable: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to ``size`` items from ``iterable``."""
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the handler :class:`Outputs` installs while it is open,
    so that the cleanup of Ctrl-C (KeyboardInterrupt) runs for it too."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(f"signal {signum}")


class Outputs:
    """The sinks of one predict command, opened (and checked) before any work.

    Every destination is checked when this is made, before the first image is read: an existing
    file (without ``--overwrite``), two inputs sharing a name, a folder that cannot be written.
    In an output folder, images keep their path relative to the deepest folder holding all the
    inputs (``photos/a/x.jpg`` -> ``OUT/a/x.jpg``; one folder's images keep flat names), video
    frames are ``<stem>_<frame:06d>.jpg``.

    ``write(annotated, frame)`` sends an annotated frame to the video or image sink, if any;
    ``records`` is the JSON Lines sink or None; ``frames()`` yields the decoded frames and
    counts the failed ones in ``failures``. Used as a context manager: on success the video and
    records are finished, on an error they are removed. Ctrl-C (SIGINT) or SIGTERM keeps what was
    done (the records of the finished inputs, the images written, the video so far: a truthful
    partial result), prints ``interrupted after N of M inputs`` on stderr and exits 130 (SIGINT)
    or 143 (SIGTERM). While open, SIGTERM raises :class:`Interrupted` (the previous handler
    comes back on exit).
    """

    def __init__(self, source: Source, settings: OutputOptions, task: str | None = None) -> None:
        output, json_path, overwrite = settings.output, settings.json_path, settings.overwrite
        self.source, self.failures, self.quiet, self.task = source, 0, settings.quiet, task
        kind, items = source.kind, source.items
        self.is_video = source.is_stream
        self.images = self.video = None
        self.yielded, self.total = 0, None
        self._iterator = None
        self._previous = None
        planned: list[Path] = []
        self.fps = video_fps(items[0]) if kind == "video" else None  # None: unknown (camera, stream, images)
        if output:
            if self.is_video and Path(output).suffix.lower() in VIDEO_SUFFIXES:
                self.video = VideoSink(output, fps=self.fps or 25.0, overwrite=overwrite)
                planned = [self.video.path]
            else:
                self.images = ImageSink(output, multiple=self.is_video or len(items) > 1, overwrite=overwrite)
                stream_name = f"camera:{items[0]}" if kind == "camera" else str(items[0])
                planned = self.images.plan([stream_name] if self.is_video else items, video=self.is_video)
        if json_path and json_path != "-" and _same_file(json_path, planned):
            raise ValueError(f"{json_path}: --json names a file that --output also writes; choose another name.")
        self.records = JsonLinesSink(json_path, overwrite=overwrite) if json_path else None

    def frames(self, errors: bool = False) -> Iterator[Frame]:
        """The source's decoded frames, with a progress bar (none when quiet); a frame that failed to
        decode is reported on stderr, counted in ``failures`` (the command's exit code says so) and, with
        ``--json`` and a ``task``, written as an error record (:func:`cvapps.core.records.error_record`).

        ``errors=True`` (a command that batches frames) yields the failed frames too, ``frame.error`` set,
        and leaves their records to the caller (:meth:`write_error`), so records keep the input order.
        """
        return self._walk(self.source.frames(), lambda frame: frame, errors)

    def results(self, stream: Iterator[FrameResult]) -> Iterator[FrameResult]:
        """:meth:`frames` for an app's result stream (``detect(..., stream=True)``, the same generator the
        Python API gives): the items of frames that decoded, with the progress bar; the failed ones
        reported, counted and written as error records."""
        return self._walk(stream, lambda item: item.frame, False)

    def _walk(self, items: Iterator[T], frame_of: Callable[[T], Frame], errors: bool) -> Iterator[T]:
        """``items`` with the progress bar (frame/s for a video, camera or stream, img/s for images); an item
        whose frame failed is reported, counted and recorded (or, with ``errors``, yielded to the caller)."""
        self.total = self.source.count()
        self._iterator = items
        for item in progress(items, self.quiet, self.total, unit="frame" if self.is_video else "img"):
            frame = frame_of(item)
            if frame.error:
                self.failures += 1
                click.echo(f"error: {frame.error}", err=True)
                if errors:
                    yield item
                else:
                    self.write_error(frame)
                continue
            self.yielded += 1
            yield item

    def write_error(self, frame: Frame) -> None:
        """The error record ``{schema_version, source, frame, task, error}`` of a failed frame (with ``--json``)."""
        if self.records and self.task:
            self.records.write(error_record(frame.source, frame.index, self.task, frame.error))

    def report_video(self) -> None:
        """After a run that finished (on exit): the video written, its frames and codec, and a hint when
        browsers cannot play it (stderr; none when quiet)."""
        if self.video is None or self.quiet or not self.video.frames:
            return
        note = f"wrote {self.video.path}: {self.video.frames} frames, {self.video.codec}"
        click.echo(note + ("" if self.video.browser_playable else f" ({NOT_PLAYABLE})"), err=True)

    @property
    def wants_images(self) -> bool:
        return bool(self.images or self.video)

    @property
    def done(self) -> int:
        """Inputs finished: those whose record or image was written (else those handed out), plus
        the failed ones."""
        counts = [len(self.images.written)] if self.images else []
        counts += [self.video.frames] if self.video else []
        counts += [self.records.count] if self.records else []
        return (max(counts) if counts else self.yielded) + self.failures

    def write(self, annotated: np.ndarray, frame: Frame) -> None:
        if self.video:
            self.video.write(annotated)
        elif self.images:
            self.images.write(annotated, frame.source, frame.index, video=self.is_video)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _raise_interrupted)
        return self

    def __exit__(self, kind, error, traceback):
        stopped = kind is not None and issubclass(kind, KeyboardInterrupt)
        main = threading.current_thread() is threading.main_thread()
        if main:  # no second signal in the middle of finishing the files
            previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if self._iterator is not None and hasattr(self._iterator, "close"):
                try:
                    self._iterator.close()  # stop the decoding thread (and release a video or camera)
                except (RuntimeError, ValueError):
                    pass
            for sink in (self.video, self.records):
                if sink:
                    sink.close(keep=kind is None or stopped)
            if kind is None:
                self.report_video()
        finally:
            if kind is not None:  # a signal between two steps of a writer can skip its own cleanup
                remove_unfinished()
            if main:
                signal.signal(signal.SIGINT, previous_int if previous_int is not None else signal.SIG_DFL)
                previous = self._previous
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if stopped:
            terminated = issubclass(kind, Interrupted)
            unit = "inputs" if self.source.kind == "images" else "frames"
            of = f" of {self.total}" if self.total is not None else ""
            kept = "; the results written so far are kept" if self.wants_images or self.records else ""
            click.echo(f"interrupted after {self.done}{of} {unit}{kept}.", err=True)
            raise SystemExit(143 if terminated else 130) from None


def _same_file(path: str, others: list[Path]) -> bool:
    """Whether ``path`` names one of ``others`` (compared as absolute paths)."""
    target = os.path.abspath(path)
    return any(os.path.abspath(other) == target for other in others)


def eval_report(
    task: str,
    model_name: str | Path,
    data: str,
    holdout: float | None,
    seed: int,
    num_images: int,
    started: float,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The report every ``cvapps eval TASK`` writes: {"task", "model", "data", "num_images",
    "seconds", "metrics"}; prints its first line."""
    report = {
        "task": task,
        "model": str(model_name),
        "data": data + (f" (holdout {holdout}, seed {seed})" if holdout else ""),
        "num_images": num_images,
        "seconds": round(time.time() - started, 2),
        "metrics": metrics,
    }
    click.echo(f"{num_images} images, {report['seconds']} s")
    return report


def progress(
    iterable: Iterable[T], quiet: bool, total: int | None = None, desc: str | None = None, unit: str = "img"
) -> Iterable[T]:
    """A progress bar on stderr (items and items/s), unless ``quiet`` or there is a single item."""
    if quiet or total == 1:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def bar(quiet: bool, desc: str, unit: str) -> Callable[[Iterable[Any], int | None], Iterable[Any]] | None:
    """A ``progress(iterable, total)`` callable drawing a tqdm bar on stderr, or None if quiet."""
    if quiet:
        return None
    from tqdm import tqdm

    return lambda iterable, total: tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def confusion_beside(json_path: str) -> str:
    """The figure saved beside a report when none is named: ``report.json`` -> ``report_confusion.png``."""
    return str(Path(json_path).with_suffix("")) + "_confusion.png"


def check_destinations(report: ReportOptions, *paths: str | None) -> None:
    """Refuse, before any work, a report or figure destination that exists (unless ``--overwrite``)
    or is a folder, so a long evaluation never ends in an error about its output."""
    for path in (report.json_path, *paths):
        if path and path != "-":
            refuse_existing(path, report.overwrite)


def run_webcam_loop(process: Callable[[np.ndarray], np.ndarray], webcam: WebcamOptions) -> LoopStats:
    """:func:`cvapps.core.webcam.run_loop` with the ``cvapps webcam`` options; headless (``--no-show``) and
    not ``--quiet``, a progress bar on stderr counts the frames and their rate (frame/s)."""
    from cvapps.core.webcam import run_loop

    if webcam.output and not webcam.quiet and Path(webcam.output).suffix.lower() in VIDEO_SUFFIXES:
        from cvapps.core.sinks import video_codec

        _, codec, playable = video_codec(webcam.output)
        if not playable:
            click.echo(f"note: {webcam.output} will be {codec} ({NOT_PLAYABLE}).", err=True)
    bar = None
    if not webcam.show and not webcam.quiet:
        from tqdm import tqdm

        bar = tqdm(total=webcam.max_frames, unit="frame", file=sys.stderr, leave=False, desc="processing")
        step = process

        def process(image):
            annotated = step(image)
            bar.update(1)
            return annotated

    try:
        return run_loop(
            webcam.source,
            process,
            show=webcam.show,
            output=webcam.output,
            overwrite=webcam.overwrite,
            max_frames=webcam.max_frames,
        )
    finally:
        if bar is not None:
            bar.close()
