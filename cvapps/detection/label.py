"""Auto-annotation: a teacher detector labels photos into a YOLO folder that ``cvapps train detect`` reads.

    >>> from cvapps.detection.label import auto_label, open_teacher
    >>> teacher = open_teacher("yolox_nano_416.onnx")                      # doctest: +SKIP
    >>> report = auto_label("photos/", teacher, "labelled/", confidence_threshold=0.4)  # doctest: +SKIP
    >>> report.boxes_per_class["person"]                                   # doctest: +SKIP
    412

    cvapps label detect photos/ --teacher yolox_nano_416.onnx --output labelled/ --confidence-threshold 0.4

Teachers (:func:`open_teacher` tells them apart by their inputs and outputs):

- a cvapps detector (shipped name, ``.keras``, or ``.onnx`` exported by ``cvapps export``);
- an ONNX file of the **YOLOX** export layout: one input [1, 3, S, S] (BGR 0-255, no normalisation,
  letterboxed to the top-left corner with pad value 114), one output [1, N, 5 + C] per cell of the
  stride 8, 16, 32 grids (row-major): (dx, dy, log w, log h, objectness, C class scores), scores already
  sigmoid; centre = (d + grid) * stride, size = exp(.) * stride, score = objectness * class score;
- an ONNX file of the **NanoDet** export layout: one input [1, 3, S, S] (BGR, (x - mean) / std with
  mean (103.53, 116.28, 123.675) and std (57.375, 57.12, 58.395), plainly resized to S x S), six
  outputs: three class-score maps [N, C] (sigmoid already applied) and three box maps [N, 4 * B] for
  strides 8, 16, 32 (grouped by shape, since export tools shuffle their names); each side's B bins
  are soft-maxed and their expectation times the stride is the distance from the cell centre
  (x * s + (s - 1) / 2).

Class names of an ONNX teacher come from a names file beside it (``<stem>.names`` or ``classes.txt``:
one name per line), else, for C = 80, the COCO names in their standard spelling
(:data:`cvapps.core.data.COCO_NAMES`, so labels merge with COCO-format data), else ``coco.names``.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvapps.detection.predict import Detections

TEACHER_LAYOUTS = ("cvapps", "yolox", "nanodet")
NANODET_MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # BGR
NANODET_STD = np.array([57.375, 57.12, 58.395], np.float32)
STRIDES = (8, 16, 32)
LAYOUT_HELP = (
    "cvapps label takes a cvapps detector (a shipped name, .keras or an .onnx from 'cvapps export'), or an ONNX "
    "file of the YOLOX layout (one input [1, 3, S, S], one output [1, N, 5 + C]) or of the NanoDet layout "
    "(six outputs: three [N, C] score maps and three [N, 32] box maps)"
)


@dataclass(frozen=True)
class Teacher:
    """An opened teacher detector.

    Attributes:
        name: the file's name (or the shipped model's name).
        layout: one of :data:`TEACHER_LAYOUTS`.
        class_names: its classes, in class-id order.
        input_size: the square input side S of an ONNX teacher (cvapps detectors: their own).
    """

    name: str
    layout: str
    class_names: tuple[str, ...]
    input_size: int
    _run: Callable[[np.ndarray, float, float], Detections] = field(repr=False, compare=False)

    def __call__(
        self, image: np.ndarray, confidence_threshold: float = 0.25, iou_threshold: float = 0.45
    ) -> Detections:
        """Detections on one (H, W, 3) uint8 RGB image, boxes in its pixels (xyxy)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"an image must be (H, W, 3) uint8 RGB; received {image.dtype} of shape {image.shape}.")
        return self._run(image, confidence_threshold, iou_threshold)


