"""Segmentation's Keras loss and metric: imported by training and evaluation only, so that
``import cvapps.segmentation`` (the predict path) imports no TensorFlow.

    >>> import numpy as np
    >>> loss = SegmentationLoss("ce", num_classes=2)
    >>> y_true = np.zeros((1, 2, 2, 1), "float32"); y_pred = np.full((1, 2, 2, 2), 0.5, "float32")
    >>> round(float(loss(y_true, y_pred)), 4)   # -log 0.5 at every pixel
    0.6931
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cvapps._keras import import_keras
from cvapps.segmentation.metrics import parse_loss

keras = import_keras()


@keras.saving.register_keras_serializable(package="cvapps")
class SegmentationLoss(keras.losses.Loss):
    """Weighted sum of per-pixel cross-entropy, focal loss and soft Dice.

    ``y_true``: (B, H, W, 1) class indices, or (B, H, W, 2) [class index, pixel weight] (the
    border-weight map). ``y_pred``: (B, H, W, C) probabilities. Per image:

        ce    = mean_x w(x) * -log p_y(x)
        focal = mean_x w(x) * -(1 - p_y(x))**gamma * log p_y(x)          (Lin et al. 2017)
        dice  = 1 - mean_{c>=1} (2 sum_x p_c y_c + 1) / (sum_x p_c + sum_x y_c + 1)

    (Dice over the non-background classes, smoothed by 1 so an absent class scores 1.)
    """

    def __init__(
        self,
        terms: str | Mapping[str, float] = "ce+dice",
        num_classes: int = 2,
        gamma: float = 2.0,
        name: str = "segmentation_loss",
        **kwargs: Any,
    ):
        super().__init__(name=name, **kwargs)
        self.terms = parse_loss(terms) if isinstance(terms, str) else dict(terms)
        self.num_classes, self.gamma = int(num_classes), float(gamma)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        labels = ops.cast(y_true[..., 0], "int32")
        weights = y_true[..., 1] if y_true.shape[-1] == 2 else ops.ones_like(y_true[..., 0])
        onehot = ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        p_true = ops.sum(onehot * p, axis=-1)
        total = 0.0
        log_p = -ops.log(p_true)
        if self.terms.get("ce"):
            total = total + self.terms["ce"] * ops.mean(weights * log_p, axis=(1, 2))
        if self.terms.get("focal"):
            focal = ops.power(1.0 - p_true, self.gamma) * log_p
            total = total + self.terms["focal"] * ops.mean(weights * focal, axis=(1, 2))
        if self.terms.get("dice"):
            intersection = ops.sum(onehot * y_pred, axis=(1, 2))[:, 1:]
            sizes = ops.sum(onehot + y_pred, axis=(1, 2))[:, 1:]
            dice = (2 * intersection + 1.0) / (sizes + 1.0)
            total = total + self.terms["dice"] * (1.0 - ops.mean(dice, axis=-1))
        return total

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "terms": self.terms, "num_classes": self.num_classes, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="cvapps")
class MeanIoU(keras.metrics.Metric):
    """Mean over classes of IoU = TP / (TP + FP + FN), from a confusion matrix accumulated over
    the epoch (classes absent from both truth and prediction are left out of the mean)."""

    def __init__(self, num_classes: int = 2, name: str = "miou", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.confusion = self.add_variable(
            (self.num_classes * self.num_classes,), initializer="zeros", name="confusion", dtype="float32"
        )

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        ops = keras.ops
        truth = ops.reshape(ops.cast(y_true[..., 0], "int32"), (-1,))
        predicted = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), (-1,))
        counts = ops.bincount(truth * self.num_classes + predicted, minlength=self.num_classes**2)
        self.confusion.assign_add(ops.cast(counts[: self.num_classes**2], "float32"))

    def result(self) -> Any:
        ops = keras.ops
        confusion = ops.reshape(self.confusion, (self.num_classes, self.num_classes))
        tp = ops.diagonal(confusion)
        union = ops.sum(confusion, 0) + ops.sum(confusion, 1) - tp
        present = ops.cast(union > 0, "float32")
        return ops.sum(present * tp / ops.maximum(union, 1.0)) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self) -> None:
        self.confusion.assign(keras.ops.zeros((self.num_classes**2,), "float32"))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}
