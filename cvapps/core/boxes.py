"""Boxes: formats, YOLO label lines, IoU variants, non-max suppression and anchors, in NumPy.

One internal format everywhere: **xyxy in pixels, float32, shape (N, 4)** with ``x1 <= x2`` and
``y1 <= y2``. Other formats exist only at the edges: :func:`to_xyxy` / :func:`from_xyxy` for
``"xywh"`` (top-left corner + size) and ``"cxcywh"`` (centre + size), :func:`normalize` /
:func:`denormalize` for coordinates divided by the image width and height, and
:func:`parse_yolo_labels` / :func:`format_yolo_labels` for YOLO label lines ``class cx cy w h``.
This module imports NumPy only, so it works without TensorFlow.

    >>> import numpy as np
    >>> from cvapps.core import boxes
    >>> text = "0 0.5 0.5 0.5 0.5\\n1 0.52 0.5 0.5 0.5\\n2 0.5 0.5 -1 0.2\\n"
    >>> xyxy, class_ids, problems = boxes.parse_yolo_labels(text, image_width=200, image_height=100)
    >>> xyxy.tolist(), class_ids.tolist()
    ([[50.0, 25.0, 150.0, 75.0], [54.0, 25.0, 154.0, 75.0]], [0, 1])
    >>> problems                                     # a loader prints f"{path}: {problem}" and goes on
    ['line 3: width and height must be > 0, got w=-1 h=0.2; line skipped']
    >>> round(float(boxes.box_iou(xyxy[:1], xyxy[1:])[0, 0]), 3)   # 4800 / (5000 + 5000 - 4800)
    0.923
    >>> scores = np.array([0.9, 0.8], np.float32)
    >>> boxes.nms(xyxy, scores, iou_threshold=0.45).tolist()         # same class: the weaker one goes
    [0]
    >>> boxes.nms(xyxy, scores, iou_threshold=0.45, class_ids=class_ids).tolist()  # per class: both stay
    [0, 1]
    >>> boxes.format_yolo_labels(xyxy[:1], class_ids[:1], image_width=200, image_height=100)
    '0 0.5 0.5 0.5 0.5\\n'
    >>> anchors, grid = np.array([[64, 32]], np.float32), np.array([[12, 6]])  # centre (100, 50) / stride 8
    >>> offsets = boxes.encode(xyxy[:1], anchors, grid, stride=8)            # YOLOv5 t_x, t_y, t_w, t_h
    >>> boxes.decode(offsets, anchors, grid, stride=8).round(3).tolist()
    [[50.0, 25.0, 150.0, 75.0]]

Anchors: :func:`anchor_grid` lays anchors over a feature map, :func:`kmeans_anchors` fits k anchor
sizes to a data set's boxes with the 1 - IoU distance (YOLOv2), and :func:`encode` /
:func:`decode` map boxes to and from YOLOv5's bounded offsets (formulas in their docstrings).
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

FORMATS = ("xyxy", "xywh", "cxcywh")
NMS_METHODS = ("gaussian", "linear")

# ----------------------------------------------------------------------------------------------
# Checking inputs
# ----------------------------------------------------------------------------------------------


def _as_array(values, name, trailing=None, ndim=None):
    """``values`` as a NumPy array of its own numeric dtype, checked finite and shaped as asked.

    ``ndim`` fixes the number of dimensions, ``trailing`` the size of the last one.
    """
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be a numeric array, received dtype {array.dtype}; pass numbers (e.g. a float32 array)."
        )
    wrong_rank = ndim is not None and array.ndim != ndim
    if wrong_rank or (trailing is not None and (array.ndim == 0 or array.shape[-1] != trailing)):
        expected = {1: "(N,)", 2: f"(N, {trailing})"}.get(ndim, f"(..., {trailing})")
        hint = "; one box is [[x1, y1, x2, y2]], no boxes np.zeros((0, 4))" if trailing == 4 and ndim == 2 else ""
        raise ValueError(f"{name} must have shape {expected}, received shape {array.shape}{hint}.")
    if not np.isfinite(array).all():
        where = np.argwhere(~np.isfinite(array))[0].tolist()
        raise ValueError(
            f"{name} holds NaN or inf (first at index {where}); expected finite numbers, drop or fix those entries."
        )
    return array


def _as_xyxy(boxes, name="boxes"):
    """(N, 4) float32 xyxy boxes; ValueError when a box has x2 < x1 or y2 < y1."""
    array = _as_array(boxes, name, trailing=4, ndim=2).astype(np.float32, copy=False)
    inverted = (array[:, 2] < array[:, 0]) | (array[:, 3] < array[:, 1])
    if inverted.any():
        row = int(np.flatnonzero(inverted)[0])
        raise ValueError(
            f"{name}[{row}] = {array[row].tolist()} has x2 < x1 or y2 < y1; expected xyxy corners "
            f"(x1 <= x2, y1 <= y2). If these are xywh or cxcywh boxes, convert them with to_xyxy(boxes, fmt)."
        )
    return array


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"unknown box format {fmt!r}; expected one of {FORMATS}.")


def _check_image_size(image_width, image_height):
    for name, value in (("image_width", image_width), ("image_height", image_height)):
        if not _is_number(value) or not value > 0:
            raise ValueError(f"{name} must be a positive number of pixels, received {value!r}.")


def _check_positive(name, value):
    if not _is_number(value) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, received {value!r}.")


def _check_threshold(name, value):
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], received {value!r}.")


# ----------------------------------------------------------------------------------------------
# Formats (each defined once, here) and clipping
# ----------------------------------------------------------------------------------------------

# Every format is 4 columns [a, b, c, d]; computed in float64, returned as float32.
#   xywh:   x1 = x,  y1 = y,  x2 = x + w,    y2 = y + h
#   cxcywh: x1 = cx - w/2, y1 = cy - h/2, x2 = cx + w/2, y2 = cy + h/2
_TO_XYXY = {
    "xyxy": lambda a, b, c, d: (a, b, c, d),
    "xywh": lambda x, y, w, h: (x, y, x + w, y + h),
    "cxcywh": lambda cx, cy, w, h: (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
}
_FROM_XYXY = {
    "xyxy": lambda x1, y1, x2, y2: (x1, y1, x2, y2),
    "xywh": lambda x1, y1, x2, y2: (x1, y1, x2 - x1, y2 - y1),
    "cxcywh": lambda x1, y1, x2, y2: ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1),
}


def to_xyxy(boxes: ArrayLike, fmt: str) -> np.ndarray:
    """Convert boxes from ``fmt`` (``"xyxy"``, ``"xywh"`` or ``"cxcywh"``) to xyxy.

    Args:
        boxes: (..., 4) numbers in ``fmt``, any units (pixels or normalised).

    Returns:
        (..., 4) float32 xyxy in the same units.

        >>> to_xyxy([[10, 20, 30, 40]], "xywh").tolist()
        [[10.0, 20.0, 40.0, 60.0]]
    """
    return _convert(_TO_XYXY, boxes, fmt).astype(np.float32)


def from_xyxy(boxes: ArrayLike, fmt: str) -> np.ndarray:
    """Convert (..., 4) xyxy boxes to ``fmt``; returns (..., 4) float32 in the same units.

    >>> from_xyxy([[10, 20, 40, 60]], "cxcywh").tolist()
    [[25.0, 40.0, 30.0, 40.0]]
    """
    return _convert(_FROM_XYXY, boxes, fmt).astype(np.float32)


def _convert(table, boxes, fmt):
    """Apply ``table[fmt]`` to the columns of (..., 4) ``boxes``, in float64."""
    _check_format(fmt)
    columns = np.moveaxis(_as_array(boxes, "boxes", trailing=4).astype(np.float64), -1, 0)
    return np.stack(table[fmt](*columns), axis=-1)


def normalize(boxes: ArrayLike, image_width: float, image_height: float) -> np.ndarray:
    """Divide x columns by ``image_width`` and y columns by ``image_height``.

    Works for all three formats (columns 0 and 2 are x quantities, 1 and 3 are y quantities).
    Returns (..., 4) float32; :func:`denormalize` is the inverse.
    """
    _check_image_size(image_width, image_height)
    scale = np.array([image_width, image_height, image_width, image_height], np.float64)
    return (_as_array(boxes, "boxes", trailing=4) / scale).astype(np.float32)


def denormalize(boxes: ArrayLike, image_width: float, image_height: float) -> np.ndarray:
    """Multiply x columns by ``image_width`` and y columns by ``image_height``; (..., 4) float32."""
    _check_image_size(image_width, image_height)
    scale = np.array([image_width, image_height, image_width, image_height], np.float64)
    return (_as_array(boxes, "boxes", trailing=4) * scale).astype(np.float32)


def clip_boxes(boxes: ArrayLike, image_width: float, image_height: float) -> np.ndarray:
    """Clip (N, 4) xyxy pixel boxes to the image ``[0, width] x [0, height]``; (N, 4) float32.

    A box wholly outside the image becomes zero-area (IoU 0 with everything); drop those with
    ``box_area(clipped) > 0`` where that matters.
    """
    _check_image_size(image_width, image_height)
    limits = np.array([image_width, image_height, image_width, image_height], np.float32)
    return np.clip(_as_xyxy(boxes), 0, limits).astype(np.float32)


def box_area(boxes: ArrayLike) -> np.ndarray:
    """(N,) float32 areas ``(x2 - x1) * (y2 - y1)`` of (N, 4) xyxy boxes."""
    boxes = _as_xyxy(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


# ----------------------------------------------------------------------------------------------
# YOLO label lines: "class cx cy w h", all but class normalised to [0, 1]
# ----------------------------------------------------------------------------------------------


# cx +- w / 2 from 6-decimal label files overshoots [0, 1] by rounding alone; such boxes are clipped unreported.
_LABEL_ROUNDING = 1e-5


def parse_yolo_labels(
    text_or_lines: str | Iterable[str], image_width: float, image_height: float, source: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Parse YOLO label lines into xyxy pixel boxes, reporting bad lines instead of raising.

    Each non-blank line is ``class cx cy w h``: an integer class id >= 0 and four finite numbers
    normalised by the image width (cx, w) and height (cy, h), with w, h > 0. A line that breaks
    these rules is skipped and reported. A box reaching outside the image is clipped to it and
    reported (overshoots under 1e-5, rounding in the file, are clipped without a report); one
    with nothing left inside the image is skipped and reported.

    Args:
        text_or_lines: the file's text (str) or an iterable of lines.
        image_width, image_height: the image size in pixels.
        source: optional name (e.g. the label file path) put in front of each problem.

    Returns:
        ``(boxes, class_ids, problems)``: (N, 4) float32 xyxy pixels, (N,) int64, and a list of
        one-line strings ``"[source: ]line K: reason"`` (K counts from 1), one per reported line.
    """
    _check_image_size(image_width, image_height)
    lines = text_or_lines.splitlines() if isinstance(text_or_lines, str) else list(text_or_lines)
    prefix = f"{source}: " if source else ""
    numbers, rows, problems = [], [], {}
    for number, line in enumerate(lines, start=1):
        row, problem = _parse_yolo_line(line)
        if problem:
            problems[number] = problem
        elif row is not None:
            numbers.append(number)
            rows.append(row)
    rows = np.array(rows, np.float64).reshape(-1, 5)
    normalised = _convert(_TO_XYXY, rows[:, 1:], "cxcywh")
    clipped = normalised.clip(0, 1)
    inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    beyond = np.abs(normalised - clipped) > _LABEL_ROUNDING
    for number, before, reported, kept in zip(numbers, normalised, beyond, inside):
        if not kept:
            problems[number] = "box lies wholly outside the image; line skipped"
        elif reported.any():
            edges = ", ".join(
                f"{name}={value:.4g}" for name, value, out in zip(("x1", "y1", "x2", "y2"), before, reported) if out
            )
            problems[number] = f"box reaches outside the image ({edges}, normalised); clipped to the image"
    boxes = denormalize(clipped[inside], image_width, image_height)
    messages = [f"{prefix}line {number}: {problems[number]}" for number in sorted(problems)]
    return boxes, rows[inside, 0].astype(np.int64), messages


