"""Scoring a segmenter: mIoU, Dice, per-class IoU, pixel accuracy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cvapps.runtime import open_model
from cvapps.segmentation.draw import comparison_figure
from cvapps.segmentation.metrics import confusion_matrix, segmentation_metrics
from cvapps.segmentation.predict import predict_probabilities

if TYPE_CHECKING:
    import keras

    from cvapps.runtime import OpenedModel
    from cvapps.segmentation.data import SegmentationData

# --- evaluation --------------------------------------------------------------------------------


def evaluate_segmenter(
    model: str | Path | keras.Model | OpenedModel,
    data: SegmentationData,
    tile: int | Literal["auto"] | None = "auto",
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
    samples: int = 4,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Score a segmenter on :class:`SegmentationData` at each image's original resolution.

    Args:
        model: name, path, keras.Model or opened model.
        data: its class names must equal the model's (in order).
        samples: how many (image, truth, prediction) rows to keep for the figure.

    Returns:
        (metrics, figure): metrics from :func:`segmentation_metrics` plus ``problems`` (files
        that could not be read); figure an RGB image (see :func:`comparison_figure`) or None.
    """
    from cvapps.core.sources import read_image

    model = open_model(model, task="segment")
    names = tuple(model.info.class_names)
    if tuple(data.class_names) != names:
        raise ValueError(
            f"the data's classes {list(data.class_names)} differ from the model's {list(names)}; "
            "load the data with the same --classes as in training."
        )
    confusion = np.zeros((len(names), len(names)), np.int64)
    rows, problems = [], []
    items = range(len(data))
    for i in progress(items, len(data)) if progress else items:
        try:
            image = read_image(data.paths[i])
        except ValueError as error:
            problems.append(str(error))
            continue
        truth = data.masks[i]
        probabilities = predict_probabilities(model, image, tile)
        predicted = probabilities.argmax(-1)
        confusion += confusion_matrix(truth, predicted, len(names))
        if len(rows) < samples:
            rows.append((image, truth, predicted))
    metrics = segmentation_metrics(confusion, names)
    metrics["problems"] = problems
    return metrics, (comparison_figure(rows, names) if rows else None)
