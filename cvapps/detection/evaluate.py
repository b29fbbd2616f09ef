"""COCO-style mAP of a detector."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from cvapps.core.boxes import box_iou
from cvapps.detection import COCO_IOU_THRESHOLDS
from cvapps.detection.predict import detect

if TYPE_CHECKING:
    import keras

    from cvapps.detection.data import DetectionData
    from cvapps.detection.label import Teacher
    from cvapps.detection.predict import Detections
    from cvapps.runtime import OpenedModel

OPERATING_THRESHOLD = 0.25  # where per-class precision/recall and the recall by size are read off
SIZE_RANGES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, np.inf)}  # COCO's areas

# --- evaluation --------------------------------------------------------------------------------


def match_predictions(
    pred_xyxy: np.ndarray,
    pred_scores: np.ndarray,
    true_xyxy: np.ndarray,
    iou_thresholds: ArrayLike = COCO_IOU_THRESHOLDS,
) -> np.ndarray:
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
        hits[:, k] = _greedy_match(iou, pred_scores, threshold) >= 0
    return hits


def _greedy_match(iou: np.ndarray, pred_scores: np.ndarray, threshold: float) -> np.ndarray:
    """COCO's greedy matching at one IoU threshold: (P,) int64, the truth each prediction took, or -1.

    ``iou``: (P, T); predictions go in descending score order, each taking the unmatched truth it
    overlaps most if that IoU >= ``threshold``.
    """
    matched = np.full(len(iou), -1, np.int64)
    if iou.size == 0:
        return matched
    taken = np.zeros(iou.shape[1], bool)
    for p in np.argsort(-np.asarray(pred_scores), kind="stable"):
        candidates = np.where(taken, -1.0, iou[p])
        best = int(np.argmax(candidates))
        if candidates[best] >= threshold:
            taken[best] = True
            matched[p] = best
    return matched


def recall_by_size(
    predictions: Sequence[Detections],
    truths: Sequence[tuple[ArrayLike, ArrayLike]],
    confidence_threshold: float = OPERATING_THRESHOLD,
    iou_threshold: float = 0.5,
) -> dict[str, dict[str, Any]]:
    """Recall for small, medium and large truth boxes (COCO's area ranges).

    A truth box is small when its area (width x height, in the pixels of its original image) is below
    32², medium from 32² up to below 96², large from 96². It is found when a prediction of its own class
    scoring >= ``confidence_threshold`` matches it at IoU >= ``iou_threshold``, each truth taken at most
    once, greedily in descending score order (as :func:`match_predictions`). The defaults (0.25, IoU 0.5)
    are the operating point of the per-class ``precision`` and ``recall`` of :func:`mean_average_precision`.

    Args:
        predictions: one :class:`Detections` per image.
        truths: one (boxes (T, 4) xyxy pixels, class_ids (T,)) pair per image, same order; class ids
            index the predictions' classes.

    Returns:
        {"small" | "medium" | "large": {"num_true": int, "recall": float, or None when num_true is 0}}.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction sets for {len(truths)} images; they must match.")
    areas, found = [np.zeros(0)], [np.zeros(0, bool)]
    for detections, (true_xyxy, true_ids) in zip(predictions, truths):
        true_xyxy = np.asarray(true_xyxy, np.float32).reshape(-1, 4)
        true_ids = np.asarray(true_ids, np.int64).reshape(-1)
        hit = np.zeros(len(true_ids), bool)
        confident = detections.confidence >= confidence_threshold
        for c in np.unique(true_ids):
            mine, theirs = np.flatnonzero(true_ids == c), confident & (detections.class_id == c)
            if theirs.any():
                iou = box_iou(detections.xyxy[theirs], true_xyxy[mine])
                taken = _greedy_match(iou, detections.confidence[theirs], iou_threshold)
                hit[mine[taken[taken >= 0]]] = True
        areas.append((true_xyxy[:, 2] - true_xyxy[:, 0]) * (true_xyxy[:, 3] - true_xyxy[:, 1]))
        found.append(hit)
    areas, found = np.concatenate(areas), np.concatenate(found)
    result = {}
    for name, (low, high) in SIZE_RANGES.items():
        inside = (areas >= low) & (areas < high)
        count = int(inside.sum())
        result[name] = {"num_true": count, "recall": float(found[inside].mean()) if count else None}
    return result


def average_precision(tp: np.ndarray, scores: np.ndarray, num_true: int) -> float:
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


def mean_average_precision(
    predictions: Sequence[Detections],
    truths: Sequence[tuple[ArrayLike, ArrayLike]],
    num_classes: int,
    confidence_threshold: float = OPERATING_THRESHOLD,
) -> dict[str, Any]:
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
        per_class.append(
            {
                "ap50": aps[0],
                "ap50_95": float(np.mean(aps)),
                "precision": float(found_true / kept.sum()) if kept.sum() else 0.0,
                "recall": float(found_true / num_true[c]) if num_true[c] else float("nan"),
                "num_true": int(num_true[c]),
                "pr_curve": (cumulative / max(num_true[c], 1), cumulative / np.arange(1, len(order) + 1)),
            }
        )
    scored = [row for row in per_class if row["num_true"] > 0]
    return {
        "map50": float(np.mean([r["ap50"] for r in scored])) if scored else float("nan"),
        "map50_95": float(np.mean([r["ap50_95"] for r in scored])) if scored else float("nan"),
        "per_class": per_class,
    }


def evaluate_detector(
    model: str | Path | keras.Model | OpenedModel | Teacher,
    data: DetectionData,
    confidence_threshold: float = 0.001,
    iou_threshold: float = 0.6,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
    with_curves: bool = False,
    groups: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """COCO-style mAP of a detector on a :class:`cvapps.detection.data.DetectionData`.

    The model's classes are matched to the data's by name: boxes of classes the model does not
    know are left out (of the mAP and of the recall by size), so a person detector can be scored on
    the persons of a multi-class set.

    Args:
        model: a cvapps detector (what :func:`cvapps.runtime.open_model` takes), or a teacher from
            :func:`cvapps.detection.label.open_teacher` (e.g. an ONNX file of the YOLOX or NanoDet
            layout); both are run the same way, once per image.
        confidence_threshold, iou_threshold: of the detection (a low confidence threshold for mAP).
        groups: {name: indices into ``data.samples``}, e.g. the images of each merged source folder;
            each group is scored from the same predictions (no image is detected twice).

    Returns:
        dict from :func:`mean_average_precision` (``map50``, ``map50_95``, ``per_class``), with
        ``per_class`` keyed by class name; ``size_recall`` from :func:`recall_by_size` (small, medium
        and large truth boxes, recall at IoU 0.5 among predictions scoring >= 0.25, the operating point
        of the per-class precision and recall); and ``problems``: one line per image that could not be
        read (left out of the score), then a count line; empty when every image was read. With
        ``groups``, also ``by_source``: {name: {"images": images scored, "map50", "map50_95",
        "per_class": {class name: {ap50, ap50_95, precision, recall, num_true}} (only the classes with
        truth boxes in the group), "size_recall"}}. With ``with_curves``, also ``pr_curves``:
        {class name: (recall, precision) arrays at IoU 0.5} for :func:`cvapps.core.plots.pr_curve_image`
        (not JSON; take it out before writing the report).

    Raises:
        TypeError: ``groups`` is not a mapping of index sequences.
        ValueError: a group index outside ``data.samples``.
    """
    from cvapps.core.sources import read_image

    groups = _check_groups(groups, len(data.samples))
    names, run = _detector(model)
    to_model = np.array([names.index(n) if n in names else -1 for n in data.class_names], np.int64)
    truths = []
    for sample in data.samples:
        ids = to_model[sample.class_ids] if len(sample.class_ids) else np.zeros(0, np.int64)
        truths.append((sample.boxes[ids >= 0], ids[ids >= 0]))
    paths = [str(p) for p in data.paths]
    found: list[Detections | None] = [None] * len(paths)  # None: unreadable, left out
    problems = []
    for k, path in enumerate(progress(paths, len(paths)) if progress else paths):
        try:
            image = read_image(path)
        except ValueError as error:  # e.g. changed since loading; the loaders leave out what they can see
            problems.append(f"{error} Left out of the score.")
            continue
        found[k] = run(image, confidence_threshold, iou_threshold)
    if problems:
        problems.append(f"{len(problems)} of {len(paths)} images could not be read and were left out of the score")
    read = [k for k, detections in enumerate(found) if detections is not None]
    metrics = mean_average_precision([found[k] for k in read], [truths[k] for k in read], len(names))
    if with_curves:
        metrics["pr_curves"] = {name: row["pr_curve"] for name, row in zip(names, metrics["per_class"])}
    metrics["per_class"] = {
        name: {k: v for k, v in row.items() if k != "pr_curve"} for name, row in zip(names, metrics["per_class"])
    }
    metrics["size_recall"] = recall_by_size([found[k] for k in read], [truths[k] for k in read])
    if groups is not None:
        metrics["by_source"] = {}
        for group, indices in groups.items():
            scored = [k for k in indices if found[k] is not None]
            part = mean_average_precision([found[k] for k in scored], [truths[k] for k in scored], len(names))
            metrics["by_source"][group] = {
                "images": len(scored),
                "map50": part["map50"],
                "map50_95": part["map50_95"],
                "per_class": {
                    name: {k: v for k, v in row.items() if k != "pr_curve"}
                    for name, row in zip(names, part["per_class"])
                    if row["num_true"] > 0
                },
                "size_recall": recall_by_size([found[k] for k in scored], [truths[k] for k in scored]),
            }
    metrics["problems"] = problems
    return metrics


def _detector(
    model: str | Path | keras.Model | OpenedModel | Teacher,
) -> tuple[list[str], Callable[[np.ndarray, float, float], Detections]]:
    """(class names, run): ``run(image, confidence_threshold, iou_threshold)`` -> the :class:`Detections` of one
    (H, W, 3) uint8 RGB image, for a cvapps detector and a teacher alike."""
    from cvapps.detection.label import Teacher

    if isinstance(model, Teacher):
        return list(model.class_names), model
    from cvapps.runtime import open_model

    opened = open_model(model, task="detect", runtime="keras")

    def run(image: np.ndarray, confidence_threshold: float, iou_threshold: float) -> Detections:
        return detect(image, opened, confidence_threshold=confidence_threshold, iou_threshold=iou_threshold)[0]

    return list(opened.info.class_names), run


def _check_groups(groups: Mapping[str, Sequence[int]] | None, count: int) -> dict[str, list[int]] | None:
    """``groups`` as {name: list of ints}, each in 0 .. count - 1."""
    if groups is None:
        return None
    if not isinstance(groups, Mapping):
        raise TypeError(
            f"groups must be a mapping {{name: indices into data.samples}}; received {type(groups).__name__}."
        )
    checked = {}
    for name, indices in groups.items():
        values = np.asarray(indices if not isinstance(indices, (str, bytes)) else [indices]).reshape(-1)
        if values.size and values.dtype.kind not in "iu":
            raise TypeError(
                f"groups[{name!r}] must be integer indices into data.samples; received {values.dtype} values "
                f"{values[:3].tolist()}."
            )
        bad = values[(values < 0) | (values >= count)] if values.size else values
        if bad.size:
            raise ValueError(
                f"groups[{name!r}] holds index {int(bad[0])}, outside the {count} samples of the data "
                f"(0 .. {count - 1}); give indices into data.samples."
            )
        checked[str(name)] = values.astype(np.int64).tolist()
    return checked
