"""Commands of detection: added to the ``cvapps`` groups by :func:`register`.

    cvapps detect SOURCE [--model person] [--confidence-threshold 0.25] [--classes a,b] [--output OUT] [--json FILE]
                         [--track] [--count-line X1,Y1,X2,Y2] [--zone X1,Y1,X2,Y2,X3,Y3,...]
    cvapps train detect DATA... --output model.keras [--family ...] [--weights imagenet] ...
    cvapps eval detect DATA... --model NAME [--holdout 0.2] [--by-source] [--truth GT_FOLDER] --json report.json
    cvapps eval detect DATA... --model teacher.onnx --holdout 0.1 --seed 0   (a YOLOX/NanoDet teacher, same split)
    cvapps webcam detect [--model person] [--source 0|video|rtsp://...] [--track] [--count-line ...] [--zone ...]

The click declarations come first, then the bodies they call (one file per app).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from cvapps.cli.commands import Outputs, bar, check_destinations, eval_report, run_webcam_loop
from cvapps.cli.common import (
    OutputOptions,
    ReportOptions,
    TrackingOptions,
    WebcamOptions,
    backbone_size_options,
    fail_on_value_error,
    family_option,
    holdout_options,
    output_options,
    quiet_option,
    report_options,
    report_reused,
    restart_options,
    runtime_option,
    tracking_options,
    train_overwrite_option,
    warn_each,
    webcam_options,
    weights_option,
)
from cvapps.core.records import SCHEMA_VERSION
from cvapps.core.sinks import write_image, write_json
from cvapps.core.sources import open_source
from cvapps.detection import DEFAULT_MODEL as DEFAULT_DETECTOR

if TYPE_CHECKING:
    from cvapps.core.sources import Frame
    from cvapps.core.streaming import FrameResult
    from cvapps.core.tracking import Tracker
    from cvapps.core.webcam import LoopStats
    from cvapps.detection import Detections
    from cvapps.runtime import OpenedModel


@click.command("detect")
@click.argument("source")
@click.option("--model", default=DEFAULT_DETECTOR, show_default=True, help="Shipped detector name or .keras path.")
@click.option(
    "--confidence-threshold",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Keep detections scoring at least this (objectness x class).",
)
@click.option(
    "--iou-threshold",
    type=click.FloatRange(0, 1),
    default=0.45,
    show_default=True,
    help="Non-max suppression: overlaps above this IoU (same class) are suppressed.",
)
@click.option("--classes", help="Comma-separated class names to keep (e.g. person,dog); default all.")
@click.option(
    "--class-threshold",
    "class_thresholds",
    multiple=True,
    metavar="NAME=VALUE",
    help="Confidence threshold for one class, overriding --confidence-threshold (repeatable).",
)
@click.option("--max-detections", type=click.IntRange(min=1), default=300, show_default=True)
@tracking_options()
@output_options("Annotated image file (one input), folder, or video file (.webm plays in browsers).")
@click.option("--save-crops", type=click.Path(), help="Save each detection's pixels to DIR/<class>/<image>_<k>.jpg.")
@runtime_option
@fail_on_value_error
def detect(
    source: str,
    model: str,
    confidence_threshold: float,
    iou_threshold: float,
    classes: str | None,
    class_thresholds: tuple[str, ...],
    max_detections: int,
    save_crops: str | None,
    runtime: str,
    outputs: OutputOptions,
    tracking: TrackingOptions,
) -> None:
    """Detect objects in an image, a folder, a glob, a video, a camera or a stream (rtsp://, http://, .m3u8):
    boxes with class and confidence; with --track, ids that persist across frames."""
    options = DetectOptions.from_cli(confidence_threshold, iou_threshold, classes, class_thresholds, max_detections)
    failures = run_detect(source, model, options, outputs, runtime=runtime, save_crops=save_crops, tracking=tracking)
    if failures:
        sys.exit(1)


@click.command("detect")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--output", type=click.Path(), required=True, help="Where to write the trained .keras model.")
@click.option("--classes", help="Comma-separated class names to keep (e.g. person); default all.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Images held out for validation (same split as 'eval detect --holdout').",
)
@family_option("compact")
@backbone_size_options
@weights_option
@click.option("--image-size", type=click.IntRange(min=64), default=320, show_default=True, help="Multiple of 32.")
@click.option("--width", type=click.IntRange(min=8), default=64, show_default=True, help="Neck channels.")
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--no-augment", is_flag=True, help="No flips, scale/translate, colour or mosaic.")
@click.option("--mosaic", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Probability of a mosaic.")
@click.option("--checkpoint-dir", type=click.Path(), help="Resumable state (default runs/<output name>).")
@click.option("--seed", type=int, default=0, show_default=True)
@train_overwrite_option
@restart_options
@quiet_option
@fail_on_value_error
def train_detect(
    data: tuple[str, ...],
    output: str,
    classes: str | None,
    val_fraction: float,
    family: str,
    size: str,
    alpha: float,
    weights: str | None,
    image_size: int,
    width: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    no_augment: bool,
    mosaic: float,
    checkpoint_dir: str | None,
    seed: int,
    quiet: bool,
    restart: str,
    overwrite: bool,
) -> None:
    """Train a detector on one or more DATA folders (YOLO, Pascal VOC, COCO JSON or Penn-Fudan
    layout), merged; anchors are fitted to the data. Rerun the same command to resume."""
    from cvapps.detection import fit_anchors, train_detector
    from cvapps.nn.training import split_record

    started = time.time()
    train, val = _detection_sets(data, classes, val_fraction, seed, quiet)
    anchors, mean_best_iou = fit_anchors(train, image_size, seed=seed)
    if not quiet:
        click.echo(
            f"{len(train)} training images ({train.num_boxes} boxes), {len(val)} held out; "
            f"anchors fitted: mean best IoU {mean_best_iou:.3f}"
        )
    result = train_detector(
        train,
        output,
        validation=val,
        anchors=anchors,
        image_size=image_size,
        family=family,
        size=size,
        alpha=alpha,
        weights=weights,
        width=width,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        augment=not no_augment,
        mosaic=mosaic,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        restart=restart,
        overwrite=overwrite,
        split=split_record(val_fraction, seed, val),
        verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
    )
    report_reused(result)
    click.echo(f"saved {output} after {time.time() - started:.0f} s")


@click.command("detect")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option(
    "--model",
    required=True,
    help="Shipped model name, .keras or .onnx path, or an ONNX teacher of the YOLOX or NanoDet layout "
    "(as 'cvapps label detect --teacher' takes; it records no split: pass --holdout FRACTION --seed N).",
)
@click.option("--classes", help="Comma-separated class names to keep from DATA (as in training).")
@holdout_options("train detect")
@click.option(
    "--by-source",
    is_flag=True,
    help="Also score the images of each DATA folder on their own (map50 and map50_95 per source).",
)
@click.option(
    "--truth",
    "truths",
    multiple=True,
    type=click.Path(),
    metavar="FOLDER",
    help="Also score the evaluated photos that FOLDER labels (the same photo files) against FOLDER's own labels, "
    "e.g. teacher-labelled Penn-Fudan photos against Penn-Fudan's ground truth; repeatable.",
)
@report_options()
@click.option("--pr-curve", type=click.Path(), help="Save the precision-recall curves (IoU 0.5) as a PNG here.")
@fail_on_value_error
def eval_detect(
    data: tuple[str, ...],
    model: str,
    classes: str | None,
    holdout: float | str | None,
    seed: int | None,
    by_source: bool,
    truths: tuple[str, ...],
    pr_curve: str | None,
    report: ReportOptions,
) -> None:
    """COCO-style mAP (map50, map50_95), per-class AP, precision and recall on DATA, and the recall of small,
    medium and large objects (COCO's areas, at confidence 0.25 and IoU 0.5); with --by-source, mAP per DATA
    folder too; with --truth FOLDER, the same photos scored against another folder's labels (ground truth).
    MODEL may be a teacher ONNX (YOLOX or NanoDet layout), to score it on the same held-out images."""
    run_eval_detect(
        data,
        model,
        report,
        classes=classes,
        holdout=holdout,
        seed=seed,
        pr_curve=pr_curve,
        by_source=by_source,
        truths=truths,
    )


@click.command("detect")
@click.option("--model", default=DEFAULT_DETECTOR, show_default=True, help="Shipped detector name or .keras path.")
@click.option("--confidence-threshold", type=click.FloatRange(0, 1), default=0.25, show_default=True)
@click.option("--iou-threshold", type=click.FloatRange(0, 1), default=0.45, show_default=True)
@click.option("--classes", help="Comma-separated class names to keep; default all.")
@click.option(
    "--class-threshold",
    "class_thresholds",
    multiple=True,
    metavar="NAME=VALUE",
    help="Confidence threshold for one class (repeatable).",
)
@runtime_option
@tracking_options()
@webcam_options
@fail_on_value_error
def webcam_detect(
    model: str,
    confidence_threshold: float,
    iou_threshold: float,
    classes: str | None,
    class_thresholds: tuple[str, ...],
    runtime: str,
    webcam: WebcamOptions,
    tracking: TrackingOptions,
) -> None:
    """Live boxes over a camera (q or Esc quits), a video file or a stream URL; --track for ids and trails."""
    options = DetectOptions.from_cli(confidence_threshold, iou_threshold, classes, class_thresholds)
    run_webcam_detect(model, options, webcam, runtime=runtime, tracking=tracking)


@click.command("detect")
@click.argument("source")
@click.option(
    "--teacher",
    required=True,
    help="A cvapps detector (name, .keras, .onnx) or an ONNX file of the YOLOX or NanoDet layout.",
)
@click.option(
    "--output", type=click.Path(), required=True, help="The YOLO folder to write (images/, labels/, data.yaml)."
)
@click.option(
    "--confidence-threshold",
    type=click.FloatRange(0, 1),
    default=0.4,
    show_default=True,
    help="Keep only boxes the teacher scores at least this (pseudo-labels want confident boxes).",
)
@click.option("--iou-threshold", type=click.FloatRange(0, 1), default=0.45, show_default=True)
@click.option("--classes", help="Comma-separated class names to keep (renumbered 0.. in this order); default all.")
@click.option("--copy", is_flag=True, help="Copy the photos into images/ (default: symbolic links to them).")
@click.option("--overwrite", is_flag=True, help="Write into a folder that already holds a data.yaml.")
@click.option("--json", "json_path", type=click.Path(), help="Write the report (boxes per class) as one JSON object.")
@quiet_option
@fail_on_value_error
def label_detect(
    source: str,
    teacher: str,
    output: str,
    confidence_threshold: float,
    iou_threshold: float,
    classes: str | None,
    copy: bool,
    overwrite: bool,
    json_path: str | None,
    quiet: bool,
) -> None:
    """Label the photos of SOURCE with a teacher detector into a YOLO folder that 'cvapps train detect' reads,
    as Ultralytics' auto_annotate does: one label file per photo (empty for a photo with no box)."""
    from cvapps.detection.label import auto_label, open_teacher

    if json_path:
        from cvapps.core.sinks import refuse_existing

        refuse_existing(json_path, overwrite)
    opened = open_teacher(teacher)
    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    report = auto_label(
        source,
        opened,
        output,
        confidence_threshold=confidence_threshold,
        iou_threshold=iou_threshold,
        classes=names,
        copy=copy,
        overwrite=overwrite,
        progress=bar(quiet, "labelling", "img"),
    )
    warn_each(report.skipped, quiet, "skipped ")
    counts = ", ".join(f"{n} {c}" for n, c in sorted(report.boxes_per_class.items(), key=lambda kv: -kv[1]) if c)
    click.echo(
        f"labelled {report.images} photos with {opened.name} ({opened.layout}) into {report.output}: "
        f"{sum(report.boxes_per_class.values())} boxes" + (f" ({counts})" if counts else "")
    )
    if json_path:
        write_json(json_path, report.to_dict(), overwrite=overwrite)
    if report.skipped:
        sys.exit(1)


def register(cli: click.Group, train: click.Group, evaluate: click.Group, webcam: click.Group) -> None:
    """Add this app's commands to the top-level group and the train/eval/webcam/label groups."""
    cli.add_command(detect, "detect")
    train.add_command(train_detect, "detect")
    evaluate.add_command(eval_detect, "detect")
    webcam.add_command(webcam_detect, "detect")
    label = cli.get_command(None, "label")
    if label is not None:
        label.add_command(label_detect, "detect")


# --- command bodies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectOptions:
    """What ``cvapps detect`` and ``cvapps webcam detect`` pass to :func:`cvapps.detection.detect`."""

    confidence_threshold: float = 0.25
    iou_threshold: float = 0.45
    classes: tuple[str, ...] | None = None
    class_thresholds: dict[str, float] | None = None
    max_detections: int = 300

    @classmethod
    def from_cli(
        cls,
        confidence_threshold: float,
        iou_threshold: float,
        classes: str | None,
        class_thresholds: tuple[str, ...] | None,
        max_detections: int = 300,
    ) -> DetectOptions:
        """Parse ``--classes a,b`` and repeated ``--class-threshold NAME=VALUE``."""
        names = tuple(c.strip() for c in classes.split(",") if c.strip()) if classes else None
        thresholds = {}
        for item in class_thresholds or ():
            name, _, value = item.rpartition("=")
            try:
                thresholds[name.strip()] = float(value)
            except ValueError:
                name = ""
            if not name.strip():
                raise ValueError(f"--class-threshold takes NAME=VALUE, e.g. person=0.5; received {item!r}.")
        return cls(confidence_threshold, iou_threshold, names, thresholds or None, max_detections)

    def run(
        self, images: Any, model: OpenedModel, *, stream: bool = False, track: Tracker | None = None
    ) -> list[Detections] | Iterator[FrameResult]:
        """:func:`cvapps.detection.detect` with these settings (``track``: the tracker kept across calls)."""
        from cvapps.detection import detect

        return detect(
            images,
            model,
            confidence_threshold=self.confidence_threshold,
            iou_threshold=self.iou_threshold,
            classes=self.classes,
            max_detections=self.max_detections,
            class_thresholds=self.class_thresholds,
            stream=stream,
            track=track or False,
        )


class Counting:
    """The tracker, the ``--count-line`` counters and the ``--zone`` polygons of one run: their numbers for the
    JSON record of each frame and their drawing on it."""

    def __init__(self, tracking: TrackingOptions, confidence_threshold: float, fps: float | None = None) -> None:
        from cvapps.core.tracking import LineCounter, PolygonZone, Tracker, TrackOptions

        self.tracker = None
        if tracking.tracking:
            self.tracker = Tracker(TrackOptions.starting_at(confidence_threshold, tracking.per_class), fps or 30.0)
        self.lines = [LineCounter(text) for text in tracking.count_lines]
        self.zones = [PolygonZone(text) for text in tracking.zones]
        self.inside: list[dict] = []

    def update(self, found: Detections, shape: tuple[int, ...]) -> dict[str, Any]:
        """Count one frame's (tracked) detections; the record fields ``count_lines`` and ``zones`` (when any)."""
        fields: dict[str, Any] = {}
        if self.lines:
            for line in self.lines:
                line.update(found.xyxy, found.track_id, found.class_name, shape)
            fields["count_lines"] = [line.to_dict() for line in self.lines]
        if self.zones:
            self.inside = [zone.count(found.xyxy, found.class_name, shape) for zone in self.zones]
            fields["zones"] = self.inside
        return fields

    def draw(self, image: np.ndarray, found: Detections) -> np.ndarray:
        """``image`` annotated: zones under the boxes, then the boxes (with ids), trails and lines."""
        from cvapps.core.annotate import draw_count_line, draw_detections, draw_trails, draw_zone

        for zone, inside in zip(self.zones, self.inside):
            image = draw_zone(image, zone, inside["total"])
        image = draw_detections(image, found)
        if self.tracker is not None:
            image = draw_trails(image, self.tracker.trails)
        for line in self.lines:
            image = draw_count_line(image, line)
        return image

    def summary(self) -> list[str]:
        """One line per counting line: totals in and out, by class."""

        def by_class(counts):
            return ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n)

        lines = []
        for k, line in enumerate(self.lines, 1):
            record = line.to_dict()
            text = f"line {k}: in {record['total_in']}"
            text += f" ({by_class(record['in'])})" if record["total_in"] else ""
            text += f", out {record['total_out']}" + (f" ({by_class(record['out'])})" if record["total_out"] else "")
            lines.append(text)
        return lines


def run_detect(
    source: str,
    model_name: str | OpenedModel,
    options: DetectOptions,
    outputs: OutputOptions,
    *,
    runtime: str = "auto",
    save_crops: str | None = None,
    tracking: TrackingOptions | None = None,
) -> int:
    """``cvapps detect``: returns the number of inputs that failed."""
    from cvapps.runtime import open_model

    source = open_source(source)
    settings, outputs = outputs, Outputs(source, outputs, task="detect")
    model = open_model(model_name, task="detect", runtime=runtime)
    options.run(np.zeros((8, 8, 3), np.uint8), model)  # check --classes and thresholds before any work
    counting = Counting(tracking or TrackingOptions(), options.confidence_threshold, outputs.fps)
    crops = CropSink(save_crops, settings.overwrite, [] if outputs.is_video else source.items) if save_crops else None
    with outputs:
        for item in outputs.results(options.run(source, model, stream=True, track=counting.tracker)):
            frame, found = item
            counts = counting.update(found, frame.image.shape)
            if outputs.records:
                outputs.records.write(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "source": frame.source,
                        "frame": frame.index,
                        "task": "detect",
                        "model": model.info.name,
                        "runtime": model.runtime,
                        "confidence_threshold": options.confidence_threshold,
                        "class_thresholds": options.class_thresholds,
                        "classes": options.classes,
                        "iou_threshold": options.iou_threshold,
                        "results": found.to_dict(),
                        **counts,
                        "milliseconds": round(item.milliseconds, 3),
                    }
                )
            if settings.json_path != "-":
                label = f"{frame.source}" + (f"[{frame.index}]" if outputs.is_video else "")
                names = ", ".join(
                    (f"#{t} " if t >= 0 else "") + f"{n} {c:.2f}"
                    for n, c, t in zip(found.class_name, found.confidence, _ids(found))
                )
                click.echo(f"{label}: {len(found)} found" + (f": {names}" if names else ""))
            if outputs.wants_images:
                outputs.write(counting.draw(frame.image, found), frame)
            if crops:
                crops.write(frame, found, outputs.is_video)
    if settings.json_path != "-":
        for line in counting.summary():
            click.echo(line)
    return outputs.failures


