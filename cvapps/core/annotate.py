"""Text on frames: readable lines of white text on a dark box, for every app's overlays.

>>> import numpy as np
>>> from cvapps.core.annotate import draw_text_lines
>>> image = np.zeros((120, 160, 3), np.uint8)
>>> out = draw_text_lines(image, ["cat 0.93", "dog 0.04"])
>>> out.shape, out.dtype, int(image.max())     # a copy; the input is untouched
((120, 160, 3), dtype('uint8'), 0)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

BOX_RGB = (20, 20, 20)
TEXT_RGB = (255, 255, 255)
BOX_OPACITY = 0.7


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


def draw_detections(image_rgb: np.ndarray, detections: Any, scale: float | None = None) -> np.ndarray:
    """Return a copy of ``image_rgb`` with each detection's box and "name confidence" label.

    Args:
        image_rgb: (H, W, 3) uint8 RGB.
        detections: a :class:`cvapps.detection.Detections` in this image's pixels.

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
    for box, name, confidence, class_id in zip(
        detections.xyxy.round().astype(int), detections.class_name, detections.confidence, detections.class_id
    ):
        colour = class_colour(int(class_id))
        x1, y1, x2, y2 = box.tolist()
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        label = f"{name} {confidence:.2f}"
        (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y1 - height - baseline - 2)
        cv2.rectangle(out, (x1, top), (x1 + width + 4, top + height + baseline + 2), colour, -1)
        cv2.putText(out, label, (x1 + 2, top + height + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
