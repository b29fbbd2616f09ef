"""Boxes: formats, YOLO label lines, IoU variants, non-max suppression and anchors, in NumPy.

One internal format everywhere: **xyxy in pixels, float32, shape (N, 4)** with ``x1 <= x2`` and
``y1 <= y2``. Other formats exist only at the edges: :func:`to_xyxy` / :func:`from_xyxy` for
``"xywh"`` (top-left corner + size) and ``"cxcywh"`` (centre + size), :func:`normalize` /
:func:`denormalize` for coordinates divided by the image width and height, and
:func:`parse_yolo_labels` / :func:`format_yolo_labels` for YOLO label lines ``class cx cy w h``.
This module imports NumPy only, so it works without TensorFlow.

    >>> import numpy as np
    >>> from cvapps import boxes
    >>> text = "0 0.5 0.5 0.5 0.5\\n1 0.52 0.5 0.5 0.5\\n2 0.5 0.5 -1 0.2\\n"
    >>> xyxy, class_ids, problems = boxes.parse_yolo_labels(text, image_width=200, image_height=100)
    >>> xyxy.tolist(), class_ids.tolist()
    ([[50.0, 25.0, 150.0, 75.0], [54.0, 25.0, 154.0, 75.0]], [0, 1])
    >>> problems                                     # a loader prints f"{path}: {problem}" and goes on
    ['line 3: width and height must be > 0, got w=-1.0 h=0.2; line skipped']
    >>> round(float(boxes.box_iou(xyxy[:1], xyxy[1:])[0, 0]), 3)   # inter 96*50, union 2*5000 - 4800
    0.923
    >>> scores = np.array([0.9, 0.8], np.float32)
    >>> boxes.nms(xyxy, scores, iou_threshold=0.45).tolist()         # same class: the weaker one goes
    [0]
    >>> boxes.nms(xyxy, scores, iou_threshold=0.45, class_ids=class_ids).tolist()  # per class: both stay
    [0, 1]
    >>> boxes.format_yolo_labels(xyxy[:1], class_ids[:1], image_width=200, image_height=100)
    '0 0.5 0.5 0.5 0.5\\n'

Anchors: :func:`anchor_grid` lays anchors over a feature map, :func:`kmeans_anchors` fits k anchor
sizes to a data set's boxes with the 1 - IoU distance (YOLOv2), and :func:`encode` /
:func:`decode` map boxes to and from YOLOv5's bounded offsets (formulas in their docstrings).
"""

from __future__ import annotations

import math

import numpy as np

FORMATS = ("xyxy", "xywh", "cxcywh")
NMS_METHODS = ("gaussian", "linear")

# ----------------------------------------------------------------------------------------------
# Checking inputs
# ----------------------------------------------------------------------------------------------


