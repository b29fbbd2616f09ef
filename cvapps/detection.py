"""Object detection: the result type and the COCO-style evaluation metric.

This module grows into the YOLO-style detector app (shared backbone P3-P5, neck, anchor head,
``detect()``); what it holds today is what every detector result and every evaluation uses:

    >>> import numpy as np
    >>> from cvapps.detection import Detections, mean_average_precision
    >>> found = Detections(xyxy=[[10, 10, 50, 50], [60, 60, 90, 90]], confidence=[0.9, 0.4],
    ...                    class_id=[0, 1], class_names=("person", "dog"))
    >>> len(found), found.class_name
    (2, ['person', 'dog'])
    >>> found[found.confidence > 0.5].class_name          # boolean-mask indexing
    ['person']
    >>> truth = [(np.array([[10, 10, 50, 50]], np.float32), np.array([0]))]
    >>> metrics = mean_average_precision([found], truth, num_classes=2)
    >>> metrics["map50"], metrics["per_class"][0]["ap50"]
    (1.0, 1.0)

Boxes are xyxy pixels of the original image (see :mod:`cvapps.boxes` for other formats).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvapps.boxes import box_iou

COCO_IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)  # 0.50, 0.55, ..., 0.95


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detections:
    """Detections in one image, in the one internal box format.

    Attributes:
        xyxy: (N, 4) float32 boxes, x1 <= x2 and y1 <= y2, pixels of the original image.
        confidence: (N,) float32 scores in [0, 1].
        class_id: (N,) int64 indices into ``class_names``.
        class_names: the model's class names.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: tuple = ()

    def __post_init__(self):
        xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        confidence = np.asarray(self.confidence, np.float32).reshape(-1)
        class_id = np.asarray(self.class_id).reshape(-1)
        if not len(xyxy) == len(confidence) == len(class_id):
            raise ValueError(
                f"Detections needs as many boxes as confidences and class ids; received "
                f"{len(xyxy)}, {len(confidence)} and {len(class_id)}."
            )
        if len(class_id) and not np.all(np.equal(np.mod(class_id, 1), 0)):
            raise ValueError(f"class_id must hold integers; received {class_id[:5]}.")
        class_id = class_id.astype(np.int64)
        if not np.all(np.isfinite(xyxy)) or np.any(xyxy[:, 2:] < xyxy[:, :2]):
            raise ValueError("boxes must be finite xyxy with x1 <= x2 and y1 <= y2; convert with cvapps.boxes.to_xyxy.")
        if np.any((confidence < 0) | (confidence > 1)):
            raise ValueError("confidence must be in [0, 1].")
        if self.class_names and len(class_id) and (class_id.min() < 0 or class_id.max() >= len(self.class_names)):
            raise ValueError(f"class_id values must index the {len(self.class_names)} class_names.")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @classmethod
    def empty(cls, class_names=()):
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), class_names)

    def __len__(self):
        return len(self.xyxy)

    def __getitem__(self, index):
        """Select detections by boolean mask, integer array or slice; returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.class_names)

    @property
    def class_name(self):
        """Name of each detection's class (``str(class_id)`` when the model has no names)."""
        return [self.class_names[i] if self.class_names else str(i) for i in self.class_id]

    def to_dict(self):
        """One JSON-ready record per detection."""
        return [
            {"box": [round(float(v), 2) for v in box], "confidence": round(float(c), 6), "class_id": int(i), "class_name": n}
            for box, c, i, n in zip(self.xyxy, self.confidence, self.class_id, self.class_name)
        ]


# --- evaluation --------------------------------------------------------------------------------


def match_predictions(pred_xyxy, pred_scores, true_xyxy, iou_thresholds=COCO_IOU_THRESHOLDS):
    """COCO matching in one image for one class: which predictions are true positives.

    Predictions are taken in descending score order; each is matched to the unmatched truth box
    it overlaps most, if that IoU >= the threshold. Done for every threshold at once.

    Args:
        pred_xyxy: (P, 4) predicted boxes; pred_scores: (P,).
        true_xyxy: (T, 4) truth boxes.
        iou_thresholds: (K,) IoU thresholds.

    Returns:
        (P, K) bool: true positive at each threshold, rows in the input order.
    """
    pred_count, thresholds = len(pred_xyxy), np.asarray(iou_thresholds)
    hits = np.zeros((pred_count, len(thresholds)), bool)
    if pred_count == 0 or len(true_xyxy) == 0:
        return hits
    iou = box_iou(pred_xyxy, true_xyxy)  # (P, T)
    for k, threshold in enumerate(thresholds):
        taken = np.zeros(len(true_xyxy), bool)
        for p in np.argsort(-np.asarray(pred_scores), kind="stable"):
            candidates = np.where(taken, -1.0, iou[p])
            best = int(np.argmax(candidates))
            if candidates[best] >= threshold:
                taken[best] = True
                hits[p, k] = True
    return hits


