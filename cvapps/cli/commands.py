"""Bodies of the CLI commands: they print, show progress and write files; the library does not.

Kept apart from :mod:`cvapps.cli` so that ``cvapps --help`` imports nothing heavy.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from cvapps.core.sinks import ImageSink, JsonLinesSink, VideoSink, write_image, write_json
from cvapps.core.sources import VIDEO_SUFFIXES, open_source


def batched(iterable, size):
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

    def __init__(self, source, output, json_path, overwrite):
        self.source, self.failures = source, 0
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

    def frames(self, quiet):
        """The source's decoded frames, with a progress bar; a frame that failed to decode is
        reported on stderr and counted in ``failures`` (the command's exit code says so)."""
        for frame in progress(self.source.frames(), quiet, self.source.count()):
            if frame.error:
                self.failures += 1
                click.echo(f"error: {frame.error}", err=True)
                continue
            yield frame

    @property
    def wants_images(self):
        return bool(self.images or self.video)

    def write(self, annotated, frame):
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


@dataclass(frozen=True)
class ClassifyOptions:
    """What ``cvapps classify`` and ``cvapps webcam classify`` pass to the classifier's post-processing."""

    top_k: int = 5
    min_confidence: float = 0.0  # below it, the label is "unknown"
    group: bool = False  # fold ImageNet classes into parents ("dog", "car", ...)


def classify_frames(model, images, options: ClassifyOptions, sources):
    """(N, S, S, 3) batch -> N :class:`cvapps.classification.Classification`, with the options applied."""
    from cvapps.classification import predict_probabilities, results_from_probabilities

    probabilities = predict_probabilities(model, images, len(images))
    return results_from_probabilities(
        probabilities,
        model.info.class_names,
        sources,
        top_k=options.top_k,
        min_confidence=options.min_confidence,
        group=options.group,
    )


def result_lines(result):
    """Printed / drawn lines of one classification: the label first when it is "unknown"."""
    pairs = [f"{n} {s:.2f}" for n, s in zip(result.class_names, result.scores)]
    return (["unknown"] if result.unknown else []) + pairs


def run_classify(
    source, model_name, options: ClassifyOptions, output, overwrite, json_path, batch_size, quiet, runtime="auto"
):
    """``cvapps classify``: returns the number of inputs that failed."""
    from cvapps.core.annotate import draw_text_lines
    from cvapps.core.sources import resize_square
    from cvapps.runtime import open_model

    source = open_source(source)
    outputs = Outputs(source, output, json_path, overwrite)
    model = open_model(model_name, task="classify", runtime=runtime)  # a name, a path or an opened model
    info = model.info
    name = info.name
    if options.group:  # fail before reading any image when the model cannot group
        from cvapps.classification import group_classes

        group_classes(np.zeros((0, len(info.class_names))), info.class_names)
    with outputs:
        for good in batched(outputs.frames(quiet), batch_size):
            started = time.perf_counter()
            batch = np.stack([resize_square(f.image, info.image_size) for f in good])
            results = classify_frames(model, batch, options, [f.source for f in good])
            milliseconds = (time.perf_counter() - started) * 1000 / len(good)
            for frame, result in zip(good, results):
                if outputs.records:
                    outputs.records.write(
                        {
                            "source": frame.source,
                            "frame": frame.index,
                            "task": "classify",
                            "model": name,
                            "runtime": model.runtime,
                            "top_k": options.top_k,
                            "label": result.label,
                            "results": result.to_dict(),
                            "milliseconds": round(milliseconds, 3),
                        }
                    )
                if json_path != "-":
                    label = f"{frame.source}" + (f"[{frame.index}]" if outputs.is_video else "")
                    head = "unknown; " if result.unknown else ""
                    click.echo(
                        f"{label}: {head}"
                        + ", ".join(f"{n} {s:.3f}" for n, s in zip(result.class_names, result.scores))
                    )
                if outputs.wants_images:
                    outputs.write(draw_text_lines(frame.image, result_lines(result)), frame)
    return outputs.failures


@dataclass(frozen=True)
class DetectOptions:
    """What ``cvapps detect`` and ``cvapps webcam detect`` pass to :func:`cvapps.detection.detect`."""

    confidence_threshold: float = 0.25
    iou_threshold: float = 0.45
    classes: tuple | None = None
    class_thresholds: dict | None = None
    max_detections: int = 300

    @classmethod
    def from_cli(cls, confidence_threshold, iou_threshold, classes, class_thresholds, max_detections=300):
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

    def run(self, images, model):
        from cvapps.detection import detect

        return detect(
            images,
            model,
            confidence_threshold=self.confidence_threshold,
            iou_threshold=self.iou_threshold,
            classes=self.classes,
            max_detections=self.max_detections,
            class_thresholds=self.class_thresholds,
        )


def run_detect(source, model_name, options, output, overwrite, json_path, quiet, runtime="auto", save_crops=None):
    """``cvapps detect``: returns the number of inputs that failed."""
    from cvapps.core.annotate import draw_detections
    from cvapps.runtime import open_model

    source = open_source(source)
    outputs = Outputs(source, output, json_path, overwrite)
    model = open_model(model_name, task="detect", runtime=runtime)
    options.run(np.zeros((8, 8, 3), np.uint8), model)  # check --classes and thresholds before any work
    crops = CropSink(save_crops, overwrite) if save_crops else None
    with outputs:
        for frame in outputs.frames(quiet):
            started = time.perf_counter()
            [found] = options.run(frame.image, model)
            milliseconds = (time.perf_counter() - started) * 1000
            if outputs.records:
                outputs.records.write(
                    {
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
                        "milliseconds": round(milliseconds, 3),
                    }
                )
            if json_path != "-":
                label = f"{frame.source}" + (f"[{frame.index}]" if outputs.is_video else "")
                names = ", ".join(f"{n} {c:.2f}" for n, c in zip(found.class_name, found.confidence))
                click.echo(f"{label}: {len(found)} found" + (f": {names}" if names else ""))
            if outputs.wants_images:
                outputs.write(draw_detections(frame.image, found), frame)
            if crops:
                crops.write(frame, found, outputs.is_video)
    return outputs.failures


class CropSink:
    """``--save-crops DIR``: each detection's pixels as ``DIR/<class>/<image stem>[_<frame>]_<k>.jpg``
    (k counts the detections of that image, best first)."""

    def __init__(self, folder, overwrite):
        self.folder, self.overwrite = Path(folder), overwrite
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"--save-crops {folder}: this is a file; give a folder.")

    def write(self, frame, found, is_video):
        from cvapps.detection import crop_detections

        stem = Path(str(frame.source)).stem + (f"_{frame.index:06d}" if is_video else "")
        for k, (crop, name) in enumerate(zip(crop_detections(frame.image, found), found.class_name)):
            write_image(self.folder / _safe_name(name) / f"{stem}_{k}.jpg", crop, overwrite=self.overwrite)