def _parse_yolo_line(line):
    """``([class, cx, cy, w, h], None)``, ``(None, reason)`` for a bad line, ``(None, None)`` for a blank one."""
    fields = line.split()
    if not fields:
        return None, None
    if len(fields) != 5:
        return None, f"expected 5 fields 'class cx cy w h', got {len(fields)}; line skipped"
    try:
        class_id = int(fields[0])
    except ValueError:
        return None, f"class id must be an integer >= 0, got {fields[0]!r}; line skipped"
    if class_id < 0:
        return None, f"class id must be an integer >= 0, got {class_id}; line skipped"
    try:
        cx, cy, w, h = (float(field) for field in fields[1:])
    except ValueError:
        return None, f"cx cy w h must be numbers, got {' '.join(fields[1:])!r}; line skipped"
    if not all(math.isfinite(value) for value in (cx, cy, w, h)):
        return None, f"cx cy w h must be finite, got {' '.join(fields[1:])!r}; line skipped"
    if w <= 0 or h <= 0:
        return None, f"width and height must be > 0, got w={w:g} h={h:g}; line skipped"
    return [class_id, cx, cy, w, h], None


def format_yolo_labels(
    boxes: ArrayLike, class_ids: ArrayLike, image_width: float, image_height: float, precision: int = 6
) -> str:
    """YOLO label text, one ``"class cx cy w h\\n"`` line per (N, 4) xyxy pixel box.

    Raises:
        ValueError: a box reaches outside the image (clip it with :func:`clip_boxes` first), a
            box has zero area, class ids are not integers >= 0, or the lengths differ.
    """
    boxes = _as_xyxy(boxes)
    if class_ids is None:
        raise ValueError("class_ids is required: one integer >= 0 per box.")
    class_ids = _as_class_ids(class_ids, len(boxes))
    if (class_ids < 0).any():
        raise ValueError(f"class_ids must be >= 0 for YOLO labels, received {int(class_ids.min())}.")
    _check_image_size(image_width, image_height)
    outside = (boxes < 0).any(axis=1) | (boxes[:, 2] > image_width) | (boxes[:, 3] > image_height)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"boxes[{row}] = {boxes[row].tolist()} reaches outside the {image_width}x{image_height} image; "
            "clip with clip_boxes() first."
        )
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise ValueError(
            f"boxes[{row}] = {boxes[row].tolist()} has zero area; YOLO labels need w, h > 0, drop it first."
        )
    cxcywh = _convert(_FROM_XYXY, boxes, "cxcywh") / np.array([image_width, image_height] * 2, np.float64)
    return "".join(
        f"{class_id} " + " ".join(f"{value:.{precision}g}" for value in row) + "\n"
        for class_id, row in zip(class_ids.tolist(), cxcywh)
    )


