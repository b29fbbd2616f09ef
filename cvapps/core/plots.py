"""Plots as images (OpenCV drawing, no plotting library): confusion matrices, PR curves, training curves."""

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
    footer = "rows: true class, columns: predicted"
    font = cv2.FONT_HERSHEY_SIMPLEX
    (footer_width, _), _ = cv2.getTextSize(footer, font, 0.45, 1)
    image = np.full((size + 30, max(size, footer_width + 12), 3), 255, np.uint8)  # the footer is never clipped
    rows = confusion.sum(1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
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
    cv2.putText(image, footer, (4, size + 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def pr_curve_image(curves: Mapping[str, tuple[ArrayLike, ArrayLike]], size: int = 480) -> np.ndarray:
    """Draw precision-recall curves, one coloured line per class, recall on x and precision on y.

    Args:
        curves: {class name: (recall (P,), precision (P,))}, as
            :func:`cvapps.detection.evaluate_detector` returns with ``with_curves=True``. The
            legend, in columns beside the plot (so 80 classes fit), gives each class's area under its
            monotone envelope (AP at IoU 0.5, all-point).

    Returns:
        (H, W, 3) uint8 RGB image.

    >>> import numpy as np
    >>> pr_curve_image({"person": (np.array([0.5, 1.0]), np.array([1.0, 0.5]))}).shape[0]
    552
    """
    import cv2

    from cvapps.core.annotate import class_colour

    margin, top, line = 48, 24, 16
    font = cv2.FONT_HERSHEY_SIMPLEX
    labels, areas = [], []
    for name, (recall, precision) in curves.items():
        recall, precision = np.asarray(recall, float), np.asarray(precision, float)
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(recall) else precision
        area = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * envelope)) if len(recall) else 0.0
        areas.append((recall, envelope))
        labels.append(f"{name} {area:.3f}")
    per_column = max(1, size // line)
    column_width = 16 + max((cv2.getTextSize(t, font, 0.45, 1)[0][0] for t in labels), default=0)
    legend_width = column_width * -(-len(labels) // per_column) if labels else 0
    width = margin + size + 12 + legend_width
    image = np.full((size + margin + top, width, 3), 255, np.uint8)

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
    for k, ((recall, envelope), label) in enumerate(zip(areas, labels)):
        colour = class_colour(k)
        if len(recall):
            # Step plot of the envelope, from (0, first precision) to the last recall reached.
            xs = np.concatenate([[0.0], np.repeat(recall, 2)[:-1]])
            ys = np.repeat(envelope, 2)
            points = np.array([point(x, y) for x, y in zip(xs, ys)], np.int32)
            cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
        x = margin + size + 12 + column_width * (k // per_column)
        y = top + 12 + line * (k % per_column)
        cv2.putText(image, label, (x, y), font, 0.45, colour, 1, cv2.LINE_AA)
    return image


def training_curves_image(history: Mapping[str, Sequence[float]], title: str = "", panel: int = 320) -> np.ndarray:
    """Training curves from a run's per-epoch log: one panel per quantity (``loss``, ``accuracy``, ...)
    with the training line (blue) and its ``val_`` twin (orange), epochs on x (1 ... E), the value range
    with 5 ticks on y.

    Args:
        history: {name: per-epoch values} (:func:`cvapps.nn.training.read_history`); ``learning_rate``
            and the like get a panel of their own.
        title: written above the panels.

    Returns:
        (H, W, 3) uint8 RGB image.

    >>> training_curves_image({"loss": [1.0, 0.5], "val_loss": [1.2, 0.7], "accuracy": [0.5, 0.8]}).shape
    (396, 776, 3)
    """
    import cv2

    names = [n for n in history if not n.startswith("val_")]
    names += [n[4:] for n in history if n.startswith("val_") and n[4:] not in history]  # val-only quantities
    if not names:
        raise ValueError("history is empty: no per-epoch values to plot.")
    left, top, bottom, gap = 52, 40, 36, 20
    font = cv2.FONT_HERSHEY_SIMPLEX
    image = np.full((top + panel + bottom, len(names) * (panel + left + gap) - gap + 12, 3), 255, np.uint8)
    if title:
        cv2.putText(image, title, (8, 16), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for k, name in enumerate(names):
        x0 = k * (panel + left + gap) + left
        lines = [(history.get(name), (30, 110, 220)), (history.get(f"val_{name}"), (235, 130, 30))]  # RGB
        values = np.concatenate([np.asarray(v, float) for v, _ in lines if v is not None and len(v)])
        values = values[np.isfinite(values)]
        low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        epochs = max(len(v) for v, _ in lines if v is not None)

        def point(epoch, value, x0=x0, low=low, high=high, epochs=epochs):
            x = x0 + (epoch / max(1, epochs - 1)) * panel
            y = top + (1 - (value - low) / (high - low)) * panel
            return int(round(x)), int(round(y))

        cv2.rectangle(image, (x0, top), (x0 + panel, top + panel), (0, 0, 0), 1)
        for tick in np.linspace(low, high, 5):
            _, y = point(0, tick)
            cv2.line(image, (x0, y), (x0 + panel, y), (230, 230, 230), 1)
            cv2.putText(image, f"{tick:.3g}", (x0 - left + 2, y + 4), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        for epoch in sorted({0, epochs - 1, (epochs - 1) // 2}):
            x, _ = point(epoch, low)
            cv2.putText(image, str(epoch + 1), (x - 4, top + panel + 14), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(image, "epoch", (x0 + panel // 2 - 18, top + panel + 30), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        legend = name + ("   (blue: train, orange: val)" if history.get(f"val_{name}") is not None else "")
        cv2.putText(image, legend, (x0, top - 8), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        for series, colour in lines:
            if series is None or not len(series):
                continue
            points = np.array([point(e, v) for e, v in enumerate(series) if np.isfinite(v)], np.int32)
            if len(points) > 1:
                cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
            for p in points:
                cv2.circle(image, tuple(int(c) for c in p), 2, colour, -1)
    return image