def _safe_name(name):
    """A class name usable as one folder name inside the crops folder: "traffic light" stays, "a/b"
    becomes "a_b", and names of dots only ("..", ".") or with leading dots lose them, so a class name
    from a model or data file never points outside the folder.

    >>> [_safe_name(n) for n in ("traffic light", "a/b", "..", "../x", ".hidden")]
    ['traffic light', 'a_b', 'unnamed', '_x', 'hidden']
    """
    safe = "".join(c if c.isalnum() or c in " -_." else "_" for c in str(name)).strip()
    return safe.lstrip(".").strip() or "unnamed"


def eval_report(task, model_name, data, holdout, seed, num_images, started, metrics):
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


def run_eval_classify(data, model_name, json_path, confusion_path, batch_size, quiet, holdout=None, seed=0):
    """``cvapps eval classify``: print and save the report. ``holdout`` scores only the
    stratified split that training carved out with the same fraction and seed."""
    from cvapps.classification import evaluate_classifier
    from cvapps.classification.data import load_classification, split_off
    from cvapps.core.plots import confusion_matrix_image
    from cvapps.models import load_model, model_info

    started = time.time()
    model = load_model(model_name, task="classify")
    info = model_info(model)
    dataset = load_classification(
        data, info.image_size, split="train" if holdout else "test", progress=bar(quiet, "reading", "img")
    )
    if holdout:
        _, dataset = split_off(dataset, holdout, seed)
    for message in dataset.skipped:
        click.echo(f"warning: skipped {message}", err=True)
    if len(dataset) == 0:
        raise ValueError(f"{data}: no readable images to evaluate.")
    metrics = evaluate_classifier(model, dataset, batch_size, progress=bar(quiet, "predicting", "batch"))
    report = eval_report("classify", model_name, str(data), holdout, seed, len(dataset), started, metrics)
    click.echo(f"top1 {metrics['top1']:.4f}   top5 {metrics['top5']:.4f}")
    click.echo(f"{'class':<16}{'precision':>10}{'recall':>10}{'support':>9}")
    for name, row in metrics["per_class"].items():
        click.echo(f"{name:<16}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['support']:>9}")
    classes = metrics["confusion_classes"]
    other = len(metrics["confusion"][0]) > len(classes) if metrics["confusion"] else False
    click.echo("confusion (rows true, columns predicted" + (", last column: any other class" if other else "") + "):")
    for name, row in zip(classes, metrics["confusion"]):
        click.echo(f"{name[:12]:<13}" + " ".join(f"{v:>5}" for v in row))
    if json_path:
        write_json(json_path, report)
        confusion_path = confusion_path or str(Path(json_path).with_suffix("")) + "_confusion.png"
    if confusion_path:
        columns = classes + (["other"] if other else [])
        write_image(confusion_path, confusion_matrix_image(metrics["confusion"], classes, columns), overwrite=True)
        click.echo(f"confusion matrix: {confusion_path}")
    return report