def _ids(found: Detections) -> np.ndarray:
    """The track ids, or -1 for every box when not tracked."""
    return found.track_id if found.track_id is not None else np.full(len(found), -1)


class CropSink:
    """``--save-crops DIR``: each detection's pixels as ``DIR/<class>/<image path>[_<frame>]_<k>.jpg``, the
    image's path relative to the deepest folder holding all the inputs (``photos/a/x.jpg`` and
    ``photos/b/x.jpg`` -> ``DIR/person/a/x_0.jpg`` and ``DIR/person/b/x_0.jpg``, never one file); k counts
    the detections of that image, best first."""

    def __init__(self, folder: str | Path, overwrite: bool, sources: Sequence[str | Path] = ()) -> None:
        from cvapps.core.sinks import check_writable, common_folder

        self.folder, self.overwrite = Path(folder), overwrite
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"--save-crops {folder}: this is a file; give a folder.")
        check_writable(self.folder, folder=True)
        self.root = common_folder(list(sources)) if len(sources) > 1 else None

    def _stem(self, source: str | Path) -> Path:
        path = Path(str(source))
        if self.root is not None:
            try:
                return path.relative_to(self.root).with_suffix("")
            except ValueError:
                pass
        return Path(path.stem)

    def write(self, frame: Frame, found: Detections, is_video: bool) -> None:
        """Write the crops of one frame's detections."""
        from cvapps.detection import crop_detections

        stem = self._stem(frame.source)
        stem = stem.with_name(stem.name + (f"_{frame.index:06d}" if is_video else ""))
        for k, (crop, name) in enumerate(zip(crop_detections(frame.image, found), found.class_name)):
            target = self.folder / _safe_name(name) / stem.parent / f"{stem.name}_{k}.jpg"
            write_image(target, crop, overwrite=self.overwrite)


