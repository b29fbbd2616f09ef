"""Text on frames: readable lines of white text on a dark box, for every app's overlays.

>>> import numpy as np
>>> from cvapps.core.annotate import draw_text_lines
>>> image = np.zeros((120, 160, 3), np.uint8)
>>> out = draw_text_lines(image, ["cat 0.93", "dog 0.04"])
>>> out.shape, out.dtype, int(image.max())     # a copy; the input is untouched
((120, 160, 3), dtype('uint8'), 0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cvapps.core.tracking import LineCounter, PolygonZone

BOX_RGB = (20, 20, 20)
TEXT_RGB = (255, 255, 255)
BOX_OPACITY = 0.7
TENTATIVE_RGB = (160, 160, 160)  # a box whose track is not confirmed yet (track id -1)
LINE_RGB = (255, 255, 255)
ZONE_RGB = (255, 170, 0)
ZONE_OPACITY = 0.25


def default_scale(image: np.ndarray) -> float:
    """OpenCV font scale readable at this image size: 0.6 at 640 px on the short side, at least 0.35."""
    return max(0.35, 0.6 * min(image.shape[:2]) / 640.0)


def draw_text_lines(
    image_rgb: np.ndarray,
    lines: str | Iterable[object],
    origin: Sequence[float] = (8, 8),
    scale: float | None = None,
) -> np.ndarray:
    """Return a copy of ``image_rgb`` with ``lines`` written top-down inside a dark box.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        lines: the text lines (a single string is one line); empty means no box.
        origin: (x, y) pixel of the box's top-left corner.
        scale: OpenCV font scale; None picks one from the image size (:func:`default_scale`).

    Returns:
        (H, W, 3) uint8 RGB copy; text that runs past the border is clipped.

    Raises:
        ValueError: the image is not (H, W, 3) uint8.
    """
    import cv2

    image = _check_rgb(image_rgb).copy()
    lines = [lines] if isinstance(lines, str) else [str(line) for line in lines]
    if not lines:
        return image
    scale = default_scale(image) if scale is None else float(scale)
    thickness = max(1, round(scale * 1.6))
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
    pad = max(2, round(6 * scale))
    ascent = max(h for (_, h), _ in sizes)
    line_height = ascent + max(baseline for _, baseline in sizes) + pad
    width = max(w for (w, _), _ in sizes) + 2 * pad
    height = line_height * len(lines) + pad
    x, y = int(origin[0]), int(origin[1])

    top, bottom = max(y, 0), min(y + height, image.shape[0])
    left, right = max(x, 0), min(x + width, image.shape[1])
    if top < bottom and left < right:
        region = image[top:bottom, left:right].astype(np.float32)
        box = np.array(BOX_RGB, np.float32)
        image[top:bottom, left:right] = (region * (1 - BOX_OPACITY) + box * BOX_OPACITY + 0.5).astype(np.uint8)
    for row, line in enumerate(lines):
        baseline_y = y + pad + row * line_height + ascent
        cv2.putText(image, line, (x + pad, baseline_y), font, scale, TEXT_RGB, thickness, cv2.LINE_AA)
    return image


def _check_rgb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"got an image of shape {image.shape} and dtype {image.dtype}; expected (H, W, 3) uint8 RGB "
            "(grayscale: np.repeat(gray[..., None], 3, axis=2); floats: np.clip(x, 0, 255).astype(np.uint8))."
        )
    return image


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour per class id (golden-ratio hue steps)."""
    import colorsys

    red, green, blue = colorsys.hsv_to_rgb((class_id * 0.618033988749895) % 1.0, 0.85, 0.95)
    return int(red * 255), int(green * 255), int(blue * 255)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable RGB colour per track id (:func:`class_colour` of the id); grey for -1 (tentative)."""
    return TENTATIVE_RGB if track_id < 0 else class_colour(int(track_id))


def draw_detections(
    image_rgb: np.ndarray, detections: Any, scale: float | None = None, labels: Sequence[str] | None = None
) -> np.ndarray:
    """Return a copy of ``image_rgb`` with each detection's box and "name confidence" label.

    Tracked detections (``detections.track_id`` not None) are coloured by track id
    (:func:`track_colour`) and labelled "#id name confidence" ("name confidence" for id -1);
    untracked ones by class.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        detections: a :class:`cvapps.detection.Detections` in this image's pixels.
        scale: OpenCV font scale; None picks one from the image size (:func:`default_scale`).
        labels: one text per detection, replacing the default labels (e.g. face names).

    >>> from cvapps.detection import Detections
    >>> image = np.zeros((60, 80, 3), np.uint8)
    >>> out = draw_detections(image, Detections([[10, 10, 40, 50]], [0.9], [0], ("person",)))
    >>> bool(out[10, 10:40].any()), int(image.max())   # the box is drawn on a copy
    (True, 0)
    """
    import cv2

    out = _check_rgb(image_rgb).copy()
    scale = scale or default_scale(out)
    thickness = max(1, int(round(scale * 3)))
    tracks = getattr(detections, "track_id", None)
    count = len(detections.xyxy)
    if labels is not None:
        labels = [labels] if isinstance(labels, str) else [str(label) for label in labels]
        if len(labels) != count:
            raise ValueError(f"draw_detections needs one label per detection ({count}); received {len(labels)}.")
    for k, (box, name, confidence, class_id) in enumerate(
        zip(detections.xyxy.round().astype(int), detections.class_name, detections.confidence, detections.class_id)
    ):
        label = f"{name} {confidence:.2f}"
        if tracks is None:
            colour = class_colour(int(class_id))
        else:
            colour = track_colour(int(tracks[k]))
            label = f"#{int(tracks[k])} {label}" if tracks[k] >= 0 else label
        label = label if labels is None else labels[k]
        x1, y1, x2, y2 = box.tolist()
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y1 - height - baseline - 2)
        cv2.rectangle(out, (x1, top), (x1 + width + 4, top + height + baseline + 2), colour, -1)
        cv2.putText(out, label, (x1 + 2, top + height + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def draw_trails(image_rgb: np.ndarray, trails: Mapping[int, np.ndarray], scale: float | None = None) -> np.ndarray:
    """Return a copy of ``image_rgb`` with each track's recent centres joined, thinner for older points.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        trails: {track id: (K, 2) pixel points, oldest first}, e.g. :attr:`cvapps.core.tracking.Tracker.trails`.
        scale: OpenCV font scale the line widths follow; None picks one from the image size.

    >>> image = np.zeros((40, 40, 3), np.uint8)
    >>> out = draw_trails(image, {0: np.array([[5, 20], [20, 20], [35, 20]], np.float32)})
    >>> bool(out[20, 10].any()), bool(out[5, 5].any()), int(image.max())
    (True, False, 0)
    """
    import cv2

    out = _check_rgb(image_rgb).copy()
    scale = scale or default_scale(out)
    widest = max(1, int(round(scale * 4)))
    for track_id, points in trails.items():
        points = np.asarray(points, np.float64).reshape(-1, 2)
        points = points[np.all(np.isfinite(points), axis=1)].round().astype(int)
        colour = track_colour(int(track_id))
        # segment k of K - 1 (oldest first) is 1 + (widest - 1) * (k + 1) / (K - 1) px wide, rounded
        for k in range(len(points) - 1):
            width = max(1, int(round(1 + (widest - 1) * (k + 1) / (len(points) - 1))))
            cv2.line(out, tuple(points[k].tolist()), tuple(points[k + 1].tolist()), colour, width, cv2.LINE_AA)
    return out


def draw_count_line(
    image_rgb: np.ndarray, counter: LineCounter, scale: float | None = None, colour: Sequence[int] = LINE_RGB
) -> np.ndarray:
    """Return a copy of ``image_rgb`` with the counting line, an arrow towards its "in" side and "in N  out M".

    The arrow starts at the line's middle and points the way a crossing counts as "in" (the
    right of start -> end on screen); the counts are written on the other side.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        counter: a :class:`cvapps.core.tracking.LineCounter` (a line given as fractions is
            resolved against this image's size if it is not yet).
        scale: OpenCV font scale; None picks one from the image size.
        colour: RGB of the line and arrow.

    >>> from cvapps.core.tracking import LineCounter
    >>> image = np.zeros((100, 200, 3), np.uint8)
    >>> out = draw_count_line(image, LineCounter("0,0.5,1,0.5"))    # y = 50, "in" is down
    >>> bool(out[50, 20].any()), bool(out[60, 100].any()), int(image.max())   # the line, the arrow below it
    (True, True, 0)
    """
    import cv2

    out = _check_rgb(image_rgb).copy()
    scale = scale or default_scale(out)
    thickness = max(1, int(round(scale * 3)))
    colour = tuple(int(c) for c in colour)
    start, end = counter.resolve(out.shape).astype(np.float64)
    cv2.line(out, _point(start), _point(end), colour, thickness, cv2.LINE_AA)
    for end_point in (start, end):
        cv2.circle(out, _point(end_point), thickness + 2, colour, -1, cv2.LINE_AA)
    d = end - start
    normal = np.array([-d[1], d[0]]) / np.hypot(*d)  # the unit normal to the right of start -> end (y down)
    middle = (start + end) / 2
    arrow = max(16.0, 60.0 * scale)
    cv2.arrowedLine(out, _point(middle), _point(middle + arrow * normal), colour, thickness, cv2.LINE_AA, 0, 0.3)
    text = f"in {counter.total_in}  out {counter.total_out}"
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, round(scale * 1.6)))
    pad = max(2, round(6 * scale))  # as draw_text_lines
    box_w, box_h = width + 2 * pad, height + baseline + 2 * pad
    # the label's centre, on the "out" side, far enough that its box clears the line's middle
    reach = abs(normal[0]) * box_w / 2 + abs(normal[1]) * box_h / 2 + thickness + pad
    centre = middle - reach * normal
    origin = (
        min(max(centre[0] - box_w / 2, 0), max(out.shape[1] - box_w, 0)),
        min(max(centre[1] - box_h / 2, 0), max(out.shape[0] - box_h, 0)),
    )
    return draw_text_lines(out, [text], origin=origin, scale=scale)


def draw_zone(
    image_rgb: np.ndarray,
    zone: PolygonZone,
    total: int,
    scale: float | None = None,
    colour: Sequence[int] = ZONE_RGB,
) -> np.ndarray:
    """Return a copy of ``image_rgb`` with the zone filled translucently, outlined, and its count written.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        zone: a :class:`cvapps.core.tracking.PolygonZone` (fractions resolved against this image).
        total: the number to write, e.g. ``zone.count(...)["total"]``.
        scale: OpenCV font scale; None picks one from the image size.
        colour: RGB of the fill and outline.

    >>> from cvapps.core.tracking import PolygonZone
    >>> image = np.zeros((100, 100, 3), np.uint8)
    >>> out = draw_zone(image, PolygonZone("20,20,80,20,80,80,20,80"), total=3)
    >>> bool(out[60, 60].any()), bool(out[95, 95].any()), int(image.max())
    (True, False, 0)
    """
    import cv2

    out = _check_rgb(image_rgb).copy()
    scale = scale or default_scale(out)
    thickness = max(1, int(round(scale * 3)))
    colour = tuple(int(c) for c in colour)
    polygon = np.round(zone.resolve(out.shape)).astype(np.int32)
    x, y, w, h = cv2.boundingRect(polygon)
    left, top, right, bottom = max(x, 0), max(y, 0), min(x + w, out.shape[1]), min(y + h, out.shape[0])
    if left < right and top < bottom:  # tint only the polygon's bounding box: out = (1 - a) out + a colour
        region = out[top:bottom, left:right]
        mask = np.zeros(region.shape[:2], np.uint8)
        cv2.fillPoly(mask, [polygon - np.array([left, top], np.int32)], 1)
        tint = np.ascontiguousarray(np.broadcast_to(np.array(colour, np.uint8), region.shape))
        tinted = cv2.addWeighted(region, 1 - ZONE_OPACITY, tint, ZONE_OPACITY, 0.0)
        cv2.copyTo(tinted, mask, region)  # region[mask > 0] = tinted[mask > 0], in place
    cv2.polylines(out, [polygon], True, colour, thickness, cv2.LINE_AA)
    top = polygon[np.lexsort((polygon[:, 0], polygon[:, 1]))[0]]  # the highest vertex (leftmost of ties)
    return draw_text_lines(
        out, [f"inside {int(total)}"], origin=(max(int(top[0]), 0), max(int(top[1]), 0)), scale=scale
    )


def _point(xy: np.ndarray) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))