def _as_array(values, name, trailing=None, ndim=None):
    """``values`` as a float64 array after checking it is numeric, finite and shaped as asked."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a numeric array, received dtype {array.dtype}; pass numbers (e.g. a float32 array).")
    if ndim is not None and array.ndim != ndim:
        wanted = "(N, 4)" if trailing == 4 else f"{ndim} dimensions"
        raise ValueError(f"{name} must have shape {wanted}, received shape {array.shape}; reshape it (a single box is [[x1, y1, x2, y2]], no boxes is np.zeros((0, 4))).")
    if trailing is not None and (array.ndim == 0 or array.shape[-1] != trailing):
        raise ValueError(f"{name} must have a last dimension of {trailing}, received shape {array.shape}.")
    if not np.isfinite(array).all():
        row = np.argwhere(~np.isfinite(array))[0].tolist()
        raise ValueError(f"{name} holds NaN or inf (first at index {row}); expected finite numbers, drop or fix those entries.")
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


def _check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"unknown box format {fmt!r}; expected one of {FORMATS}.")


def _check_image_size(image_width, image_height):
    for name, value in (("image_width", image_width), ("image_height", image_height)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
            raise ValueError(f"{name} must be a positive number of pixels, received {value!r}.")


def _check_threshold(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 <= value <= 1:
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


def to_xyxy(boxes, fmt) -> np.ndarray:
    """Convert boxes from ``fmt`` (``"xyxy"``, ``"xywh"`` or ``"cxcywh"``) to xyxy.

    Args:
        boxes: (..., 4) numbers in ``fmt``, any units (pixels or normalised).

    Returns:
        (..., 4) float32 xyxy in the same units.

        >>> to_xyxy([[10, 20, 30, 40]], "xywh").tolist()
        [[10.0, 20.0, 40.0, 60.0]]
    """
    _check_format(fmt)
    columns = np.moveaxis(_as_array(boxes, "boxes", trailing=4).astype(np.float64), -1, 0)
    return np.stack(_TO_XYXY[fmt](*columns), axis=-1).astype(np.float32)


def from_xyxy(boxes, fmt) -> np.ndarray:
    """Convert (..., 4) xyxy boxes to ``fmt``; returns (..., 4) float32 in the same units.

        >>> from_xyxy([[10, 20, 40, 60]], "cxcywh").tolist()
        [[25.0, 40.0, 30.0, 40.0]]
    """
    _check_format(fmt)
    columns = np.moveaxis(_as_array(boxes, "boxes", trailing=4).astype(np.float64), -1, 0)
    return np.stack(_FROM_XYXY[fmt](*columns), axis=-1).astype(np.float32)


def normalize(boxes, image_width, image_height) -> np.ndarray:
    """Divide x columns by ``image_width`` and y columns by ``image_height``.

    Works for all three formats (columns 0 and 2 are x quantities, 1 and 3 are y quantities).
    Returns (..., 4) float32; :func:`denormalize` is the inverse.
    """
    _check_image_size(image_width, image_height)
    scale = np.array([image_width, image_height, image_width, image_height], np.float64)
    return (_as_array(boxes, "boxes", trailing=4) / scale).astype(np.float32)


def denormalize(boxes, image_width, image_height) -> np.ndarray:
    """Multiply x columns by ``image_width`` and y columns by ``image_height``; (..., 4) float32."""
    _check_image_size(image_width, image_height)
    scale = np.array([image_width, image_height, image_width, image_height], np.float64)
    return (_as_array(boxes, "boxes", trailing=4) * scale).astype(np.float32)


def clip_boxes(boxes, image_width, image_height) -> np.ndarray:
    """Clip (N, 4) xyxy pixel boxes to the image ``[0, width] x [0, height]``; (N, 4) float32.

    A box wholly outside the image becomes zero-area (IoU 0 with everything); drop those with
    ``box_area(clipped) > 0`` where that matters.
    """
    _check_image_size(image_width, image_height)
    limits = np.array([image_width, image_height, image_width, image_height], np.float32)
    return np.clip(_as_xyxy(boxes), 0, limits).astype(np.float32)


def box_area(boxes) -> np.ndarray:
    """(N,) float32 areas ``(x2 - x1) * (y2 - y1)`` of (N, 4) xyxy boxes."""
    boxes = _as_xyxy(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


# ----------------------------------------------------------------------------------------------
# YOLO label lines: "class cx cy w h", all but class normalised to [0, 1]
# ----------------------------------------------------------------------------------------------


def parse_yolo_labels(text_or_lines, image_width, image_height, source=None):
    """Parse YOLO label lines into xyxy pixel boxes, reporting bad lines instead of raising.

    Each non-blank line is ``class cx cy w h``: an integer class id >= 0 and four finite numbers
    normalised by the image width (cx, w) and height (cy, h), with w, h > 0. A line that breaks
    these rules is skipped and reported. A box reaching outside the image is clipped to it and
    reported; one with nothing left inside the image is skipped and reported.

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
    rows, class_ids, problems = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row, class_id, problem = _parse_yolo_line(line)
        if row is not None:
            row, problem = _clip_normalised(row)
        if problem:
            problems.append(f"{prefix}line {number}: {problem}")
        if row is not None:
            rows.append(row)
            class_ids.append(class_id)
    normalised = np.array(rows, np.float64).reshape(-1, 4)
    xyxy = denormalize(to_xyxy(normalised, "xyxy"), image_width, image_height)
    return xyxy, np.array(class_ids, np.int64), problems


