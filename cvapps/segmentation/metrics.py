"""Loss terms by name, and the IoU and Dice metrics from a confusion matrix (NumPy)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cvapps.segmentation import LOSS_TERMS

# --- losses and metrics ------------------------------------------------------------------------


def parse_loss(text: str) -> dict[str, float]:
    """``"ce+dice"`` -> {"ce": 1.0, "dice": 1.0}; terms may carry weights: ``"ce+0.5*dice"``.

    >>> parse_loss("focal+0.5*dice")
    {'focal': 1.0, 'dice': 0.5}
    """
    terms = {}
    for part in str(text).replace(" ", "").split("+"):
        weight, _, name = part.rpartition("*")
        if name not in LOSS_TERMS:
            raise ValueError(
                f"unknown loss term {name!r} in {text!r}; use ce, dice, focal joined by +, e.g. 'ce+dice'."
            )
        try:
            terms[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"bad weight {weight!r} in loss {text!r}; write e.g. '0.5*dice'.") from None
    return terms


def confusion_matrix(truth: ArrayLike, predicted: ArrayLike, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows the true class, columns the predicted one.

    >>> confusion_matrix(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]), 2).tolist()
    [[1, 0], [1, 2]]
    """
    index = np.asarray(truth, np.int64).ravel() * num_classes + np.asarray(predicted, np.int64).ravel()
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(confusion: ArrayLike, class_names: Iterable[str]) -> dict[str, Any]:
    """IoU and Dice per class and their means, and pixel accuracy, from a (C, C) confusion.

    IoU_c = TP / (TP + FP + FN); Dice_c = 2 TP / (2 TP + FP + FN); ``miou``/``dice`` average the
    classes present in the truth or the prediction; pixel accuracy = trace / total.

    >>> m = segmentation_metrics(np.array([[1, 0], [1, 2]]), ("bg", "fg"))
    >>> m["per_class"]["fg"]["iou"], m["per_class"]["bg"]["iou"], m["pixel_accuracy"]   # 2/3, 1/2, 3/4
    (0.666667, 0.5, 0.75)
    >>> m["miou"], m["dice"]    # (2/3 + 1/2) / 2; (4/5 + 2/3) / 2
    (0.583333, 0.733333)
    """
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
    union = tp + fp + fn
    present = union > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=present)
    dice = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=present)
    total = confusion.sum()
    return {
        "miou": round(float(iou[present].mean()) if present.any() else 0.0, 6),
        "dice": round(float(dice[present].mean()) if present.any() else 0.0, 6),
        "pixel_accuracy": round(float(tp.sum() / total) if total else 0.0, 6),
        "per_class": {
            name: {"iou": round(float(i), 6), "dice": round(float(d), 6), "pixels": int(s)}
            for name, i, d, s in zip(class_names, iou, dice, confusion.sum(1))
        },
        "confusion": confusion.astype(np.int64).tolist(),
    }