def _as_class_ids(class_ids, count, name="class_ids"):
    """(count,) int64 class ids (integers, or floats holding whole numbers), or None for None."""
    if class_ids is None:
        return None
    array = np.asarray(class_ids)
    if array.dtype.kind not in "iu" and not (array.dtype.kind == "f" and np.array_equal(array, np.round(array))):
        raise TypeError(f"{name} must hold integers, received dtype {array.dtype}; cast with .astype(int).")
    if array.shape != (count,):
        raise ValueError(f"{name} must have shape ({count},), one per box, received shape {array.shape}.")
    return array.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# IoU and its GIoU / DIoU / CIoU variants
# ----------------------------------------------------------------------------------------------


def _pair_columns(a, b, aligned):
    """Columns of ``a`` and ``b`` broadcast to (N, M) (pairwise) or (N,) (aligned)."""
    a = _as_xyxy(a, "a")
    b = _as_xyxy(b, "b")
    if aligned:
        if len(a) != len(b):
            raise ValueError(
                f"aligned=True needs as many boxes in a as in b, received {len(a)} and {len(b)}; use aligned=False for all pairs."
            )
        return a.T, b.T
    return a.T[:, :, None], b.T[:, None, :]


def _safe_divide(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (degenerate boxes give 0, not NaN)."""
    out = np.zeros(np.broadcast(numerator, denominator).shape, np.float32)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _area(columns):
    """(y2 - y1) * (x2 - x1), float32, the product in the order TensorFlow's NMS kernel uses."""
    return (columns[3] - columns[1]) * (columns[2] - columns[0])


def _intersection(ac, bc):
    """max(min(ax2, bx2) - max(ax1, bx1), 0) * max(min(ay2, by2) - max(ay1, by1), 0), height first."""
    inter_w = np.maximum(np.minimum(ac[2], bc[2]) - np.maximum(ac[0], bc[0]), 0)
    inter_h = np.maximum(np.minimum(ac[3], bc[3]) - np.maximum(ac[1], bc[1]), 0)
    return inter_h * inter_w


def _iou_union(ac, bc):
    """(IoU, union) from xyxy columns, float32: union = (area_a + area_b) - inter, IoU = inter / union.

    The same float32 operations as TensorFlow's NMS kernel, so thresholds agree bit for bit;
    IoU is 0 when the union is 0 (two zero-area boxes).
    """
    inter = _intersection(ac, bc)
    union = (_area(ac) + _area(bc)) - inter
    return _safe_divide(inter, union), union


def _enclosing_wh(ac, bc):
    """Width and height of the smallest box enclosing both boxes."""
    return np.maximum(ac[2], bc[2]) - np.minimum(ac[0], bc[0]), np.maximum(ac[3], bc[3]) - np.minimum(ac[1], bc[1])


def box_iou(a: ArrayLike, b: ArrayLike, aligned: bool = False) -> np.ndarray:
    """Intersection over union of xyxy boxes: IoU = |A n B| / |A u B|.

    Args:
        a: (N, 4) xyxy boxes. b: (M, 4) xyxy boxes (M = N when ``aligned``).
        aligned: False for every pair, True for ``a[i]`` with ``b[i]`` only (what a loss needs).

    Returns:
        float32, (N, M) pairwise or (N,) aligned, in [0, 1]; 0 when both boxes have zero area.
        Empty inputs give (0, M) or (N, 0) arrays.
    """
    ac, bc = _pair_columns(a, b, aligned)
    return _iou_union(ac, bc)[0]


def generalized_box_iou(a: ArrayLike, b: ArrayLike, aligned: bool = False) -> np.ndarray:
    """GIoU = IoU - (C - union) / C, C the area of the smallest box enclosing both; in [-1, 1].

    Shapes as :func:`box_iou`; the penalty is 0 when C = 0 (both boxes one point).
    """
    ac, bc = _pair_columns(a, b, aligned)
    iou, union = _iou_union(ac, bc)
    enclosing_w, enclosing_h = _enclosing_wh(ac, bc)
    enclosing = enclosing_w * enclosing_h
    return iou - _safe_divide(enclosing - union, enclosing)


def distance_box_iou(a: ArrayLike, b: ArrayLike, aligned: bool = False) -> np.ndarray:
    """DIoU = IoU - rho^2 / c^2: rho the distance between centres, c the enclosing box diagonal.

    In [-1, 1]; shapes as :func:`box_iou`; the penalty is 0 when c = 0.
    """
    ac, bc = _pair_columns(a, b, aligned)
    return _distance_iou(ac, bc)[0]


def _distance_iou(ac, bc):
    iou, _ = _iou_union(ac, bc)
    enclosing_w, enclosing_h = _enclosing_wh(ac, bc)
    # rho^2 = (cx_a - cx_b)^2 + (cy_a - cy_b)^2, with cx = (x1 + x2) / 2
    rho2 = ((ac[0] + ac[2] - bc[0] - bc[2]) ** 2 + (ac[1] + ac[3] - bc[1] - bc[3]) ** 2) / 4
    return iou - _safe_divide(rho2, enclosing_w**2 + enclosing_h**2), iou


def complete_box_iou(a: ArrayLike, b: ArrayLike, aligned: bool = False) -> np.ndarray:
    """CIoU = DIoU - alpha * v (Zheng et al. 2020), shapes as :func:`box_iou`.

    v = 4 / pi^2 * (atan(w_b / h_b) - atan(w_a / h_a))^2 measures aspect-ratio mismatch and
    alpha = v / ((1 - IoU) + v) (0 when v = 0); atan(w / h) is computed as atan2(w, h), so
    zero-height boxes give pi / 2 rather than a division by zero.
    """
    ac, bc = _pair_columns(a, b, aligned)
    diou, iou = _distance_iou(ac, bc)
    angle_a = np.arctan2(ac[2] - ac[0], ac[3] - ac[1])
    angle_b = np.arctan2(bc[2] - bc[0], bc[3] - bc[1])
    v = np.float32(4 / math.pi**2) * (angle_b - angle_a) ** 2
    alpha = _safe_divide(v, (1 - iou) + v)
    return diou - alpha * v


# ----------------------------------------------------------------------------------------------
# Non-max suppression
# ----------------------------------------------------------------------------------------------


def nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    iou_threshold: float = 0.45,
    score_threshold: float = float("-inf"),
    class_ids: ArrayLike | None = None,
    max_detections: int | None = None,
) -> np.ndarray:
    """Greedy non-max suppression; keeps exactly what ``tf.image.non_max_suppression`` keeps.

    Boxes are visited by descending score (equal scores: lower index first); a box is kept
    unless a kept box of its class overlaps it with IoU > ``iou_threshold`` (strictly, the IoU
    computed in float32 as TensorFlow does). Only boxes scoring > ``score_threshold`` (strictly,
    as TensorFlow) take part. Zero-area boxes overlap nothing: they are kept when their score passes.

    Args:
        boxes: (N, 4) xyxy boxes, any units.
        scores: (N,) numbers.
        iou_threshold: in [0, 1].
        score_threshold: boxes scoring <= this are dropped first; the default keeps every finite score.
        class_ids: optional (N,) integers; a box then only suppresses boxes of its own class.
        max_detections: optional cap on the number of kept boxes (the best ones are kept).

    Returns:
        (K,) int64 indices into ``boxes``, in descending score order.

    How: up to ``ONNX_NMS_MAX_BOXES`` candidates go to onnxruntime's ``NonMaxSuppression``
    operator (C++; the same float32 IoU, strict ``>`` and tie rule as TensorFlow, and the fastest
    here at that size). Above it, TensorFlow's one-box-at-a-time loop would be quadratic, so a
    multi-scale grid yields the few pairs that can overlap (:class:`_OverlapIndex`), their
    float32 IoU is checked in one pass, and the greedy decisions are resolved over that sparse
    graph, many boxes per step (:func:`_resolve_greedy`). Both give the same indices.
    """
    boxes = _as_xyxy(boxes)
    scores = _as_array(scores, "scores", ndim=1).astype(np.float32, copy=False)
    if len(scores) != len(boxes):
        raise ValueError(f"scores must have one entry per box: {len(boxes)} boxes but {len(scores)} scores.")
    class_ids = _as_class_ids(class_ids, len(boxes))
    _check_threshold("iou_threshold", iou_threshold)
    max_detections = _check_max_detections(max_detections)
    order = _score_order(scores, score_threshold)
    if 1 < len(order) <= ONNX_NMS_MAX_BOXES and iou_threshold < 1 and _onnx_nms_session() is not None:
        ranked_classes = None if class_ids is None else class_ids[order]
        kept = _onnx_nms(boxes[order], scores[order], ranked_classes, iou_threshold)
        if kept is not None:
            return order[kept][:max_detections].astype(np.int64)
    return _grid_nms(boxes, class_ids, iou_threshold, order)[:max_detections]