def progress(iterable, quiet, total=None, desc=None):
    """A progress bar on stderr, unless ``quiet`` or there is a single item."""
    if quiet or total == 1:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="img", file=sys.stderr, leave=False)


DEMO_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def demo_photos():
    """(name, RGB array) of real sample photos that install with scikit-image (no download)."""
    import skimage.data

    return [(name, getattr(skimage.data, name)()) for name in DEMO_PHOTOS]


def run_demo(output, overwrite, quiet):
    """``cvapps demo``: every finished app on the sample photos; annotated results in ``output``.

    Apps whose shipped model is missing (a trimmed install) are left out with a note."""
    from cvapps.models import shipped_models

    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise ValueError(f"{output} already holds files; pass --overwrite or name an empty or new folder.")
    shipped = shipped_models()
    photos = demo_photos()
    steps = [
        ("classify", "imagenet", _demo_classify),
        ("detect", "person", _demo_detect),
        ("segment", "person_seg", _demo_segment),
        ("faces", "faces", _demo_faces),
        ("style", "starry_night", _demo_style),
    ]
    written = []
    with JsonLinesSink(str(output / "results.jsonl"), overwrite=True) as records:
        for task, model_name, step in steps:
            if model_name not in shipped:
                click.echo(f"{task:<9} skipped: the shipped model {model_name!r} is not installed")
                continue
            for name, file_name, picture, record, line in step(photos, model_name):
                written.append(write_image(output / f"{task}_{file_name}.jpg", picture, overwrite=True))
                records.write(
                    {"source": f"skimage.data.{name}", "frame": 0, "task": task, "model": model_name, **record}
                )
                click.echo(f"{task:<9} {name:<10} {line}")
    click.echo(f"wrote {len(written)} annotated images and results.jsonl to {output}/")
    return written


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, round((time.perf_counter() - started) * 1000, 3)


DEMO_MIN_CONFIDENCE = 0.15  # the demo's "none of these": ImageNet has no astronaut class (her top class scores 0.07)