def _safe_name(name: str) -> str:
    """A class name usable as one folder name inside the crops folder: "traffic light" stays, "a/b"
    becomes "a_b", and names of dots only ("..", ".") or with leading dots lose them, so a class name
    from a model or data file never points outside the folder.

    >>> [_safe_name(n) for n in ("traffic light", "a/b", "..", "../x", ".hidden")]
    ['traffic light', 'a_b', 'unnamed', '_x', 'hidden']
    """
    safe = "".join(c if c.isalnum() or c in " -_." else "_" for c in str(name)).strip()
    return safe.lstrip(".").strip() or "unnamed"


def _detection_sets(data, classes, holdout, seed, quiet=False):
    """Load and merge DATA folders; with ``holdout``, the (train, held_out) split, else (all, None)."""
    from cvapps.detection.data import split_detection
    from cvapps.detection.formats import load_detection_sets

    names = [c.strip() for c in classes.split(",")] if classes else None
    merged = load_detection_sets(list(data), names)
    warn_each(merged.problems, quiet)
    return split_detection(merged, holdout, seed) if holdout else (merged, None)


def run_eval_detect(
    data: tuple[str, ...],
    model_name: str,
    report_options: ReportOptions,
    *,
    classes: str | None = None,
    holdout: float | str | None = None,
    seed: int | None = None,
    pr_curve: str | None = None,
    by_source: bool = False,
    truths: Sequence[str] = (),
) -> dict:
    """``cvapps eval detect``: print and save the report (and the PR curves as a PNG). ``holdout``: a
    fraction, or ``"model"`` (the split the model recorded in training; a teacher records none).
    ``model_name``: a cvapps detector or an ONNX teacher (YOLOX or NanoDet layout). ``by_source``: also
    score the images of each DATA folder apart (``metrics["by_source"]``, keyed by the DATA argument).
    ``truths``: folders whose labels score the same photos again (``metrics["by_truth"]``, keyed by folder)."""
    from cvapps.core.plots import pr_curve_image
    from cvapps.detection import evaluate_detector
    from cvapps.detection.evaluate import OPERATING_THRESHOLD
    from cvapps.nn.training import check_holdout, resolve_holdout

    started, quiet, json_path = time.time(), report_options.quiet, report_options.json_path
    check_destinations(report_options, pr_curve)
    model = _eval_model(model_name)
    recorded = None if _is_teacher(model) else model.info.settings.get("split")
    if holdout == "model" and _is_teacher(model):
        raise ValueError(
            f"--holdout alone scores the split the model recorded in training, but {model_name} is a teacher "
            f"({model.layout} layout), which records none; pass the split of the model it is compared with, "
            "--holdout FRACTION --seed N (the --val-fraction and --seed used in 'cvapps train detect')."
        )
    if holdout is not None:
        holdout, seed = resolve_holdout(recorded, holdout, seed)
    everything, held_out = _detection_sets(data, classes, holdout, seed or 0, quiet)
    if holdout:
        check_holdout(recorded, held_out)
    dataset = held_out if holdout else everything
    groups = _source_groups(data, dataset) if by_source else None
    metrics = evaluate_detector(
        model, dataset, progress=bar(quiet, "detecting", "img"), with_curves=True, groups=groups
    )
    curves = metrics.pop("pr_curves")
    if truths:
        metrics["by_truth"] = {}
        for folder in truths:
            relabelled = _relabelled(dataset, folder)
            scored = evaluate_detector(model, relabelled)
            metrics["by_truth"][str(folder)] = {
                "images": len(relabelled),
                **{k: scored[k] for k in ("map50", "map50_95", "size_recall")},
                "per_class": {n: row for n, row in scored["per_class"].items() if row["num_true"]},
            }
    warn_each(metrics.get("problems", ()), quiet)
    if pr_curve:
        write_image(pr_curve, pr_curve_image(curves), overwrite=report_options.overwrite)
    report = eval_report(
        "detect", model_name, " + ".join(map(str, data)), holdout, seed or 0, len(dataset), started, metrics
    )
    click.echo(f"map50 {metrics['map50']:.4f}   map50_95 {metrics['map50_95']:.4f}")
    click.echo(f"{'class':<16}{'ap50':>8}{'ap50_95':>9}{'precision':>10}{'recall':>8}{'boxes':>7}")
    for name, row in metrics["per_class"].items():
        click.echo(
            f"{name:<16}{row['ap50']:>8.4f}{row['ap50_95']:>9.4f}{row['precision']:>10.4f}{row['recall']:>8.4f}{row['num_true']:>7}"
        )
    if by_source:
        width = max(16, *(len(name) + 2 for name in metrics["by_source"]))
        click.echo(f"{'source':<{width}}{'images':>7}{'map50':>8}{'map50_95':>9}")
        for name, row in metrics["by_source"].items():
            click.echo(f"{name:<{width}}{row['images']:>7}{row['map50']:>8.4f}{row['map50_95']:>9.4f}")
    for folder, row in metrics.get("by_truth", {}).items():
        classes_text = ", ".join(f"{n} ap50 {r['ap50']:.4f} ({r['num_true']})" for n, r in row["per_class"].items())
        click.echo(
            f"against {folder}'s labels: {row['images']} images, map50 {row['map50']:.4f}   "
            f"map50_95 {row['map50_95']:.4f}" + (f"; {classes_text}" if classes_text else "")
        )
    click.echo(f"recall by size @{OPERATING_THRESHOLD}: {_size_recall_text(metrics['size_recall'])}")
    if json_path:
        write_json(json_path, report, overwrite=report_options.overwrite)
    return report