# Above this many candidates the grid path (below) beats onnxruntime's O(candidates x kept) loop.
ONNX_NMS_MAX_BOXES = 4096

# A one-operator ONNX graph, NonMaxSuppression (opset 11, center_point_box 0), serialised. Made
# with onnx.helper (see tests/core/test_boxes.py::test_embedded_nms_graph_is_the_documented_one):
# inputs boxes (1, N, 4) float32 [y1, x1, y2, x2], scores (1, C, N), max_output_boxes_per_class
# (1,) int64, iou_threshold (1,), score_threshold (1,); output selected (K, 3) [batch, class, box].
_NMS_GRAPH = (
    "CAcSBmN2YXBwczrFAgqBAQoFYm94ZXMKBnNjb3JlcwoabWF4X291dHB1dF9ib3hlc19wZXJfY2xhc3MKDWlvdV90aHJlc2hvbGQKD3Njb3Jl"
    "X3RocmVzaG9sZBIIc2VsZWN0ZWQiEU5vbk1heFN1cHByZXNzaW9uKhcKEGNlbnRlcl9wb2ludF9ib3gYAKABAhIKY3ZhcHBzX25tc1oZCgVi"
    "b3hlcxIQCg4IARIKCgIIAQoACgIIBFoYCgZzY29yZXMSDgoMCAESCAoCCAEKAAoAWigKGm1heF9vdXRwdXRfYm94ZXNfcGVyX2NsYXNzEgoK"
    "CAgHEgQKAggBWhsKDWlvdV90aHJlc2hvbGQSCgoICAESBAoCCAFaHQoPc2NvcmVfdGhyZXNob2xkEgoKCAgBEgQKAggBYhgKCHNlbGVjdGVk"
    "EgwKCggHEgYKAAoCCANCBAoAEAs="
)