def _demo_classify(photos, model_name):
    """(name, file name, picture, record, printed line) per photo."""
    from cvapps.classification import classify
    from cvapps.core.annotate import draw_text_lines
    from cvapps.runtime import open_model

    model = open_model(model_name, task="classify")
    for name, image in photos:
        [result], milliseconds = _timed(classify, image, model=model, top_k=3, min_confidence=DEMO_MIN_CONFIDENCE)
        pairs = list(zip(result.class_names, result.scores))
        head = [f"{model_name}: unknown (top class below {DEMO_MIN_CONFIDENCE})"] if result.unknown else []
        picture = draw_text_lines(image, head + [f"{model_name}: {n} {s:.2f}" for n, s in pairs])
        record = {"label": result.label, "results": result.to_dict(), "milliseconds": milliseconds}
        yield (
            name,
            name,
            picture,
            record,
            ("unknown; " if result.unknown else "") + ", ".join(f"{n} {s:.2f}" for n, s in pairs),
        )


def _demo_detect(photos, model_name):
    from cvapps.core.annotate import draw_detections
    from cvapps.detection import detect
    from cvapps.runtime import open_model

    model = open_model(model_name, task="detect")
    for name, image in photos:
        [found], milliseconds = _timed(detect, image, model)
        names = ", ".join(f"{n} {c:.2f}" for n, c in zip(found.class_name, found.confidence))
        yield (
            name,
            name,
            draw_detections(image, found),
            {"results": found.to_dict(), "milliseconds": milliseconds},
            f"{len(found)} found" + (f": {names}" if names else ""),
        )


def _demo_segment(photos, model_name):
    from cvapps.runtime import open_model
    from cvapps.segmentation import blur_background, overlay, segment

    model = open_model(model_name, task="segment")
    for name, image in photos:
        [result], milliseconds = _timed(segment, image, model=model)
        share = {c: round(float(np.mean(result.labels == k)), 4) for k, c in enumerate(result.class_names)}
        record = {"results": {"pixel_share": share}, "milliseconds": milliseconds}
        line = ", ".join(f"{c} {v:.1%}" for c, v in share.items())
        yield name, name, overlay(image, result), record, line
        if name == "astronaut":
            yield name, f"{name}_blur", blur_background(image, result), record, "background blurred"


def _demo_faces(photos, model_name):
    """Faces found in each photo, and the astronaut verified against her mirror image."""
    from cvapps.core.annotate import draw_text_lines
    from cvapps.faces import FaceEncoder, verify

    encoder = FaceEncoder(model_name)
    for name, image in photos:
        faces, _ = encoder.encode(image)
        if not faces:
            continue
        mirror = np.ascontiguousarray(image[:, ::-1])
        result, milliseconds = _timed(verify, image, mirror, encoder)
        picture = _draw_face_boxes(image, [f.box for f in faces])
        answer = "same person" if result.verified else "different people"
        text = f"vs mirror: {answer} (distance {result.distance:.2f}, threshold {result.threshold:.2f})"
        yield (
            name,
            name,
            draw_text_lines(picture, [f"{len(faces)} face(s)", text]),
            {"results": result.to_dict(), "milliseconds": milliseconds},
            f"{len(faces)} face(s); {text}",
        )


