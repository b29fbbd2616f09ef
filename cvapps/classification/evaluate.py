"""Scoring a classifier: top-1/top-5, per-class precision and recall, the confusion matrix."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvapps.classification.predict import predict_probabilities
from cvapps.models import ModelInfo
from cvapps.runtime import open_model

if TYPE_CHECKING:
    import keras

    from cvapps.classification.data import ClassificationData
    from cvapps.runtime import OpenedModel

# --- evaluation --------------------------------------------------------------------------------


def evaluate_classifier(
    model: str | Path | keras.Model | OpenedModel,
    data: ClassificationData,
    batch_size: int = 256,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy, per-class precision and recall, and the confusion matrix.

    Args:
        model: a loaded classifier (Keras model, name or path; evaluation runs in Keras).
        data: a :class:`cvapps.classification.data.ClassificationData` whose class names all appear in the
            model (matched by name, so folder order does not matter).
        progress: optional ``progress(iterable, total) -> iterable`` around the batches.

    Returns:
        dict with ``top1``, ``top5`` (fractions), ``per_class`` (name -> precision, recall,
        support) and ``confusion`` (rows: true class, columns: predicted, in model order).
    """
    model = open_model(model, task="classify", runtime="keras")
    info = model.info
    to_model = data_to_model_classes(data.class_names, info)
    truth = to_model[data.labels]
    probabilities = predict_probabilities(model, data.images, batch_size, progress)
    return classification_metrics(probabilities, truth, info.class_names)


def data_to_model_classes(data_classes: Iterable[str], info: ModelInfo) -> np.ndarray:
    """Data class index -> model class index, matching folder names to the model's class names, or
    to its WordNet ids when it has them (an ImageNet model scored on ``val/n01440764/...`` folders).

    >>> info = ModelInfo("classify", ("tench", "goldfish"), 224, "m", {"wnids": ["n01440764", "n01443537"]})
    >>> data_to_model_classes(("n01443537",), info).tolist(), data_to_model_classes(("tench",), info).tolist()
    ([1], [0])

    Raises:
        ValueError: a data class is neither a class name nor a wnid of the model.
    """
    names = list(info.class_names)
    wnids = list(info.settings.get("wnids", ()))
    indices = []
    for name in data_classes:
        if name in names:
            indices.append(names.index(name))
        elif name in wnids:
            indices.append(wnids.index(name))
        else:
            shown = names if len(names) <= 20 else names[:20] + ["..."]
            hint = " or its WordNet ids (n01440764, ...)" if wnids else ""
            raise ValueError(
                f"class {name!r} in the data is not among the model's {len(names)} classes{hint}: "
                f"{shown}. Name the folders after the model's classes."
            )
    return np.asarray(indices, np.int64)


def classification_metrics(probabilities: np.ndarray, truth: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Metrics from (N, C) probabilities and (N,) true indices.

    top-k accuracy = mean over images of [truth is among the k largest probabilities].
    precision_c = TP_c / (TP_c + FP_c); recall_c = TP_c / (TP_c + FN_c); 0 when undefined.

    ``per_class`` and ``confusion`` cover the classes present in ``truth`` when they are fewer than
    the model's (1000 ImageNet classes scored on 10 imagenette folders): the confusion then has a last
    column ``"other"`` for predictions outside them, and ``confusion_classes`` names its rows.

    >>> m = classification_metrics(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]), np.array([0, 1]), ["a", "b", "c"])
    >>> m["top1"], m["confusion_classes"], m["confusion"]
    (0.5, ['a', 'b'], [[1, 0, 0], [0, 0, 1]])
    """
    num_classes = probabilities.shape[1]
    ranked = np.argsort(-probabilities, axis=1)
    hits = ranked == truth[:, None]  # (N, C)
    predicted = ranked[:, 0]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    tp = np.diag(confusion)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros(num_classes), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros(num_classes), where=confusion.sum(1) > 0)
    present = np.unique(truth)
    shown = present if len(present) < num_classes else np.arange(num_classes)
    table = confusion[shown][:, shown]
    if len(shown) < num_classes:  # predictions outside the present classes, in one "other" column
        table = np.concatenate([table, confusion[shown].sum(1, keepdims=True) - table.sum(1, keepdims=True)], axis=1)
    return {
        "top1": float(hits[:, :1].any(1).mean()),
        "top5": float(hits[:, : min(5, num_classes)].any(1).mean()),
        "per_class": {
            class_names[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "support": int(confusion[i].sum()),
            }
            for i in shown
        },
        "confusion_classes": [class_names[i] for i in shown],
        "confusion": table.tolist(),
    }