def average_precision(tp, scores, num_true):
    """COCO's 101-point interpolated average precision for one class.

    Args:
        tp: (P,) bool true-positive flags of all predictions of the class over the data set.
        scores: (P,) their confidences.
        num_true: number of truth boxes of the class.

    precision(r) is made monotone (the envelope max over r' >= r), then averaged at
    r = 0, 0.01, ..., 1; recall levels never reached count as precision 0.
    """
    if num_true == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(tp, np.float64)[order]
    true_positives = np.cumsum(hits)
    recall = true_positives / num_true
    precision = true_positives / np.arange(1, len(hits) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    levels = np.linspace(0, 1, 101)
    where = np.searchsorted(recall, levels, side="left")  # first rank reaching each recall level
    sampled = np.where(where < len(envelope), envelope[np.minimum(where, len(envelope) - 1)], 0.0)  # unreached: 0
    return float(sampled.mean())


def mean_average_precision(predictions, truths, num_classes, confidence_threshold=0.25):
    """COCO-style mAP over a data set.

    Args:
        predictions: one :class:`Detections` per image (predict with a low confidence threshold,
            e.g. 0.001, for mAP).
        truths: one (boxes (T, 4) xyxy, class_ids (T,)) pair per image, same order.
        num_classes: number of classes (class ids 0 .. num_classes - 1 in both).
        confidence_threshold: where the per-class ``precision`` and ``recall`` (at IoU 0.5) are
            read off; mAP itself uses every prediction.

    Returns:
        dict: ``map50`` and ``map50_95`` (means over classes that have truth boxes), and
        ``per_class``: a list of dicts with ``ap50``, ``ap50_95``, ``precision``, ``recall``,
        ``num_true``, and ``pr_curve`` (recall, precision arrays at IoU 0.5) per class.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction sets for {len(truths)} images; they must match.")
    hits, scores, labels, num_true = [], [], [], np.zeros(num_classes, np.int64)
    for found, (true_xyxy, true_ids) in zip(predictions, truths):
        true_xyxy = np.asarray(true_xyxy, np.float32).reshape(-1, 4)
        true_ids = np.asarray(true_ids, np.int64).reshape(-1)
        num_true += np.bincount(true_ids, minlength=num_classes)[:num_classes]
        for c in np.unique(found.class_id):
            mine = found.class_id == c
            hits.append(match_predictions(found.xyxy[mine], found.confidence[mine], true_xyxy[true_ids == c]))
            scores.append(found.confidence[mine])
            labels.append(np.full(int(mine.sum()), c))
    hits = np.concatenate(hits) if hits else np.zeros((0, len(COCO_IOU_THRESHOLDS)), bool)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    per_class = []
    for c in range(num_classes):
        mine = labels == c
        aps = [average_precision(hits[mine, k], scores[mine], num_true[c]) for k in range(hits.shape[1])]
        kept = mine & (scores >= confidence_threshold)
        found_true = hits[kept, 0].sum()
        order = np.argsort(-scores[mine], kind="stable")
        cumulative = np.cumsum(hits[mine, 0][order])
        per_class.append({
            "ap50": aps[0],
            "ap50_95": float(np.mean(aps)),
            "precision": float(found_true / kept.sum()) if kept.sum() else 0.0,
            "recall": float(found_true / num_true[c]) if num_true[c] else float("nan"),
            "num_true": int(num_true[c]),
            "pr_curve": (cumulative / max(num_true[c], 1), cumulative / np.arange(1, len(order) + 1)),
        })
    scored = [row for row in per_class if row["num_true"] > 0]
    return {
        "map50": float(np.mean([r["ap50"] for r in scored])) if scored else float("nan"),
        "map50_95": float(np.mean([r["ap50_95"] for r in scored])) if scored else float("nan"),
        "per_class": per_class,
    }