def _eval_model(model_name: str) -> Any:
    """The model ``eval detect`` scores: an ONNX file of the YOLOX or NanoDet layout opens as a
    :class:`cvapps.detection.label.Teacher`, anything else (names, .keras, cvapps .onnx) as a cvapps
    detector (an :class:`cvapps.runtime.OpenedModel`)."""
    from cvapps.runtime import open_model

    if Path(model_name).suffix.lower() == ".onnx" and Path(model_name).is_file():
        from cvapps.detection.label import open_teacher

        teacher = open_teacher(model_name)
        if teacher.layout != "cvapps":
            return teacher
    return open_model(model_name, task="detect", runtime="auto")


def _is_teacher(model: Any) -> bool:
    from cvapps.detection.label import Teacher

    return isinstance(model, Teacher)


def _source_groups(data: Sequence[str], dataset: Any) -> dict[str, list[int]]:
    """{DATA argument: indices of ``dataset.samples`` whose image lies under it}: the longest matching folder
    wins (a file argument, a COCO .json or a data.yaml, stands for its folder). Paths are compared as loaded
    (absolute, links not followed: the images of a labelled YOLO folder are links to photos elsewhere), then,
    for an image under none, with links resolved."""
    import os

    def folders(transform):
        pairs = [(transform(Path(d).parent if Path(d).is_file() else Path(d)), str(d)) for d in data]
        return sorted(pairs, key=lambda pair: -len(pair[0].parts))

    as_given = folders(lambda p: Path(os.path.abspath(p)))
    resolved = folders(lambda p: p.resolve())
    groups: dict[str, list[int]] = {str(d): [] for d in data}
    for k, sample in enumerate(dataset.samples):
        path = Path(os.path.abspath(sample.path))
        owner = next((name for folder, name in as_given if path.is_relative_to(folder)), None)
        if owner is None:
            path = Path(sample.path).resolve()
            owner = next((name for folder, name in resolved if path.is_relative_to(folder)), None)
        if owner is None:
            raise ValueError(
                f"--by-source: the image {sample.path} lies under none of the DATA folders "
                f"({', '.join(map(str, data))}), so its source is unknown; pass the folders that hold the images, "
                "or leave out --by-source."
            )
        groups[owner].append(k)
    return groups