def _draw_face_boxes(image, boxes):
    import cv2

    picture = image.copy()
    for x1, y1, x2, y2 in np.asarray(boxes, float).round().astype(int):
        cv2.rectangle(picture, (x1, y1), (x2, y2), (40, 220, 40), max(2, image.shape[0] // 200))
    return picture


def _demo_style(photos, model_name):
    from cvapps.style import stylize

    for name, image in photos:
        result, milliseconds = _timed(stylize, image, style=model_name)
        yield (
            name,
            name,
            result.image,
            {"results": {"style": result.style, "method": result.method}, "milliseconds": milliseconds},
            f"{model_name} in {milliseconds:.0f} ms",
        )


def run_webcam_classify(
    source, model_name, options: ClassifyOptions, show, output, overwrite, max_frames, quiet, runtime="auto"
):
    """``cvapps webcam classify``: live top-k labels over a camera or video."""
    from cvapps.core.annotate import draw_text_lines
    from cvapps.core.sources import resize_square
    from cvapps.core.webcam import run_loop
    from cvapps.runtime import open_model

    model = open_model(model_name, task="classify", runtime=runtime)
    info = model.info
    if options.group:
        from cvapps.classification import group_classes

        group_classes(np.zeros((0, len(info.class_names))), info.class_names)

    def process(image):
        [result] = classify_frames(model, resize_square(image, info.image_size)[None], options, ["frame"])
        return draw_text_lines(image, result_lines(result))

    stats = run_loop(source, process, show=show, output=output, overwrite=overwrite, max_frames=max_frames)
    if not quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS ({stats.dropped} stale frames dropped)"
        )
    return stats


def bar(quiet, desc, unit):
    """A ``progress(iterable, total)`` callable drawing a tqdm bar on stderr, or None if quiet."""
    if quiet:
        return None
    from tqdm import tqdm

    return lambda iterable, total: tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def _detection_sets(data, classes, holdout, seed):
    """Load and merge DATA folders; with ``holdout``, the (train, held_out) split, else (all, None)."""
    from cvapps.detection.data import split_detection
    from cvapps.detection.formats import load_detection_sets

    names = [c.strip() for c in classes.split(",")] if classes else None
    merged = load_detection_sets(list(data), names)
    for problem in merged.problems:
        click.echo(f"warning: {problem}", err=True)
    return split_detection(merged, holdout, seed) if holdout else (merged, None)


def run_train_detect(data, output, classes, val_fraction, seed, quiet, options):
    """``cvapps train detect``."""
    from cvapps.detection import fit_anchors, train_detector

    started = time.time()
    train, val = _detection_sets(data, classes, val_fraction, seed)
    anchors, mean_best_iou = fit_anchors(train, options["image_size"], seed=seed)
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
        verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
        **options,
    )
    from cvapps.cli.common import report_reused

    report_reused(result)
    click.echo(f"saved {output} after {time.time() - started:.0f} s")


def run_eval_detect(data, model_name, classes, holdout, seed, json_path, quiet, pr_curve=None):
    """``cvapps eval detect``: print and save the report (and the PR curves as a PNG)."""
    from cvapps.core.plots import pr_curve_image
    from cvapps.detection import evaluate_detector

    started = time.time()
    everything, held_out = _detection_sets(data, classes, holdout, seed)
    dataset = held_out if holdout else everything
    metrics = evaluate_detector(model_name, dataset, progress=bar(quiet, "detecting", "img"), with_curves=True)
    curves = metrics.pop("pr_curves")
    if pr_curve:
        write_image(pr_curve, pr_curve_image(curves), overwrite=True)
    report = eval_report(
        "detect", model_name, " + ".join(map(str, data)), holdout, seed, len(dataset), started, metrics
    )
    click.echo(f"map50 {metrics['map50']:.4f}   map50_95 {metrics['map50_95']:.4f}")
    click.echo(f"{'class':<16}{'ap50':>8}{'ap50_95':>9}{'precision':>10}{'recall':>8}{'boxes':>7}")
    for name, row in metrics["per_class"].items():
        click.echo(
            f"{name:<16}{row['ap50']:>8.4f}{row['ap50_95']:>9.4f}{row['precision']:>10.4f}{row['recall']:>8.4f}{row['num_true']:>7}"
        )
    if json_path:
        write_json(json_path, report)
    return report


def run_webcam_detect(source, model_name, options, show, output, overwrite, max_frames, quiet, runtime="auto"):
    """``cvapps webcam detect``: live boxes over a camera or video; ``options`` a DetectOptions."""
    from cvapps.core.annotate import draw_detections
    from cvapps.core.webcam import run_loop
    from cvapps.runtime import open_model

    model = open_model(model_name, task="detect", runtime=runtime)
    options.run(np.zeros((8, 8, 3), np.uint8), model)  # check --classes and thresholds before opening the camera

    def process(image):
        [found] = options.run(image, model)
        return draw_detections(image, found)

    stats = run_loop(source, process, show=show, output=output, overwrite=overwrite, max_frames=max_frames)
    if not quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS ({stats.dropped} stale frames dropped)"
        )
    return stats
