"""Plots as images (OpenCV drawing, no plotting library): confusion matrices."""

from __future__ import annotations

import numpy as np


def confusion_matrix_image(confusion, class_names, cell=56) -> np.ndarray:
    """Draw a confusion matrix: rows are true classes, columns predicted, colour is the row
    fraction (recall of that cell), text is the count.

    Args:
        confusion: (C, C) counts.
        class_names: C names.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    import cv2

    confusion = np.asarray(confusion, np.int64)
    count = len(class_names)
    if confusion.shape != (count, count):
        raise ValueError(f"confusion has shape {confusion.shape}; expected ({count}, {count}) for {count} class names.")
    margin = 14 + 8 * max(len(n) for n in class_names)
    size = margin + cell * count + 20
    image = np.full((size + 30, size, 3), 255, np.uint8)
    rows = confusion.sum(1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(count):
        for j in range(count):
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