def _relabelled(dataset: Any, folder: str) -> Any:
    """The samples of ``dataset`` whose photo (the same file, links resolved) ``folder`` also labels, with
    ``folder``'s boxes instead, its classes mapped by name into ``dataset``'s (classes it lacks are dropped).

    Raises:
        ValueError: ``folder`` labels none of the photos (or none of its classes is in the data).
    """
    from cvapps.detection.data import DetectionData
    from cvapps.detection.formats import load_detection_sets

    truth = load_detection_sets([folder])
    names = list(dataset.class_names)
    lookup = np.array([names.index(n) if n in names else -1 for n in truth.class_names], np.int64)
    if not (lookup >= 0).any():
        raise ValueError(
            f"--truth {folder}: none of its classes ({', '.join(truth.class_names)}) is a class of the data scored; "
            "name the classes alike (e.g. person)."
        )
    by_photo = {Path(s.path).resolve(): s for s in truth.samples}
    samples = []
    for sample in dataset.samples:
        own = by_photo.get(Path(sample.path).resolve())
        if own is not None:
            ids = lookup[own.class_ids] if len(own.class_ids) else np.zeros(0, np.int64)
            samples.append(own.keep(ids >= 0, ids[ids >= 0]))
    if not samples:
        raise ValueError(
            f"--truth {folder}: it labels none of the {len(dataset)} photos scored (compared as files, links "
            "resolved); give the folder that holds the same photos."
        )
    return DetectionData(samples, tuple(names), list(truth.problems))