@functools.lru_cache(maxsize=1)
def _onnx_nms_session():
    """An onnxruntime session running :data:`_NMS_GRAPH`, or None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # the operator is sequential; more threads only add overhead
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(base64.b64decode(_NMS_GRAPH), options, providers=["CPUExecutionProvider"])


def _onnx_nms(ranked_boxes, ranked_scores, ranked_classes, iou_threshold):
    """Kept positions (ascending) among boxes already in greedy order, or None when the
    operator cannot express the call exactly.

    Classes become rows of a (1, C, N) score table in which a box scores -inf outside its own
    class; the operator's score threshold, -FLT_MAX, drops those entries (it keeps score > t), so
    a real score of exactly -FLT_MAX cannot be passed (None). Positions are ranks, so the
    operator's tie rule (lower index first) is our ranking's.
    """
    lowest = np.finfo(np.float32).min
    if ranked_scores.min() <= lowest:
        return None
    if ranked_classes is None:
        table = ranked_scores[None, None, :]
    else:
        classes, rows = np.unique(ranked_classes, return_inverse=True)
        table = np.full((1, len(classes), len(ranked_scores)), -np.inf, np.float32)
        table[0, rows.ravel(), np.arange(len(ranked_scores))] = ranked_scores
    selected = _onnx_nms_session().run(
        None,
        {
            "boxes": np.ascontiguousarray(ranked_boxes[None][:, :, [1, 0, 3, 2]], np.float32),
            "scores": np.ascontiguousarray(table, np.float32),
            "max_output_boxes_per_class": np.array([len(ranked_scores)], np.int64),
            "iou_threshold": np.array([iou_threshold], np.float32),
            "score_threshold": np.array([lowest], np.float32),
        },
    )[0]
    return np.sort(selected[:, 2])


def _grid_nms(boxes, class_ids, iou_threshold, order):
    """Greedy NMS of the ranked candidates ``order`` through :class:`_OverlapIndex`."""
    columns = np.ascontiguousarray(boxes[order].T)
    live = np.flatnonzero(_area(columns) > 0)  # zero-area boxes overlap nothing (TensorFlow: IoU 0)
    keep = np.ones(len(order), bool)
    if live.size > 1 and iou_threshold < 1:
        index = _OverlapIndex(columns[:, live], None if class_ids is None else class_ids[order[live]], iou_threshold)
        keep[live] = False
        keep[live[_greedy_keep(index, np.arange(live.size))]] = True
    return order[keep].astype(np.int64)


def _check_max_detections(max_detections):
    if max_detections is None:
        return None
    if isinstance(max_detections, bool) or not isinstance(max_detections, (int, np.integer)) or max_detections < 0:
        raise ValueError(f"max_detections must be None or an integer >= 0, received {max_detections!r}.")
    return int(max_detections)


def _score_order(scores, score_threshold):
    """Indices of boxes scoring > ``score_threshold``, by descending score, ties by lower index."""
    if not _is_number(score_threshold) or math.isnan(score_threshold):
        raise ValueError(f"score_threshold must be a number, received {score_threshold!r}.")
    candidates = np.flatnonzero(scores > np.float32(score_threshold))
    return candidates[np.argsort(-scores[candidates], kind="stable")]


# Candidate pairs expanded at once stay under min(_PAIRS_PER_BOX * boxes, _PAIR_BUDGET) (memory and time
# linear in the boxes); denser blocks, such as piles of near-identical boxes, are solved head first.
_PAIRS_PER_BOX = 64
_PAIR_BUDGET = 1 << 22


def _greedy_keep(index, ranks):
    """The boxes among ``ranks`` (ascending) that greedy NMS keeps, given only these boxes.

    Greedy NMS on a prefix of the ranking does not depend on later boxes, and a later box only
    competes with the kept ones. So a block with too many candidate pairs P is split: a head
    small enough to expand (pairs grow with the square of the block, so a head of
    n * sqrt(target / P) boxes has about ``target`` pairs) is solved first, the tail is thinned
    by the head's kept boxes, and the tail's survivors are solved the same way.
    """
    if len(ranks) < 2:
        return ranks
    cells = index.cells(ranks)
    box, lo, counts = index.candidate_ranges(cells, cells, own_level_forward=True)
    pairs = int(counts.sum())
    if pairs > min(_PAIRS_PER_BOX * len(ranks), _PAIR_BUDGET):
        target = min(_PAIRS_PER_BOX // 4 * len(ranks), _PAIR_BUDGET // 2)
        head = min(max(int(len(ranks) * math.sqrt(target / pairs)), 1), len(ranks) - 1)
        kept = _greedy_keep(index, ranks[:head])
        survivors = _not_suppressed(index, kept, ranks[head:])
        return np.concatenate([kept, _greedy_keep(index, survivors)])
    query, partner = _overlapping_pairs(cells, box, cells, lo, counts, index.threshold)
    query, partner = cells.order[query], cells.order[partner]  # positions in ranks
    first, second = np.minimum(query, partner), np.maximum(query, partner)
    return ranks[_resolve_greedy(len(ranks), first, second)]


def _not_suppressed(index, kept, ranks):
    """The boxes among ``ranks`` that no box in ``kept`` overlaps with IoU > threshold."""
    if not len(kept) or not len(ranks):
        return ranks
    kept_cells, rank_cells = index.cells(kept), index.cells(ranks)
    # A pair is found from its smaller-level box: ranks query kept boxes on their level and up,
    # kept boxes query ranks on strictly higher levels.
    box, lo, counts = index.candidate_ranges(kept_cells, rank_cells)
    suppressed = [rank_cells.ids[_overlapping_pairs(rank_cells, box, kept_cells, lo, counts, index.threshold)[0]]]
    box, lo, counts = index.candidate_ranges(rank_cells, kept_cells, first_offset=1)
    suppressed.append(rank_cells.ids[_overlapping_pairs(kept_cells, box, rank_cells, lo, counts, index.threshold)[1]])
    return ranks[~np.isin(ranks, np.concatenate(suppressed))]


class _Cells:
    """Boxes (ids into an :class:`_OverlapIndex`) sorted by grid cell, with their keys and a
    (5, n) float32 table of x1, y1, x2, y2 and area."""

    def __init__(self, index, ids):
        self.order = np.argsort(index.key[ids], kind="stable")  # positions in ``ids``
        self.ids = ids[self.order]
        self.key = index.key[self.ids]
        self.table = index.table[:, self.ids]


def _overlapping_pairs(cells_a, box, cells_b, lo, counts, threshold):
    """Candidate pairs (cells_a[box[s]], cells_b[lo[s] + i]) for i < counts[s] whose float32 IoU,
    computed as TensorFlow does, is > threshold: (positions in cells_a, positions in cells_b).

    Works in place on the two gathered tables (large temporaries cost more than the arithmetic).
    """
    first_slot = np.cumsum(counts) - counts
    partner = np.repeat(lo - first_slot, counts)
    partner += np.arange(len(partner))
    query = np.repeat(box, counts)
    a, b = np.take(cells_a.table, query, axis=1), np.take(cells_b.table, partner, axis=1)  # (5, m)
    x1, y1, x2, y2, area = a
    for low, high, other_low, other_high in ((x1, x2, b[0], b[2]), (y1, y2, b[1], b[3])):
        np.minimum(high, other_high, out=high)
        np.maximum(low, other_low, out=low)
        high -= low
        np.maximum(high, 0, out=high)  # overlap width (x2), then height (y2)
    y2 *= x2  # inter = height * width
    area += b[4]
    area -= y2  # union = (area_a + area_b) - inter, > 0 for positive-area boxes
    y2 /= area
    overlapping = y2 > threshold
    return query[overlapping], partner[overlapping]


class _OverlapIndex:
    """A multi-scale grid over positive-area boxes that finds the pairs which may reach IoU > t.

    Necessary conditions for IoU > t, on widths (and likewise heights): IoU <= inter / area_a
    <= iw / w_a and <= iw / w_b, so iw > t * max(w_a, w_b); with iw <= min(w_a, w_b) this
    gives w_b < w_a / t, and centres closer than f(w_b) = (w_a + w_b) / 2 - t * max(w_a, w_b).
    A box sits on level l = floor(log2 max(w, h)), a grid of cells of side 2^(l + 1) / 4,
    keyed ((level * classes + class) * G + row) * G + column. It queries the rows of cells its
    centre window touches on its own level and on every level up to the largest partner it
    allows, all boxes at once: one searchsorted call (needles nearly sorted, so fast) and one
    expansion. Within one set a box looks forward only on its own level (later rows; in its
    own row, the boxes after it), since the partner looks back at it.
    """

    subdivisions = 4  # cells per level side; a power of two keeps x * (1 / side) exact

    def __init__(self, columns, classes, iou_threshold):
        self.table = np.concatenate([columns, _area(columns)[None]])  # (5, n) float32 x1, y1, x2, y2, area
        self.threshold = np.float32(iou_threshold)
        self.t = t = max(float(iou_threshold) - 1e-4, 0.0)  # margin: float32 IoU may round up past t
        x1, y1, x2, y2 = columns.astype(np.float64)
        self.size = np.stack([x2 - x1, y2 - y1])  # (2, n) width, height; boxes on the last axis throughout
        centre = np.stack([x1 + x2, y1 + y2]) / 2
        self.centre = centre - centre.min(axis=1, keepdims=True)
        self.classes = _dense_classes(classes, columns.shape[1])
        self.class_count = int(self.classes.max()) + 1
        side = self.size.max(axis=0)
        level = np.floor(np.log2(side)).astype(np.int64)  # side in [2^level, 2^(level + 1))
        # A partner's side is < side / t, so its level is <= floor(log2(side / t)); no limit when t = 0.
        top = np.floor(np.log2(side / t)).astype(np.int64) if t > 0 else np.full_like(level, level.max())
        # G = 2^bits cells a side with the whole key in int63; levels too fine for G cells to span the
        # boxes are merged upwards (tiny boxes share coarser cells).
        span = int(top.max() - level.min()) + 1
        bits = (62 - span.bit_length() - self.class_count.bit_length()) // 2
        finest = math.ceil(math.log2(self.subdivisions * max(self.centre.max(), 1e-30))) - bits
        self.level, self.top, self.grid_size = np.maximum(level, finest), np.maximum(top, finest), 1 << bits
        self.lowest = int(self.level.min())
        self.reach = int((self.top - self.level).max())
        column, self.row = np.floor(self.centre * (self.subdivisions * 2.0 ** -(self.level + 1))).astype(np.int64)
        self.key = self.cell_key(self.level, self.classes, self.row) + column

    def cell_key(self, level, box_class, row):
        """Key of column 0 in a row of cells; add the column."""
        return (((level - self.lowest) * self.class_count + box_class) * self.grid_size + row) * self.grid_size

    def cells(self, ids):
        return _Cells(self, ids)

    def candidate_ranges(self, grid, queries, first_offset=0, own_level_forward=False):
        """Ranges of ``grid`` positions each query box must be checked against.

        Returns ``(box, lo, counts)``: per query slot (window row, level, box), the query's
        position in ``queries`` and the range [lo, lo + count) of positions in ``grid``.
        ``own_level_forward`` is for ``grid is queries`` (each pair once).
        """
        ids = queries.ids
        query_level = self.level[ids] + np.arange(first_offset, self.reach + 1)[:, None]  # (levels, n)
        low, high = self._window(ids, query_level)  # (2, levels, n)
        if own_level_forward:
            low[1, 0] = self.row[ids]  # own level: own row and later rows only
        height = np.where(query_level <= self.top[ids], high[1] - low[1], -1)  # rows to visit - 1; -1: none
        step, slot = np.divmod(
            np.flatnonzero(np.arange(height.max(initial=-1) + 1)[:, None, None] <= height), height.size
        )
        box = slot % len(ids)
        prefix = self.cell_key(query_level.ravel()[slot], self.classes[ids[box]], low[1].ravel()[slot] + step)
        needles = np.concatenate([prefix + low[0].ravel()[slot], prefix + high[0].ravel()[slot] + 1])
        lo, hi = np.searchsorted(grid.key, needles).reshape(2, -1)
        if own_level_forward:
            own = (step == 0) & (slot < len(ids))  # first row of the own level
            lo[own] = box[own] + 1  # own row: the boxes after this one, then later cells
        return box, lo, hi - lo

    def _window(self, ids, query_level):
        """First and last grid cells, per axis, where a partner's centre can be: (2, levels, n) each.

        A partner on ``query_level`` is smaller than L = 2^(level + 1) and than w_a / t, so
        w_b < w_max = min(L, w_a / t), and w_max > w_a. The centre distance is below
        max over w_b < w_max of f(w_b) = (w_a + w_b) / 2 - t * max(w_a, w_b): for t < 1/2 that
        is f(w_max) = w_a / 2 + w_max * (1/2 - t), else f(w_a) = w_a * (1 - t). Cells past the
        far edges hold no boxes, so windows need no clipping there.
        """
        t, largest = self.t, 2.0 ** (query_level + 1)
        size, centre = self.size[:, None, ids], self.centre[:, None, ids]
        if t >= 0.5:
            radius = size * (1 - t)
        else:
            radius = size / 2 + (0.5 - t) * (np.minimum(largest, size / t) if t > 0 else largest)
        per_cell = self.subdivisions / largest  # 1 / cell side, a power of two
        low = np.floor((centre - radius) * per_cell).astype(np.int64)
        high = np.floor((centre + radius) * per_cell).astype(np.int64)
        return np.maximum(low, 0), high


def _dense_classes(classes, count):
    """Class ids as 0..C-1 (only the grid keys use them), or zeros when classes is None."""
    if classes is None:
        return np.zeros(count, np.int64)
    shifted = classes - classes.min()
    return shifted if shifted.max() < count else np.unique(classes, return_inverse=True)[1].ravel()


def _resolve_greedy(count, first, second):
    """Boolean keep mask of greedy NMS over ranks 0..count-1, given suppressing pairs first < second.

    A box is kept iff no kept box suppresses it. Each round keeps every undecided box whose
    suppressors are all suppressed and suppresses every box with a kept suppressor; the
    best-ranked undecided box is always decided, and clustered boxes settle in a few rounds.
    Long chains (each box suppressing the next) would take a round per link, so once a round
    removes under a tenth of the open pairs the rest is settled one box at a time.
    """
    undecided, kept, suppressed = 0, 1, 2
    state = np.zeros(count, np.int8)
    state[np.bincount(second, minlength=count) == 0] = kept
    while first.size:
        state[second[state[first] == kept]] = suppressed
        open_pairs = (state[first] == undecided) & (state[second] == undecided)
        slow = open_pairs.sum() > 0.9 * first.size
        first, second = first[open_pairs], second[open_pairs]
        if slow:
            _settle_in_order(state, first, second)
            break
        state[(state == undecided) & (np.bincount(second, minlength=count) == 0)] = kept
    return state == kept


def _settle_in_order(state, first, second):
    """Decide the undecided boxes one by one in rank order: kept iff no kept suppressor."""
    by_second = np.argsort(second, kind="stable")
    targets, starts = np.unique(second[by_second], return_index=True)
    suppressors = np.split(first[by_second], starts[1:])
    kept = state != 2  # undecided boxes without open pairs left are kept
    for target, sources in zip(targets.tolist(), suppressors):
        kept[target] = not kept[sources].any()
    state[:] = np.where(kept, 1, 2)


def soft_nms(
    boxes: ArrayLike,
    scores: ArrayLike,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float = 0.001,
    class_ids: ArrayLike | None = None,
    max_detections: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS (Bodla et al. 2017): overlapping boxes lose score instead of being dropped.

    Repeatedly keeps the box with the highest current score (ties: lower index) and decays
    every remaining box b of its class by w(IoU):
        gaussian: w = exp(-IoU^2 / sigma)                   (``iou_threshold`` unused)
        linear:   w = 1 - IoU where IoU > iou_threshold, else 1
    dropping boxes whose score falls to <= ``score_threshold``. Costs O(kept x N).
    Gaussian soft-NMS keeps what ``tf.image.non_max_suppression_with_scores`` keeps, scores equal
    to float32 rounding, with ``soft_nms_sigma = sigma / 2`` (its weight is
    exp(-IoU^2 / (2 * soft_nms_sigma))).

    Args:
        boxes: (N, 4) xyxy boxes. scores: (N,) numbers.
        method: ``"gaussian"`` or ``"linear"``. sigma: > 0, gaussian width.
        iou_threshold: in [0, 1], linear only. score_threshold: the score a box must stay above.
        class_ids: optional (N,) integers; boxes only decay boxes of their own class.
        max_detections: optional cap on the number of boxes returned.

    Returns:
        ``(indices, new_scores)``: (K,) int64 indices into ``boxes`` in descending new score,
        and their (K,) float32 decayed scores.
    """
    boxes = _as_xyxy(boxes)
    scores = _as_array(scores, "scores", ndim=1).astype(np.float32, copy=False)
    if len(scores) != len(boxes):
        raise ValueError(f"scores must have one entry per box: {len(boxes)} boxes but {len(scores)} scores.")
    if method not in NMS_METHODS:
        raise ValueError(f"method must be one of {NMS_METHODS}, received {method!r}.")
    _check_positive("sigma", sigma)
    _check_threshold("iou_threshold", iou_threshold)
    class_ids = _as_class_ids(class_ids, len(boxes))
    max_detections = _check_max_detections(max_detections)
    columns = boxes.T
    alive = _score_order(scores, score_threshold)
    alive.sort()  # ascending index, so argmax's first maximum is the lowest index
    current = scores[alive]
    threshold = np.float32(score_threshold)
    kept, kept_scores = [], []
    while alive.size and (max_detections is None or len(kept) < max_detections):
        best = int(np.argmax(current))
        top = alive[best]
        kept.append(top)
        kept_scores.append(current[best])
        alive, current = np.delete(alive, best), np.delete(current, best)
        iou, _ = _iou_union(columns[:, top, None], columns[:, alive])
        if class_ids is not None:
            iou = np.where(class_ids[alive] == class_ids[top], iou, np.float32(0))
        if method == "gaussian":
            current = current * np.exp(-(iou * iou) / np.float32(sigma))
        else:
            current = current * np.where(iou > np.float32(iou_threshold), 1 - iou, np.float32(1))
        stays = current > threshold
        alive, current = alive[stays], current[stays]
    return np.array(kept, np.int64), np.array(kept_scores, np.float32)


