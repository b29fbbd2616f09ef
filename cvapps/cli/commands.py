"""What the command bodies of every app share: the predict sinks (:class:`Outputs`), progress bars,
the eval report's header, the destination checks and the webcam loop call.

Command bodies print, show progress and write files; the library does not.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import numpy as np

from cvapps.cli.common import OutputOptions, ReportOptions, WebcamOptions
from cvapps.core.sinks import ImageSink, JsonLinesSink, VideoSink, refuse_existing
from cvapps.core.sources import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from cvapps.core.sources import Frame, Source
    from cvapps.core.webcam import LoopStats

T = TypeVar("T")


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


class Outputs:
    """The sinks of one predict command, opened (and checked) before any work.

    ``write(annotated, frame)`` sends an annotated frame to the video or image sink, if any;
    ``records`` is the JSON Lines sink or None; ``frames(quiet)`` yields the decoded frames and
    counts the failed ones in ``failures``. Used as a context manager: on success the
    video and records are finished, on an error or interrupt they are removed.
    """

    def __init__(self, source: Source, settings: OutputOptions) -> None:
        output, json_path, overwrite = settings.output, settings.json_path, settings.overwrite
        self.source, self.failures, self.quiet = source, 0, settings.quiet
        kind, items = source.kind, source.items
        self.is_video = source.is_stream
        self.images = self.video = None
        if output:
            if self.is_video and Path(output).suffix.lower() in VIDEO_SUFFIXES:
                fps = _video_fps(items[0]) if kind == "video" else 25.0
                self.video = VideoSink(output, fps=fps, overwrite=overwrite)
            else:
                self.images = ImageSink(output, multiple=self.is_video or len(items) > 1, overwrite=overwrite)
        self.records = JsonLinesSink(json_path, overwrite=overwrite) if json_path else None

    def frames(self) -> Iterator[Frame]:
        """The source's decoded frames, with a progress bar (none when quiet); a frame that failed to
        decode is reported on stderr and counted in ``failures`` (the command's exit code says so)."""
        for frame in progress(self.source.frames(), self.quiet, self.source.count()):
            if frame.error:
                self.failures += 1
                click.echo(f"error: {frame.error}", err=True)
                continue
            yield frame

    @property
    def wants_images(self) -> bool:
        return bool(self.images or self.video)

    def write(self, annotated: np.ndarray, frame: Frame) -> None:
        if self.video:
            self.video.write(annotated)
        elif self.images:
            self.images.write(annotated, frame.source, frame.index, video=self.is_video)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        for sink in (self.video, self.records):
            if sink:
                sink.close(keep=kind is None)


def _video_fps(path):
    import cv2

    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return fps or 25.0


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


def progress(iterable: Iterable[T], quiet: bool, total: int | None = None, desc: str | None = None) -> Iterable[T]:
    """A progress bar on stderr, unless ``quiet`` or there is a single item."""
    if quiet or total == 1:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="img", file=sys.stderr, leave=False)


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
    """:func:`cvapps.core.webcam.run_loop` with the ``cvapps webcam`` options."""
    from cvapps.core.webcam import run_loop

    return run_loop(
        webcam.source,
        process,
        show=webcam.show,
        output=webcam.output,
        overwrite=webcam.overwrite,
        max_frames=webcam.max_frames,
    )