def _parse_yolo_line(line):
    """``([x1, y1, x2, y2] normalised, class_id, None)`` or ``(None, None, reason)``."""
    fields = line.split()
    if len(fields) != 5:
        return None, None, f"expected 5 fields 'class cx cy w h', got {len(fields)}; line skipped"
    try:
        class_id = int(fields[0])
    except ValueError:
        return None, None, f"class id must be an integer >= 0, got {fields[0]!r}; line skipped"
    if class_id < 0:
        return None, None, f"class id must be an integer >= 0, got {class_id}; line skipped"
    try:
        cx, cy, w, h = (float(field) for field in fields[1:])
    except ValueError:
        return None, None, f"cx cy w h must be numbers, got {' '.join(fields[1:])!r}; line skipped"
    if not all(math.isfinite(value) for value in (cx, cy, w, h)):
        return None, None, f"cx cy w h must be finite, got {' '.join(fields[1:])!r}; line skipped"
    if w <= 0 or h <= 0:
        return None, None, f"width and height must be > 0, got w={w} h={h}; line skipped"
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], class_id, None


def _clip_normalised(row):
    """Clip a normalised xyxy row to [0, 1]: ``(row, None)``, ``(clipped, note)`` or ``(None, reason)``."""
    clipped = [min(max(value, 0.0), 1.0) for value in row]
    if clipped == row:
        return row, None
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return None, "box lies wholly outside the image; line skipped"
    edges = ", ".join(f"{name}={value:.4g}" for name, value, kept in zip(("x1", "y1", "x2", "y2"), row, clipped) if value != kept)
    return clipped, f"box reaches outside the image ({edges}, normalised); clipped to the image"


def format_yolo_labels(boxes, class_ids, image_width, image_height, precision=6) -> str:
    """YOLO label text, one ``"class cx cy w h\\n"`` line per (N, 4) xyxy pixel box.

    Raises:
        ValueError: a box reaches outside the image (clip it with :func:`clip_boxes` first), a
            box has zero area, class ids are not integers >= 0, or the lengths differ.
    """
    boxes = _as_xyxy(boxes)
    class_ids = _as_class_ids(class_ids, len(boxes))
    if class_ids is not None and (class_ids < 0).any():
        raise ValueError(f"class_ids must be >= 0 for YOLO labels, received {int(class_ids.min())}.")
    _check_image_size(image_width, image_height)
    outside = (boxes < 0).any(axis=1) | (boxes[:, 2] > image_width) | (boxes[:, 3] > image_height)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(f"boxes[{row}] = {boxes[row].tolist()} reaches outside the {image_width}x{image_height} image; clip with clip_boxes() first.")
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise ValueError(f"boxes[{row}] = {boxes[row].tolist()} has zero area; YOLO labels need w, h > 0, drop it first.")
    cxcywh = normalize(from_xyxy(boxes, "cxcywh"), image_width, image_height).astype(np.float64)
    return "".join(
        f"{class_id} " + " ".join(f"{value:.{precision}g}" for value in row) + "\n"
        for class_id, row in zip(class_ids.tolist(), cxcywh)
    )


def _as_class_ids(class_ids, count, name="class_ids"):
    """(count,) int64 class ids, or None when ``class_ids`` is None."""
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
            raise ValueError(f"aligned=True needs as many boxes in a as in b, received {len(a)} and {len(b)}; use aligned=False for all pairs.")
        return a.T, b.T
    return a.T[:, :, None], b.T[:, None, :]