# ----------------------------------------------------------------------------------------------
# Anchors: grids, k-means sizes, YOLOv5 offsets
# ----------------------------------------------------------------------------------------------


def _as_sizes(values, name):
    """(A, 2) float64 positive (width, height) pairs."""
    sizes = _as_array(values, name, trailing=2, ndim=2).astype(np.float64)
    if (sizes <= 0).any():
        row = int(np.flatnonzero((sizes <= 0).any(axis=1))[0])
        raise ValueError(f"{name}[{row}] = {sizes[row].tolist()}: widths and heights must be > 0.")
    return sizes


def feature_size(image_size: int | Sequence[int], stride: float) -> tuple[int, int]:
    """(rows, columns) of the feature map at ``stride``: ceil(height / stride), ceil(width / stride).

    ``image_size`` is an int (square) or (height, width) in pixels.
    """
    _check_positive("stride", stride)
    if np.ndim(image_size) == 0:
        image_size = (image_size, image_size)
    if len(image_size) != 2:
        raise ValueError(f"image_size must be an int or (height, width), received {image_size!r}.")
    height, width = image_size
    _check_image_size(width, height)
    return math.ceil(height / stride), math.ceil(width / stride)


def cell_grid(rows: int, columns: int) -> np.ndarray:
    """(rows, columns, 1, 2) float32 cell indices (column, row): the ``grid`` :func:`decode` takes
    for a head output shaped (rows, columns, A, 4)."""
    column, row = np.meshgrid(np.arange(columns, dtype=np.float32), np.arange(rows, dtype=np.float32))
    return np.stack([column, row], axis=-1)[:, :, None, :]


