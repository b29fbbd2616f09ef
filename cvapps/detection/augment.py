"""Augmentation that moves boxes with the pixels, for detection training (NumPy and OpenCV).

Images are (H, W, 3) uint8 RGB, boxes (N, 4) float32 xyxy pixels, class ids (N,) int64. After
every geometric change boxes are clipped to the canvas and remnants too thin or too small are
dropped together with their class ids (:func:`filter_boxes`).

    >>> import numpy as np
    >>> from cvapps.detection.augment import hflip, letterbox, letterbox_boxes, unletterbox_boxes
    >>> image = np.zeros((40, 100, 3), np.uint8)
    >>> boxes = np.array([[10, 5, 30, 25]], np.float32)
    >>> hflip(image, boxes)[1].tolist()                     # x1' = W - x2, x2' = W - x1
    [[70.0, 5.0, 90.0, 25.0]]
    >>> square, scale, pad = letterbox(image, 200)          # 100x40 -> 200x80, padded to 200x200
    >>> square.shape, scale, pad
    ((200, 200, 3), 2.0, (0, 60))
    >>> unletterbox_boxes(letterbox_boxes(boxes, scale, pad), scale, pad).tolist()
    [[10.0, 5.0, 30.0, 25.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

BORDER_VALUE = 114  # grey used for padding, as YOLOv5 does


def filter_boxes(
    boxes: ArrayLike,
    class_ids: ArrayLike,
    width: float,
    height: float,
    min_size: float = 2.0,
    min_area_ratio: float = 0.1,
    original_areas: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip boxes to ``[0, width] x [0, height]`` and drop remnants.

    A box is dropped when its clipped width or height is < ``min_size`` pixels, or, given
    ``original_areas`` (N,) (areas before cropping, in the same pixel scale), when less than
    ``min_area_ratio`` of it is left.

    Returns:
        ``(boxes (M, 4) float32, class_ids (M,) int64, keep (N,) bool)``.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    class_ids = np.asarray(class_ids, np.int64).reshape(-1)
    clipped = np.clip(boxes, 0, np.array([width, height, width, height], np.float32))
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (w >= min_size) & (h >= min_size)
    if original_areas is not None:
        keep &= w * h >= min_area_ratio * np.asarray(original_areas, np.float32)
    return clipped[keep], class_ids[keep], keep


def hflip(image: np.ndarray, boxes: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: ``x1' = W - x2``, ``x2' = W - x1``. Returns ``(image, boxes)``."""
    width = image.shape[1]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.ascontiguousarray(image[:, ::-1]), np.stack(
        [width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1
    )


def random_affine(
    image: np.ndarray,
    boxes: ArrayLike,
    class_ids: ArrayLike,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.5, 1.5),
    translate: float = 0.1,
    min_size: float = 2.0,
    border_value: int = BORDER_VALUE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random zoom about the centre by a factor in ``scale`` and shift by up to ``translate`` x size.

    The output has the input's size; boxes are moved by the same affine map (exact for
    scale + translation), clipped and filtered by :func:`filter_boxes` (remnants under 10% of
    their scaled area dropped). Returns ``(image, boxes, class_ids)``.
    """
    import cv2

    height, width = image.shape[:2]
    s = float(rng.uniform(*scale))
    tx, ty = rng.uniform(-translate, translate, 2) * (width, height)
    matrix = np.array([[s, 0, (1 - s) * width / 2 + tx], [0, s, (1 - s) * height / 2 + ty]], np.float32)
    out = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=(border_value,) * 3)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    moved = boxes * s + np.array([matrix[0, 2], matrix[1, 2]] * 2, np.float32)
    areas = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    moved, class_ids, _ = filter_boxes(moved, class_ids, width, height, min_size, 0.1, areas)
    return out, moved, class_ids


def hsv_jitter(
    image: np.ndarray, rng: np.random.Generator, hue: float = 0.015, saturation: float = 0.7, value: float = 0.4
) -> np.ndarray:
    """Random gains on hue, saturation and value (YOLOv5's defaults); boxes are unchanged.

    Gains are ``1 + uniform(-g, g)`` for each channel; hue wraps around. Returns (H, W, 3) uint8 RGB.
    """
    import cv2

    gains = rng.uniform(-1, 1, 3) * (hue, saturation, value) + 1
    h, s, v = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def letterbox(
    image: np.ndarray, size: int, border_value: int = BORDER_VALUE
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio so the long side is ``size``, then pad to ``size`` x ``size``.

    Returns:
        ``(image (size, size, 3) uint8, scale, (pad_x, pad_y))``: a point ``p`` of the input lands
        at ``p * scale + pad`` (up to half a pixel from rounding the resized size); map boxes
        with :func:`letterbox_boxes` and back with :func:`unletterbox_boxes`.
    """
    import cv2

    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer number of pixels, received {size!r}.")
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = min(size, max(1, round(width * scale))), min(size, max(1, round(height * scale)))
    if (new_w, new_h) != (width, height):
        shrinking = new_w * new_h < width * height
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.full((size, size, 3), border_value, np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = image
    return canvas, scale, (pad_x, pad_y)


def letterbox_boxes(boxes: ArrayLike, scale: float, pad: Sequence[float]) -> np.ndarray:
    """(N, 4) xyxy boxes of the original image -> letterboxed pixels: ``b * scale + pad``; float32."""
    offset = np.array([pad[0], pad[1], pad[0], pad[1]], np.float64)
    return (np.asarray(boxes, np.float64).reshape(-1, 4) * scale + offset).astype(np.float32)


def unletterbox_boxes(boxes: ArrayLike, scale: float, pad: Sequence[float]) -> np.ndarray:
    """(N, 4) xyxy letterboxed boxes (e.g. predictions) -> original pixels: ``(b - pad) / scale``; float32.

    Clip the result to the original image with :func:`cvapps.core.boxes.clip_boxes` if needed.
    """
    offset = np.array([pad[0], pad[1], pad[0], pad[1]], np.float64)
    return ((np.asarray(boxes, np.float64).reshape(-1, 4) - offset) / scale).astype(np.float32)


def mosaic(
    images: Sequence[np.ndarray],
    boxes_list: Sequence[ArrayLike],
    class_ids_list: Sequence[ArrayLike],
    size: int,
    rng: np.random.Generator,
    min_size: float = 2.0,
    border_value: int = BORDER_VALUE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four images in one ``size`` x ``size`` canvas around a random centre (YOLOv4/v5 mosaic).

    The centre ``(cx, cy)`` is drawn from ``[size/4, 3*size/4]``; each image is resized so its
    long side is ``size`` and placed with a corner on the centre (top-left image's bottom-right
    corner, top-right's bottom-left, ...), cut at the canvas edges. Boxes are scaled, shifted,
    clipped to their visible part and filtered by :func:`filter_boxes` (remnants under 10% of
    their scaled area, or thinner than ``min_size``, dropped).

    Returns:
        ``(canvas (size, size, 3) uint8, boxes (M, 4) float32, class_ids (M,) int64)``.
    """
    import cv2

    if len(images) != 4 or len(boxes_list) != 4 or len(class_ids_list) != 4:
        raise ValueError(
            f"mosaic needs exactly 4 images, box arrays and class id arrays, received {len(images)}, {len(boxes_list)}, {len(class_ids_list)}."
        )
    canvas = np.full((size, size, 3), border_value, np.uint8)
    cx, cy = (int(v) for v in rng.uniform(size / 4, 3 * size / 4, 2))
    all_boxes, all_ids = [], []
    for k, (image, boxes, ids) in enumerate(zip(images, boxes_list, class_ids_list)):
        h, w = image.shape[:2]
        r = size / max(h, w)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
        x0 = cx - nw if k in (0, 2) else cx  # placement of the resized image's top-left corner
        y0 = cy - nh if k in (0, 1) else cy
        cx1, cy1, cx2, cy2 = max(x0, 0), max(y0, 0), min(x0 + nw, size), min(y0 + nh, size)
        if cx2 > cx1 and cy2 > cy1:
            canvas[cy1:cy2, cx1:cx2] = resized[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
        moved = np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([nw / w, nh / h] * 2, np.float32) + np.array(
            [x0, y0] * 2, np.float32
        )
        areas = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
        # clip to this image's visible window first, so a box never spreads over a neighbour
        window = np.clip(moved, [cx1, cy1, cx1, cy1], [cx2, cy2, cx2, cy2]).astype(np.float32)
        kept, kept_ids, _ = filter_boxes(window, ids, size, size, min_size, 0.1, areas)
        all_boxes.append(kept)
        all_ids.append(kept_ids)
    return canvas, np.concatenate(all_boxes).reshape(-1, 4), np.concatenate(all_ids).astype(np.int64)