def _safe_divide(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (degenerate boxes give 0, not NaN)."""
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape, np.float32), where=denominator > 0)


def _iou_union(ac, bc):
    """(IoU, union) from xyxy columns, float32, in the exact order TensorFlow's NMS kernel uses.

    inter = max(min(ax2, bx2) - max(ax1, bx1), 0) * max(min(ay2, by2) - max(ay1, by1), 0)
    union = (area_a + area_b) - inter;  IoU = inter / union, and 0 when union = 0.
    """
    ax1, ay1, ax2, ay2 = ac
    bx1, by1, bx2, by2 = bc
    inter_w = np.maximum(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0)
    inter_h = np.maximum(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0)
    inter = inter_h * inter_w
    union = ((ay2 - ay1) * (ax2 - ax1) + (by2 - by1) * (bx2 - bx1)) - inter
    return _safe_divide(inter, union), union


def _enclosing_wh(ac, bc):
    """Width and height of the smallest box enclosing both boxes."""
    return np.maximum(ac[2], bc[2]) - np.minimum(ac[0], bc[0]), np.maximum(ac[3], bc[3]) - np.minimum(ac[1], bc[1])


def box_iou(a, b, aligned=False) -> np.ndarray:
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


def generalized_box_iou(a, b, aligned=False) -> np.ndarray:
    """GIoU = IoU - (C - union) / C, C the area of the smallest box enclosing both; in [-1, 1].

    Shapes as :func:`box_iou`; the penalty is 0 when C = 0 (both boxes one point).
    """
    ac, bc = _pair_columns(a, b, aligned)
    iou, union = _iou_union(ac, bc)
    enclosing_w, enclosing_h = _enclosing_wh(ac, bc)
    enclosing = enclosing_w * enclosing_h
    return iou - _safe_divide(enclosing - union, enclosing)


def distance_box_iou(a, b, aligned=False) -> np.ndarray:
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


def complete_box_iou(a, b, aligned=False) -> np.ndarray:
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


def nms(boxes, scores, iou_threshold=0.45, score_threshold=float("-inf"), class_ids=None, max_detections=None) -> np.ndarray:
    """Greedy non-max suppression; keeps exactly what ``tf.image.non_max_suppression`` keeps.

    Boxes are visited by descending score (equal scores: lower index first); a box is kept
    unless a kept box of its class overlaps it with IoU > ``iou_threshold`` (strictly, IoU in
    float32 as TensorFlow computes it). Only boxes with score > ``score_threshold`` (strictly)
    take part. Zero-area boxes overlap nothing, so they are kept whenever their score passes.

    Args:
        boxes: (N, 4) xyxy boxes (any units).
        scores: (N,) numbers.
        iou_threshold: in [0, 1].
        score_threshold: boxes scoring <= this are dropped first; the default keeps all finite scores.
        class_ids: optional (N,) integers; boxes only suppress boxes of the same class.
        max_detections: optional cap on the number of kept boxes (the top ones are kept).

    Returns:
        (K,) int64 indices into ``boxes``, in descending score order.

    Without TensorFlow's one-box-at-a-time loop: overlapping pairs come from a multi-scale grid
    (only boxes in nearby cells of similar size can reach IoU > threshold), then the greedy
    decisions are resolved over that sparse overlap graph, several boxes per step.
    """
    boxes = _as_xyxy(boxes)
    scores = _as_array(scores, "scores", ndim=1).astype(np.float32, copy=False)
    if len(scores) != len(boxes):
        raise ValueError(f"scores must have one entry per box: {len(boxes)} boxes but {len(scores)} scores.")
    class_ids = _as_class_ids(class_ids, len(boxes))
    _check_threshold("iou_threshold", iou_threshold)
    max_detections = _check_max_detections(max_detections)
    order = _score_order(scores, score_threshold)
    ranked = boxes[order]
    ranked_classes = None if class_ids is None else class_ids[order]
    first, second = _suppressing_pairs(ranked, ranked_classes, iou_threshold)
    kept = order[_resolve_greedy(len(order), first, second)]
    return kept[:max_detections].astype(np.int64)


def _check_max_detections(max_detections):
    if max_detections is None:
        return None
    if isinstance(max_detections, bool) or not isinstance(max_detections, (int, np.integer)) or max_detections < 0:
        raise ValueError(f"max_detections must be None or an integer >= 0, received {max_detections!r}.")
    return int(max_detections)


def _score_order(scores, score_threshold):
    """Indices of boxes scoring > ``score_threshold``, by descending score, ties by lower index."""
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, (int, float, np.integer, np.floating)) or math.isnan(score_threshold):
        raise ValueError(f"score_threshold must be a number, received {score_threshold!r}.")
    candidates = np.flatnonzero(scores > np.float32(score_threshold))
    return candidates[np.argsort(-scores[candidates], kind="stable")]


def _suppressing_pairs(boxes, classes, iou_threshold):
    """Rank pairs ``(first, second)``, first < second, same class, with IoU > ``iou_threshold``."""
    first, second = _candidate_pairs(boxes, classes, iou_threshold)
    columns = boxes.T
    iou, _ = _iou_union(columns[:, first], columns[:, second])
    overlapping = iou > np.float32(iou_threshold)
    return first[overlapping], second[overlapping]


def _candidate_pairs(boxes, classes, iou_threshold, subdivisions=4):
    """Every pair of positive-area, same-class boxes that might overlap with IoU > threshold.

    Necessary conditions for IoU > t, on widths (and likewise heights): IoU <= inter / area_a
    <= iw / w_a and <= iw / w_b, so iw > t * max(w_a, w_b); with iw <= min(w_a, w_b) that gives
    w_b < w_a / t, and the centres are closer than f(w_b) = (w_a + w_b) / 2 - t * max(w_a, w_b).
    Boxes go to pyramid levels l = floor(log2 max(w, h)); level l is a grid of cells of side
    2^(l + 1) / subdivisions. A box queries its own level and each level up to the largest
    partner size it allows, in the rows and columns of cells its centre window (the largest f
    over the partner sizes of that level) touches: all queries at once, one sort, two
    searchsorted calls and one expansion. Small boxes never query larger-level partners' cells
    below them, so every pair is found once (twice within one level, deduplicated).
    """
    none = np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes.astype(np.float64).T
    width, height = x2 - x1, y2 - y1
    live = np.flatnonzero((width > 0) & (height > 0))  # zero-area boxes overlap nothing
    if live.size < 2 or iou_threshold >= 1:
        return none, none
    # The margin keeps the bounds safe when TensorFlow's float32 IoU rounds up past the threshold.
    t = max(float(iou_threshold) - 1e-4, 0.0)
    width, height = width[live], height[live]
    cx, cy = x1[live] + width / 2, y1[live] + height / 2
    cx, cy = cx - cx.min(), cy - cy.min()
    classes = np.zeros(live.size, np.int64) if classes is None else np.unique(classes[live], return_inverse=True)[1].ravel()
    class_count = int(classes.max()) + 1

    side = np.maximum(width, height)
    level = np.floor(np.log2(side)).astype(np.int64)
    top = np.floor(np.log2(side / t)).astype(np.int64) if t > 0 else np.full_like(level, level.max())
    # key = ((level - lowest) * classes + class) * G^2 + gy * G + gx must fit in int63, G = 2^cell_bits.
    level_span = int(top.max() - level.min()) + 1
    cell_bits = (62 - level_span.bit_length() - class_count.bit_length()) // 2
    grid = 1 << cell_bits
    # No level finer than one whose cells cover the extent in G cells (tiny boxes share them).
    finest = math.ceil(math.log2(subdivisions * max(cx.max(), cy.max(), 1e-30))) - cell_bits
    level, top = np.maximum(level, finest), np.maximum(top, finest)
    lowest = int(level.min())

    def cell_key(at_level, row, column):
        return (((at_level - lowest) * class_count + classes_at) * grid + row) * grid + column

    own_cell = 2.0 ** (level + 1) / subdivisions
    classes_at = classes
    key = cell_key(level, (cy // own_cell).astype(np.int64), (cx // own_cell).astype(np.int64))
    by_key = np.argsort(key, kind="stable")
    sorted_keys = key[by_key]

    # Queries (box, level offset d, window row r), shaped (n, reach + 1, rows).
    reach = int((top - level).max())
    query_level = level[:, None] + np.arange(reach + 1)
    valid = query_level <= top[:, None]
    largest = 2.0 ** (query_level + 1)  # partner side < 2^(level + 1)
    x_lo, x_hi = _window(cx, width, largest, t, subdivisions, grid)
    y_lo, y_hi = _window(cy, height, largest, t, subdivisions, grid)
    rows = int((y_hi - y_lo)[valid].max()) + 1
    row = y_lo[..., None] + np.arange(rows)
    classes_at = classes[:, None, None]
    lo = np.searchsorted(sorted_keys, cell_key(query_level[..., None], row, x_lo[..., None]), side="left")
    hi = np.searchsorted(sorted_keys, cell_key(query_level[..., None], row, x_hi[..., None]), side="right")
    counts = np.where(valid[..., None] & (row <= y_hi[..., None]), hi - lo, 0).ravel()

    owner, position = _expand_ranges(lo.ravel(), counts)
    query, partner = owner // ((reach + 1) * rows), by_key[position]
    same_level = owner // rows % (reach + 1) == 0
    keep = ~same_level | (query < partner)  # within a level both boxes find each other (and themselves)
    query, partner = query[keep], partner[keep]
    return live[np.minimum(query, partner)], live[np.maximum(query, partner)]


def _window(centre, size, largest, t, subdivisions, grid):
    """First and last grid cell (per axis) a partner's centre can fall in, shaped like ``largest``.

    Partner sizes w_b lie below w_max = min(largest, w_a / t); the centre distance is below
    max over w_b <= w_max of f(w_b) = (w_a + w_b) / 2 - t * max(w_a, w_b), which f piecewise
    linear reaches at w_b = min(w_a, w_max) or at w_b = w_max.
    """
    size = size[:, None]
    partner_max = np.minimum(largest, size / t) if t > 0 else largest
    reach = np.maximum(
        (size + np.minimum(size, partner_max)) / 2 - t * size,
        (size + partner_max) / 2 - t * np.maximum(size, partner_max),
    )
    cell = largest / subdivisions
    low = ((centre[:, None] - reach) // cell).clip(0, grid - 1).astype(np.int64)
    high = ((centre[:, None] + reach) // cell).clip(0, grid - 1).astype(np.int64)
    return low, high


def _expand_ranges(starts, counts):
    """For ranges [start, start + count): the range number and the position of every member."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts)), counts)
    first_slot = np.cumsum(counts) - counts
    return owner, np.arange(total) + (starts - first_slot)[owner]


def _resolve_greedy(count, first, second):
    """Boolean keep mask of greedy NMS over ranks 0..count-1 given suppressing pairs first < second.

    A box is kept iff no kept box suppresses it. Each round keeps every undecided box whose
    suppressors are all decided-suppressed and suppresses every box with a kept suppressor;
    the best-ranked undecided box is always decided, and clustered boxes settle in a few rounds.
    """
    undecided, kept, suppressed = 0, 1, 2
    state = np.zeros(count, np.int8)
    state[np.bincount(second, minlength=count) == 0] = kept
    while first.size:
        state[second[state[first] == kept]] = suppressed
        live = (state[first] == undecided) & (state[second] == undecided)
        first, second = first[live], second[live]
        state[(state == undecided) & (np.bincount(second, minlength=count) == 0)] = kept
    state[state == undecided] = kept
    return state == kept