def anchor_grid(image_size: int | Sequence[int], stride: float, anchor_sizes: ArrayLike) -> np.ndarray:
    """Anchor boxes of one pyramid level: one per cell and anchor size.

    Cell (row i, column j) has its centre at ((j + 0.5) * stride, (i + 0.5) * stride); the
    grid is :func:`feature_size` cells. Anchors are ordered row, column, anchor, i.e. index
    (i * columns + j) * A + a, matching a head output of shape (rows, columns, A, ...) reshaped
    to (-1, ...).

    Args:
        image_size: int (square) or (height, width) in pixels.
        stride: pixels per cell.
        anchor_sizes: (A, 2) (width, height) in pixels.

    Returns:
        (rows * columns * A, 4) float32 xyxy pixels.

        >>> anchor_grid(16, 8, [[8, 8], [16, 8]])[:3].tolist()
        [[0.0, 0.0, 8.0, 8.0], [-4.0, 0.0, 12.0, 8.0], [8.0, 0.0, 16.0, 8.0]]
    """
    rows, columns = feature_size(image_size, stride)
    sizes = _as_sizes(anchor_sizes, "anchor_sizes")
    centres = (cell_grid(rows, columns).astype(np.float64) + 0.5) * stride  # (rows, columns, 1, 2)
    corners = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=-1)  # (rows, columns, A, 4)
    return corners.reshape(-1, 4).astype(np.float32)


def wh_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """IoU of sizes alone, boxes aligned at one corner: (N, 2) and (K, 2) (width, height) -> (N, K).

    IoU = min(w_a, w_b) * min(h_a, h_b) / (w_a h_a + w_b h_b - that), the distance k-means uses.
    """
    a = _as_array(a, "a", trailing=2, ndim=2).astype(np.float64)[:, None, :]
    b = _as_array(b, "b", trailing=2, ndim=2).astype(np.float64)[None, :, :]
    inter = np.minimum(a[..., 0], b[..., 0]) * np.minimum(a[..., 1], b[..., 1])
    union = a[..., 0] * a[..., 1] + b[..., 0] * b[..., 1] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def kmeans_anchors(
    wh: ArrayLike, k: int, seed: int | None = 0, iterations: int = 300, restarts: int = 3
) -> tuple[np.ndarray, float]:
    """Fit k anchor sizes to box sizes with k-means under the 1 - IoU distance (YOLOv2).

    Each run starts from greedy k-means++ seeds and alternates: each box joins the anchor it
    overlaps most (:func:`wh_iou`), each anchor moves to its boxes' mean width and height (an
    anchor left without boxes restarts at the box worst covered); it stops when no box changes
    anchor, or after ``iterations``. The best of ``restarts`` runs (drawn from ``seed``) wins.

    Args:
        wh: (N, 2) box widths and heights (> 0), in pixels of the network input.
        k: number of anchors, at most the number of distinct sizes.

    Returns:
        ``(anchors, mean_best_iou)``: (k, 2) float32 (width, height) sorted by area, and the
        mean over boxes of the IoU with their best anchor (1 means every box has a perfect anchor).
    """
    wh = _as_sizes(wh, "wh")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, received {k!r}.")
    distinct = len(np.unique(wh, axis=0))
    if distinct < k:
        raise ValueError(f"wh holds {distinct} distinct sizes, fewer than k={k}; lower k or pass more boxes.")
    rng = np.random.default_rng(seed)
    runs = [_lloyd(wh, _kmeans_plus_plus(wh, k, rng), iterations) for _ in range(max(1, restarts))]
    anchors, mean_iou = max(runs, key=lambda run: run[1])
    anchors = anchors[np.argsort(anchors.prod(axis=1), kind="stable")]
    return anchors.astype(np.float32), mean_iou