def open_teacher(teacher: str | Path) -> Teacher:
    """Open a teacher detector: a cvapps detector, or an ONNX file of the YOLOX or NanoDet layout.

    Raises:
        ValueError: no such file, or an ONNX file of another layout (the message names the layouts).
    """
    text = str(teacher)
    path = Path(text)
    if path.suffix.lower() != ".onnx":  # a shipped name or a .keras: a cvapps detector
        return _cvapps_teacher(text)
    if not path.is_file():
        raise ValueError(f"{text}: no such teacher file. {LAYOUT_HELP}.")
    import onnxruntime

    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # exporters' "initializer in graph inputs" notes are not the user's concern
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types for a file it cannot parse
        raise ValueError(
            f"{text}: not an ONNX model onnxruntime can load ({str(error)[:100]}). {LAYOUT_HELP}."
        ) from None
    from cvapps.runtime import read_onnx_metadata

    if read_onnx_metadata(session) is not None:
        return _cvapps_teacher(text)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape if len(inputs) == 1 else None
    if not shape or len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int) or shape[2] != shape[3]:
        found = ", ".join(f"{i.name} {i.shape}" for i in inputs)
        raise ValueError(f"{text}: inputs {found}; expected one [1, 3, S, S] image input. {LAYOUT_HELP}.")
    size = int(shape[2])
    cells = sum((size // s) ** 2 for s in STRIDES)
    if len(outputs) == 1 and _last(outputs[0].shape) and _last(outputs[0].shape) > 5:
        classes = _last(outputs[0].shape) - 5
        names = _class_names(path, classes)
        return Teacher(path.name, "yolox", names, size, _yolox_runner(session, size, names))
    if len(outputs) == 6:
        widths = sorted({_last(o.shape) for o in outputs})
        if len(widths) == 2 and 32 in widths:
            classes = widths[0] if widths[1] == 32 else widths[1]
            names = _class_names(path, classes)
            return Teacher(path.name, "nanodet", names, size, _nanodet_runner(session, size, names))
    found = ", ".join(f"{o.name} {o.shape}" for o in outputs)
    raise ValueError(f"{text}: outputs {found} (input {size}x{size}, {cells} cells); an unknown layout. {LAYOUT_HELP}.")


def _last(shape):
    value = shape[-1] if shape else None
    return value if isinstance(value, int) else None


def _class_names(path, count):
    candidates = [path.with_suffix(".names"), path.parent / "classes.txt"]
    if count != 80:  # an 80-class coco.names (often in darknet spelling) names the COCO classes: standard names
        candidates.append(path.parent / "coco.names")
    for candidate in candidates:
        if candidate.is_file():
            names = [line.strip() for line in candidate.read_text(encoding="utf-8").splitlines() if line.strip()]
            if len(names) != count:
                raise ValueError(
                    f"{candidate}: {len(names)} class names, but the teacher {path.name} has {count} classes."
                )
            return tuple(names)
    if count == 80:
        from cvapps.core.data import COCO_NAMES

        return tuple(COCO_NAMES)
    raise ValueError(
        f"{path.name} has {count} classes and no names file beside it; put one name per line in "
        f"{path.with_suffix('.names').name}."
    )


def _cvapps_teacher(model):
    from cvapps.detection.predict import detect
    from cvapps.runtime import open_model

    opened = open_model(model, task="detect")

    def run(image, confidence_threshold, iou_threshold):
        [found] = detect(image, opened, confidence_threshold=confidence_threshold, iou_threshold=iou_threshold)
        return found

    return Teacher(Path(str(model)).name, "cvapps", tuple(opened.info.class_names), int(opened.info.image_size), run)


def _cell_centres(size, stride):
    """(cells, 2) (column, row) of a stride's grid, row-major."""
    side = size // stride
    rows, columns = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    return np.stack([columns.ravel(), rows.ravel()], axis=1).astype(np.float32)


def _select(boxes, scores, names, confidence_threshold, iou_threshold, width, height):
    """Best class per box, the threshold, class-aware NMS, boxes clipped to the image -> Detections."""
    from cvapps.core.boxes import clip_boxes, nms

    class_id = scores.argmax(axis=1)
    confidence = scores[np.arange(len(scores)), class_id]
    keep = np.flatnonzero(confidence >= confidence_threshold)
    kept = keep[nms(boxes[keep], confidence[keep], iou_threshold, class_ids=class_id[keep], max_detections=300)]
    xyxy = clip_boxes(boxes[kept], width, height)
    inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return Detections(xyxy[inside], confidence[kept][inside], class_id[kept][inside], names)


def _yolox_runner(session, size, names):
    import cv2

    grid = np.concatenate([_cell_centres(size, s) for s in STRIDES])
    stride = np.concatenate([np.full((len(_cell_centres(size, s)), 1), s, np.float32) for s in STRIDES])
    input_name = session.get_inputs()[0].name

    def run(image, confidence_threshold, iou_threshold):
        height, width = image.shape[:2]
        ratio = min(size / height, size / width)
        resized = cv2.resize(image, (max(1, round(width * ratio)), max(1, round(height * ratio))))
        canvas = np.full((size, size, 3), 114, np.uint8)  # letterboxed to the top-left corner
        canvas[: resized.shape[0], : resized.shape[1]] = resized[..., ::-1]  # RGB -> BGR
        raw = session.run(None, {input_name: canvas.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
        if len(raw) != len(grid):
            raise ValueError(f"the YOLOX teacher returned {len(raw)} cells; its {size}x{size} grids have {len(grid)}.")
        centre = (raw[:, :2] + grid) * stride
        half = np.exp(np.minimum(raw[:, 2:4], 20.0)) * stride / 2  # wh = exp(.) * stride
        boxes = np.concatenate([centre - half, centre + half], axis=1) / ratio
        scores = raw[:, 4:5] * raw[:, 5:]  # objectness x class score (both already sigmoid)
        return _select(boxes, scores, names, confidence_threshold, iou_threshold, width, height)

    return run


def _nanodet_runner(session, size, names):
    import cv2

    input_name = session.get_inputs()[0].name
    classes = len(names)

    def run(image, confidence_threshold, iou_threshold):
        height, width = image.shape[:2]
        bgr = cv2.resize(image, (size, size))[..., ::-1].astype(np.float32)
        blob = ((bgr - NANODET_MEAN) / NANODET_STD).transpose(2, 0, 1)[None]
        results = [r.reshape(-1, r.shape[-1]) for r in session.run(None, {input_name: blob})]
        by_cells = {}
        for result in results:
            by_cells.setdefault(len(result), {})["scores" if result.shape[1] == classes else "boxes"] = result
        all_boxes, all_scores = [], []
        for s in STRIDES:
            cells = (size // s) ** 2
            if cells not in by_cells or len(by_cells[cells]) != 2:
                raise ValueError(f"the NanoDet teacher has no score and box maps of {cells} cells for stride {s}.")
            scores, sides = by_cells[cells]["scores"], by_cells[cells]["boxes"]
            bins = sides.reshape(len(sides), 4, -1)
            bins = np.exp(bins - bins.max(axis=2, keepdims=True))
            bins /= bins.sum(axis=2, keepdims=True)  # softmax over the bins of each side
            distance = (bins * np.arange(bins.shape[2], dtype=np.float32)).sum(axis=2) * s  # (cells, 4): l, t, r, b
            centre = _cell_centres(size, s) * s + (s - 1) / 2
            all_boxes.append(np.concatenate([centre - distance[:, :2], centre + distance[:, 2:]], axis=1))
            all_scores.append(scores)
        boxes = np.concatenate(all_boxes) * np.array([width, height, width, height], np.float32) / size
        return _select(boxes, np.concatenate(all_scores), names, confidence_threshold, iou_threshold, width, height)

    return run


@dataclass(frozen=True)
class LabelReport:
    """What :func:`auto_label` wrote.

    Attributes:
        output: the YOLO folder (``images/``, ``labels/``, ``data.yaml``).
        teacher: the teacher's name; class_names: the names written to ``data.yaml``.
        images: images labelled (those with no box get an empty label file: negatives).
        boxes_per_class: class name -> boxes written.
        skipped: one line per input that could not be read.
    """

    output: Path
    teacher: str
    class_names: tuple[str, ...]
    images: int
    boxes_per_class: dict[str, int]
    skipped: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "teacher": self.teacher,
            "class_names": list(self.class_names),
            "images": self.images,
            "boxes": sum(self.boxes_per_class.values()),
            "boxes_per_class": dict(self.boxes_per_class),
            "skipped": list(self.skipped),
        }


def auto_label(
    source: str | Path | Sequence[str | Path],
    teacher: Teacher | str | Path,
    output: str | Path,
    *,
    confidence_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    classes: Iterable[str] | None = None,
    copy: bool = False,
    overwrite: bool = False,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> LabelReport:
    """Label the photos of ``source`` with ``teacher`` into the YOLO folder ``output``.

    Writes ``output/images/<path>`` (a symbolic link to the photo, or a copy with ``copy=True``),
    ``output/labels/<path>.txt`` (one ``class cx cy w h`` line per box, normalised to 0-1; an empty
    file for a photo with no box, so it trains as a negative) and ``output/data.yaml`` (``names``),
    ``<path>`` being the photo's path below the deepest folder holding all the photos.

    Args:
        source: an image, a folder (recursive), a glob, or a list of them.
        teacher: an opened :class:`Teacher` or what :func:`open_teacher` takes.
        confidence_threshold: keep only boxes the teacher scores at least this (pseudo-labels want a
            high one: a missed box teaches less harm than a wrong one).
        classes: class names to keep (their ids are renumbered 0.. in the given order); default all.
        copy: copy the photos instead of linking to them.
        overwrite: write into an ``output`` that already holds a ``data.yaml`` or labels.

    Returns:
        :class:`LabelReport`.

    Raises:
        ValueError: an unknown class name, no readable photo, or an ``output`` in use (without ``overwrite``).
    """
    from cvapps.core.sinks import check_writable, common_folder
    from cvapps.core.sources import read_image, resolve_source

    if not 0 <= confidence_threshold <= 1:
        raise ValueError(f"confidence_threshold must be in [0, 1], received {confidence_threshold!r}.")
    teacher = teacher if isinstance(teacher, Teacher) else open_teacher(teacher)
    keep = list(teacher.class_names) if classes is None else [str(c) for c in classes]
    unknown = [c for c in keep if c not in teacher.class_names]
    if unknown:
        raise ValueError(
            f"the teacher {teacher.name} has no class {unknown[0]!r}; its classes: {', '.join(teacher.class_names)}."
        )
    new_id = {teacher.class_names.index(c): k for k, c in enumerate(keep)}
    paths = []
    for item in [source] if isinstance(source, (str, Path)) else list(source):
        kind, found = resolve_source(item)
        if kind != "images":
            raise ValueError(f"{item}: label photos (files, folders or globs), not a {kind}.")
        paths += [Path(p) for p in found]
    output = Path(output)
    if (output / "data.yaml").exists() and not overwrite:
        raise ValueError(f"{output} already holds a data.yaml; pass --overwrite (overwrite=True) or another --output.")
    check_writable(output, folder=True)
    root = common_folder(paths) if len(paths) > 1 else None
    counts, skipped, images = Counter(), [], 0
    items = progress(paths, len(paths)) if progress else paths
    for path in items:
        try:
            image = read_image(path)
        except ValueError as error:
            skipped.append(str(error))
            continue
        found = teacher(image, confidence_threshold, iou_threshold)
        relative = _relative(path, root)
        lines = []
        height, width = image.shape[:2]
        for box, class_id in zip(found.xyxy, found.class_id):
            if int(class_id) not in new_id:
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
            lines.append(f"{new_id[int(class_id)]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
            counts[keep[new_id[int(class_id)]]] += 1
        _place_image(path, output / "images" / relative, copy)
        label = (output / "labels" / relative).with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        images += 1
    if not images:
        raise ValueError(f"{source}: no readable photos to label ({len(skipped)} unreadable).")
    import yaml

    from cvapps.core.sinks import write_text

    names = {"path": ".", "train": "images", "val": "images", "names": dict(enumerate(keep))}
    header = f"# labelled by {teacher.name} (cvapps label detect)\n"
    write_text(output / "data.yaml", header + yaml.safe_dump(names, sort_keys=False), overwrite=True)
    return LabelReport(output, teacher.name, tuple(keep), images, {c: counts.get(c, 0) for c in keep}, skipped)


def _relative(path, root):
    if root is not None:
        try:
            return path.relative_to(root)
        except ValueError:
            pass
    return Path(path.name)


def _place_image(path, target, copy):
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    if copy:
        shutil.copy2(path, target)
    else:
        os.symlink(Path(path).resolve(), target)
