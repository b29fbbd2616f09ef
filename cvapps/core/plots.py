"""Plots as images (OpenCV drawing, no plotting library): confusion matrices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike


def confusion_matrix_image(
    confusion: ArrayLike, class_names: Sequence[str], column_names: Sequence[str] | None = None, cell: int = 56
) -> np.ndarray:
    """Draw a confusion matrix: rows are true classes, columns predicted, colour is the row
    fraction (recall of that cell), text is the count.

    Args:
        confusion: (C, K) counts; K = C unless ``column_names`` adds columns (e.g. "other").
        class_names: C row names.
        column_names: K column names; default ``class_names``.

    Returns:
        (H, W, 3) uint8 RGB image.

    >>> confusion_matrix_image([[3, 1, 0], [0, 2, 2]], ["a", "b"], ["a", "b", "other"]).shape[2]
    3
    """
    import cv2

    confusion = np.asarray(confusion, np.int64)
    column_names = list(class_names if column_names is None else column_names)
    count, columns = len(class_names), len(column_names)
    if confusion.shape != (count, columns):
        raise ValueError(
            f"confusion has shape {confusion.shape}; expected ({count}, {columns}) for {count} class names "
            f"and {columns} column names."
        )
    margin = 14 + 8 * max(len(n) for n in [*class_names, *column_names])
    size = margin + cell * max(count, columns) + 20
    image = np.full((size + 30, size, 3), 255, np.uint8)
    rows = confusion.sum(1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(count):
        for j in range(columns):
            # White -> blue as the fraction of row i predicted as j grows.
            shade = fraction[i, j]
            colour = tuple(int(v) for v in (255 - 215 * shade, 255 - 150 * shade, 255 - 40 * shade))
            x0, y0 = margin + j * cell, margin + i * cell
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), colour, -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (200, 200, 200), 1)
            text = str(confusion[i, j])
            ink = (255, 255, 255) if shade > 0.5 else (0, 0, 0)
            (w, h), _ = cv2.getTextSize(text, font, 0.4, 1)
            cv2.putText(image, text, (x0 + (cell - w) // 2, y0 + (cell + h) // 2), font, 0.4, ink, 1, cv2.LINE_AA)
    for k, name in enumerate(class_names):
        y = margin + k * cell + cell // 2 + 4
        cv2.putText(image, name, (4, y), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for k, name in enumerate(column_names):
        # Column labels, written vertically: rotate a strip with the name.
        strip = np.full((14, margin - 4, 3), 255, np.uint8)
        cv2.putText(strip, name, (2, 11), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        strip = np.rot90(strip)
        x = margin + k * cell + (cell - strip.shape[1]) // 2
        image[4 : 4 + strip.shape[0], x : x + strip.shape[1]] = np.minimum(
            image[4 : 4 + strip.shape[0], x : x + strip.shape[1]], strip
        )
    cv2.putText(image, "rows: true class, columns: predicted", (4, size + 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def pr_curve_image(curves: Mapping[str, tuple[ArrayLike, ArrayLike]], size: int = 480) -> np.ndarray:
    """Draw precision-recall curves, one coloured line per class, recall on x and precision on y.

    Args:
        curves: {class name: (recall (P,), precision (P,))}, as
            :func:`cvapps.detection.evaluate_detector` returns with ``with_curves=True``. The
            legend gives each class's area under its monotone envelope (AP at IoU 0.5, all-point).

    Returns:
        (H, W, 3) uint8 RGB image.

    >>> import numpy as np
    >>> pr_curve_image({"person": (np.array([0.5, 1.0]), np.array([1.0, 0.5]))}).shape
    (552, 540, 3)
    """
    import cv2

    from cvapps.core.annotate import class_colour

    margin, top = 48, 24
    image = np.full((size + margin + top, size + margin + 12, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX

    def point(recall, precision):
        return int(margin + recall * size), int(top + (1 - precision) * size)

    for tick in np.linspace(0, 1, 6):
        x, y = point(tick, tick)
        cv2.line(image, (x, top), (x, top + size), (225, 225, 225), 1)
        cv2.line(image, (margin, y), (margin + size, y), (225, 225, 225), 1)
        cv2.putText(image, f"{tick:.1f}", (x - 10, top + size + 16), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(image, f"{tick:.1f}", (8, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(image, point(0, 1), point(1, 0), (0, 0, 0), 1)
    cv2.putText(image, "recall", (margin + size // 2 - 20, top + size + 34), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "precision", (4, 14), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (name, (recall, precision)) in enumerate(curves.items()):
        recall, precision = np.asarray(recall, float), np.asarray(precision, float)
        colour = class_colour(k)
        if len(recall):
            # Step plot of the envelope, from (0, first precision) to the last recall reached.
            envelope = np.maximum.accumulate(precision[::-1])[::-1]
            xs = np.concatenate([[0.0], np.repeat(recall, 2)[:-1]])
            ys = np.repeat(envelope, 2)
            points = np.array([point(x, y) for x, y in zip(xs, ys)], np.int32)
            cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
            area = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * envelope))
        else:
            area = 0.0
        y = top + size - 12 - 16 * (len(curves) - 1 - k)
        cv2.putText(image, f"{name} {area:.3f}", (margin + 8, y), font, 0.45, colour, 1, cv2.LINE_AA)
    return image