def _lloyd(wh, anchors, iterations):
    """k-means iterations from ``anchors``: (anchors, mean best IoU)."""
    assignment = None
    for _ in range(iterations):
        iou = wh_iou(wh, anchors)
        new_assignment = iou.argmax(axis=1)
        if assignment is not None and np.array_equal(new_assignment, assignment):
            break
        assignment = new_assignment
        for cluster in range(len(anchors)):
            members = wh[assignment == cluster]
            anchors[cluster] = members.mean(axis=0) if len(members) else wh[iou.max(axis=1).argmin()]
    return anchors, float(wh_iou(wh, anchors).max(axis=1).mean())


def _kmeans_plus_plus(wh, k, rng):
    """Greedy k-means++ seeds: each next seed is the best of 2 + log(k) draws with probability
    proportional to the distance 1 - best IoU, judged by the total distance it leaves."""
    anchors = [wh[rng.integers(len(wh))]]
    distance = 1 - wh_iou(wh, np.array(anchors))[:, 0]
    trials = 2 + int(math.log(k))
    for _ in range(k - 1):
        candidates = wh[rng.choice(len(wh), size=trials, p=distance / distance.sum())]
        left = np.minimum(distance[:, None], 1 - wh_iou(wh, candidates))  # (N, trials)
        best = int(left.sum(axis=0).argmin())
        anchors.append(candidates[best])
        distance = left[:, best]
    return np.array(anchors)


# YOLOv5 offsets, per box, relative to its cell (column g_x, row g_y) and anchor (a_w, a_h):
#   centre = (2 * sigmoid(t_xy) - 0.5 + g) * stride        -> the centre stays within (-0.5, 1.5) cells
#   size   = anchor * (2 * sigmoid(t_wh))^2                 -> the size stays within (0, 4) x the anchor
# and the exact inverse: t_xy = logit((centre / stride - g + 0.5) / 2), t_wh = logit(sqrt(size / anchor) / 2).


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _logit(p):
    return np.log(p) - np.log1p(-p)


def decode(offsets: ArrayLike, anchors: ArrayLike, grid: ArrayLike, stride: float) -> np.ndarray:
    """Boxes from YOLOv5 offsets: centre = (2 sigmoid(t_xy) - 0.5 + grid) * stride and
    size = anchor * (2 sigmoid(t_wh))^2, so centres stay within (-0.5, 1.5) cells of their cell
    and sizes within (0, 4) times their anchor.

    Args:
        offsets: (..., 4) raw head outputs t_x, t_y, t_w, t_h.
        anchors: (..., 2) anchor (width, height) in pixels, broadcastable against offsets[..., :2].
        grid: (..., 2) cell (column, row) indices, broadcastable likewise (see :func:`cell_grid`).
        stride: pixels per cell.

    Returns:
        (..., 4) float32 xyxy pixels.
    """
    offsets = _as_array(offsets, "offsets", trailing=4).astype(np.float64)
    anchors = _as_array(anchors, "anchors", trailing=2).astype(np.float64)
    grid = _as_array(grid, "grid", trailing=2).astype(np.float64)
    _check_positive("stride", stride)
    return yolo_xyxy(_sigmoid(offsets), anchors, grid, stride).astype(np.float32)


def yolo_xyxy(
    sigmoid: Any, anchors: Any, grid: Any, stride: Any, concatenate: Callable[..., Any] = np.concatenate
) -> Any:
    """The YOLOv5 box formula, written once for NumPy arrays and ``keras.ops`` tensors alike.

    centre = (2 s_xy - 0.5 + grid) * stride and size = anchor * (2 s_wh)^2, where
    ``s = sigmoid(offsets)`` is already applied; the result is [centre - size / 2, centre + size / 2].
    Only arithmetic operators and ``concatenate(list, axis=-1)`` are used, so the detection loss
    passes ``keras.ops.concatenate`` and runs it on backend tensors (the core stays Keras-free).

    Args:
        sigmoid: (..., >=4) sigmoid of the raw offsets t_x, t_y, t_w, t_h (extra columns ignored).
        anchors, grid, stride: broadcastable against ``sigmoid[..., :2]`` (see :func:`decode`).
        concatenate: the backend's concatenate.

    Returns:
        (..., 4) xyxy pixels, in the input's array type.

    >>> yolo_xyxy(np.full((1, 4), 0.5), np.array([[10.0, 20.0]]), np.zeros((1, 2)), 8).tolist()
    [[-1.0, -6.0, 9.0, 14.0]]

    (s = 0.5: centre = (1 - 0.5 + 0) * 8 = 4, size = anchor * 1 = (10, 20).)
    """
    centre = (2 * sigmoid[..., :2] - 0.5 + grid) * stride
    size = anchors * (2 * sigmoid[..., 2:4]) ** 2
    return concatenate([centre - size / 2, centre + size / 2], axis=-1)


def encode(boxes: ArrayLike, anchors: ArrayLike, grid: ArrayLike, stride: float) -> np.ndarray:
    """YOLOv5 offsets of xyxy boxes; :func:`decode` inverts it.

    centre = (2 sigmoid(t_xy) - 0.5 + grid) * stride and size = anchor * (2 sigmoid(t_wh))^2, so
    t_xy = logit((centre / stride - grid + 0.5) / 2) and t_wh = logit(sqrt(size / anchor) / 2).

    Args:
        boxes: (..., 4) xyxy pixels. anchors, grid, stride: as in :func:`decode`.

    Returns:
        (..., 4) float32 t_x, t_y, t_w, t_h.

    Raises:
        ValueError: a centre lies outside (-0.5, 1.5) cells of its grid cell, or a size is not
            within (0, 4) times its anchor: such a box cannot be expressed by that cell and anchor.
    """
    boxes = _as_array(boxes, "boxes", trailing=4).astype(np.float64)
    anchors = _as_array(anchors, "anchors", trailing=2).astype(np.float64)
    grid = _as_array(grid, "grid", trailing=2).astype(np.float64)
    _check_positive("stride", stride)
    cell_offset = (boxes[..., :2] + boxes[..., 2:]) / 2 / stride - grid  # centre within its cell, in cells
    size_ratio = (boxes[..., 2:] - boxes[..., :2]) / anchors
    _check_reachable(
        cell_offset, -0.5, 1.5, "centre offset from its grid cell (cells)", "pair each box with the cell of its centre"
    )
    _check_reachable(size_ratio, 0, 4, "size / anchor ratio", "pair boxes with anchors of a closer size")
    # sigmoid(t_xy) = (offset + 0.5) / 2 and sigmoid(t_wh) = sqrt(ratio) / 2, both in (0, 1)
    return np.concatenate([_logit((cell_offset + 0.5) / 2), _logit(np.sqrt(size_ratio) / 2)], axis=-1).astype(
        np.float32
    )


def _check_reachable(value, low, high, what, fix):
    bad = ~((value > low) & (value < high))
    if bad.any():
        where = np.argwhere(bad)[0]
        received = value[tuple(where)]
        raise ValueError(
            f"boxes{where[:-1].tolist()}: {what} is {received:.4g}, expected within ({low}, {high}); {fix}."
        )
