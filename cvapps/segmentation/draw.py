"""Drawing segmentations: colour labels, overlay, cutout, background blur, comparison figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from cvapps.segmentation.predict import _check_image, _class_ids

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from cvapps.segmentation.predict import Segmentation

# --- drawing ------------------------------------------------------------------------------------


def colour_labels(labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB: background black, class k in
    :func:`cvapps.core.annotate.class_colour` (k - 1)."""
    from cvapps.core.annotate import class_colour

    count = int(num_classes or (labels.max() + 1 if labels.size else 1))
    palette = np.array([(0, 0, 0)] + [class_colour(k - 1) for k in range(1, max(count, 1))], np.uint8)
    return palette[np.clip(labels, 0, len(palette) - 1)]


def overlay(image: ArrayLike, segmentation: Segmentation, alpha: float = 0.5) -> np.ndarray:
    """``image`` with non-background pixels tinted by their class colour: out = (1 - a) image +
    a colour on those pixels (a = ``alpha``); background untouched.

    >>> from cvapps.segmentation import Segmentation
    >>> p = np.zeros((2, 2, 2), np.float32); p[..., 0] = 1; p[0, 0] = (0, 1)
    >>> out = overlay(np.full((2, 2, 3), 100, np.uint8), Segmentation.from_probabilities(p, ("bg", "fg")), 0.5)
    >>> out[1, 1].tolist(), bool((out[0, 0] != 100).any())
    ([100, 100, 100], True)
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], received {alpha}.")
    image = _check_image(image)
    _check_match(image, segmentation)
    colours = colour_labels(segmentation.labels, len(segmentation.class_names)).astype(np.float32)
    a = (segmentation.labels > 0)[..., None] * float(alpha)
    return np.clip(image * (1 - a) + colours * a, 0, 255).astype(np.uint8)


def cutout(
    image: ArrayLike, segmentation: Segmentation, classes: str | int | Iterable[str | int] | None = None
) -> np.ndarray:
    """(H, W, 4) uint8 RGBA: the image with alpha = probability of ``classes`` (default every
    non-background class) x 255, so the background is transparent."""
    image = _check_image(image)
    _check_match(image, segmentation)
    ids = _class_ids(classes, segmentation.class_names)
    alpha = segmentation.probabilities[..., ids].sum(-1)
    return np.dstack([image, np.clip(alpha * 255, 0, 255).astype(np.uint8)])


def blur_background(
    image: ArrayLike,
    segmentation: Segmentation,
    strength: int = 31,
    classes: str | int | Iterable[str | int] | None = None,
) -> np.ndarray:
    """Background blur: out = p * image + (1 - p) * gaussian_blur(image), p the per-pixel
    probability of ``classes`` (default every non-background class): a soft matte."""
    import cv2

    image = _check_image(image)
    _check_match(image, segmentation)
    if not isinstance(strength, int) or strength < 1:
        raise ValueError(f"strength must be a positive integer (blur kernel size), received {strength!r}.")
    kernel = strength | 1  # odd
    blurred = cv2.GaussianBlur(image, (kernel, kernel), 0).astype(np.float32)
    ids = _class_ids(classes, segmentation.class_names)
    p = segmentation.probabilities[..., ids].sum(-1)[..., None]
    return np.clip(p * image + (1 - p) * blurred, 0, 255).astype(np.uint8)


def _check_match(image, segmentation):
    if image.shape[:2] != segmentation.labels.shape:
        raise ValueError(
            f"image is {image.shape[:2]} but the segmentation is {segmentation.labels.shape}; "
            "pass the image that was segmented."
        )


def comparison_figure(
    rows: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], class_names: Sequence[str], height: int = 160
) -> np.ndarray:
    """Rows of (image, truth labels, predicted labels) -> one RGB image, a row per sample with
    the image, the truth and the prediction side by side (each scaled to ``height``)."""
    import cv2

    from cvapps.core.annotate import draw_text_lines

    lines = []
    for image, truth, predicted in rows:
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        cells = [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)]
        for labels in (truth, predicted):
            coloured = colour_labels(labels, len(class_names))
            cells.append(cv2.resize(coloured, (width, height), interpolation=cv2.INTER_NEAREST))
        cells = [draw_text_lines(c, [t]) for c, t in zip(cells, ("image", "truth", "prediction"))]
        lines.append(
            np.concatenate([c for cell in cells for c in (cell, np.full((height, 4, 3), 255, np.uint8))][:-1], 1)
        )
    widest = max(line.shape[1] for line in lines)
    lines = [np.pad(line, [(0, 4), (0, widest - line.shape[1]), (0, 0)], constant_values=255) for line in lines]
    return np.concatenate(lines, 0)