def _size_recall_text(size_recall: dict[str, dict[str, Any]]) -> str:
    """``small 0.41 (123), medium 0.62 (300), large 0.80 (210)``: recall (number of truth boxes); ``-`` for none."""
    return ", ".join(
        f"{name} {'-' if row['recall'] is None else format(row['recall'], '.2f')} ({row['num_true']})"
        for name, row in size_recall.items()
    )


def run_webcam_detect(
    model_name: str | OpenedModel,
    options: DetectOptions,
    webcam: WebcamOptions,
    *,
    runtime: str = "auto",
    tracking: TrackingOptions | None = None,
) -> LoopStats:
    """``cvapps webcam detect``: live boxes over a camera, video or stream; ``options`` a DetectOptions;
    with ``tracking``, ids, trails, line counts and zone counts on the frames."""
    from cvapps.runtime import open_model

    model = open_model(model_name, task="detect", runtime=runtime)
    options.run(np.zeros((8, 8, 3), np.uint8), model)  # check --classes and thresholds before opening the camera
    counting = Counting(tracking or TrackingOptions(), options.confidence_threshold)

    def process(image):
        [found] = options.run(image, model, track=counting.tracker)
        counting.update(found, image.shape)
        return counting.draw(image, found)

    stats = run_webcam_loop(process, webcam)
    if not webcam.quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS ({stats.dropped} stale frames dropped)"
        )
        for line in counting.summary():
            click.echo(line)
    return stats
