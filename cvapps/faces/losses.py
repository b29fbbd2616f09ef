"""Metric-learning losses for face embeddings, in pure ``keras.ops`` (any Keras backend).

Triplet loss (Schroff et al. 2015, FaceNet) on L2-normalised embeddings f:

    L(A, P, N) = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0)

mined online inside a batch of P identities x K images:

- ``"semihard"``: for every positive pair (a, p), a != p, the negative n closest to a that is
  still farther than p: argmin_n { d(a, n) : d(a, n) > d(a, p) }; when no such n exists, the
  farthest negative that is closer than p (FaceNet's choice; TensorFlow Addons' fallback).
  The loss is the mean over all positive pairs.
- ``"hard"``: batch-hard (Hermans et al. 2017): for every anchor, its farthest positive and its
  closest negative; mean over anchors that have a positive.

The margin alpha is what stops the trivial solution: if every embedding is equal, all distances
are 0 and the loss is alpha, not 0.

    >>> import numpy as np
    >>> labels = np.array([0, 0, 1, 1])
    >>> same = np.ones((4, 2), "float32") / np.sqrt(2)          # collapsed embeddings
    >>> round(float(triplet_loss(labels, same, margin=0.2)), 4)
    0.2

The alternative (``pair_loss``) classifies pairs: logistic regression on the element-wise
squared difference of two embeddings, p(same) = sigmoid(b - sum_k w_k (f_ik - f_jk)^2),
w_k >= 0, trained with binary cross-entropy on every pair of the batch (positives and negatives
weighted equally). With w >= 0 the score is a weighted squared distance.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

MININGS = ("semihard", "hard")


def pairwise_squared_distances(embeddings: Any) -> Any:
    """(B, D) -> (B, B): d_ij = |f_i|^2 + |f_j|^2 - 2 f_i.f_j, clipped at 0 (round-off)."""
    squares = ops.sum(ops.square(embeddings), axis=1)
    dots = ops.matmul(embeddings, ops.transpose(embeddings))
    return ops.maximum(squares[:, None] + squares[None, :] - 2.0 * dots, 0.0)


def _masks(labels):
    """positive[i, j]: same label and i != j; negative[i, j]: different label. Float (B, B)."""
    labels = ops.reshape(labels, (-1,))
    same = ops.equal(labels[:, None], labels[None, :])
    eye = ops.eye(ops.shape(labels)[0], dtype="bool")
    positive = ops.cast(ops.logical_and(same, ops.logical_not(eye)), "float32")
    negative = ops.cast(ops.logical_not(same), "float32")
    return positive, negative


def semihard_negatives(distances: Any, labels: Any) -> Any:
    """Index of the semi-hard negative of every (anchor, positive) pair: (B, B) int.

    Entry [a, p] is argmin_n { d(a, n) : n negative, d(a, n) > d(a, p) }, or, when there is
    none, argmax_n { d(a, n) : n negative } among the closer ones (the hardest are avoided
    early in training, as FaceNet advises). Only entries where (a, p) is a positive pair mean
    anything.

    >>> import numpy as np
    >>> d = np.array([[0, 1, 2, 4], [1, 0, 3, 1.5], [2, 3, 0, 1], [4, 1.5, 1, 0]], "float32")
    >>> picks = semihard_negatives(d, np.array([0, 0, 1, 1]))
    >>> int(picks[0, 1]), int(picks[1, 0])  # d(0,1)=1: negatives of 0 at 2, 4 -> 2 (index 2)
    (2, 3)
    """
    distances = ops.convert_to_tensor(distances, "float32")
    _, negative = _masks(labels)
    big = ops.max(distances) + 1.0
    d_an = distances[:, None, :]  # (A, 1, N)
    d_ap = distances[:, :, None]  # (A, P, 1)
    outside = ops.logical_and(negative[:, None, :] > 0, d_an > d_ap)  # (A, P, N)
    # Semi-hard: the smallest d(a, n) among negatives farther than the positive.
    outside_values = ops.where(outside, d_an, big)
    semihard = ops.argmin(outside_values, axis=2)
    # Fallback: the largest d(a, n) among negatives that are not farther than the positive.
    inside = ops.logical_and(negative[:, None, :] > 0, ops.logical_not(d_an > d_ap))
    inside_values = ops.where(inside, d_an, -1.0)
    fallback = ops.argmax(inside_values, axis=2)
    has_outside = ops.any(outside, axis=2)
    return ops.where(has_outside, semihard, fallback)


def triplet_loss(labels: Any, embeddings: Any, margin: float = 0.2, mining: str = "semihard") -> Any:
    """Mean triplet loss of a batch with online mining (see the module docstring).

    Args:
        labels: (B,) integer identity of every embedding.
        embeddings: (B, D) float, L2-normalised (the loss works on any, alpha assumes unit norm).
        margin: alpha, in squared-distance units.
        mining: ``"semihard"`` or ``"hard"``.

    Returns:
        Scalar float32 loss; 0 when the batch has no positive pair or no negative.
    """
    if mining not in MININGS:
        raise ValueError(f"mining must be one of {MININGS}, received {mining!r}.")
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    distances = pairwise_squared_distances(ops.convert_to_tensor(embeddings, "float32"))
    positive, negative = _masks(labels)
    has_negative = ops.cast(ops.any(negative > 0, axis=1), "float32")  # (A,)
    if mining == "hard":
        hardest_positive = ops.max(distances * positive, axis=1)
        big = ops.max(distances) + 1.0
        hardest_negative = ops.min(distances + big * (1.0 - negative), axis=1)
        valid = ops.cast(ops.any(positive > 0, axis=1), "float32") * has_negative
        losses = ops.maximum(hardest_positive - hardest_negative + margin, 0.0) * valid
        return ops.sum(losses) / ops.maximum(ops.sum(valid), 1.0)
    picks = semihard_negatives(distances, labels)  # (A, P)
    d_an = ops.take_along_axis(distances, picks, axis=1)  # (A, P): d(a, n(a, p))
    valid = positive * has_negative[:, None]
    losses = ops.maximum(distances - d_an + margin, 0.0) * valid
    return ops.sum(losses) / ops.maximum(ops.sum(valid), 1.0)


def pair_loss(labels: Any, logits: Any) -> Any:
    """Balanced binary cross-entropy over every pair (i != j) of a batch.

    Args:
        labels: (B,) identities.
        logits: (B, B) pair logits, e.g. from :class:`PairLogits`; logit_ij > 0 means "same".

    Returns:
        Scalar: 0.5 * mean BCE over positive pairs + 0.5 * mean BCE over negative pairs.
    """
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    positive, negative = _masks(labels)
    logits = ops.convert_to_tensor(logits, "float32")
    # BCE with logits: softplus(-z) for a positive, softplus(z) for a negative.
    on_positive = ops.sum(ops.softplus(-logits) * positive) / ops.maximum(ops.sum(positive), 1.0)
    on_negative = ops.sum(ops.softplus(logits) * negative) / ops.maximum(ops.sum(negative), 1.0)
    return 0.5 * (on_positive + on_negative)


@keras.saving.register_keras_serializable(package="cvapps")
class PairLogits(keras.layers.Layer):
    """(B, D) embeddings -> (B, B) logits b - sum_k w_k (f_ik - f_jk)^2 with w_k >= 0.

    The logistic regression of the pair-classification loss; used only while training (the
    shipped model outputs embeddings).
    """

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = input_shape[-1]
        self.w = self.add_weight(
            shape=(dim,), initializer=keras.initializers.Constant(4.0), constraint=keras.constraints.NonNeg(), name="w"
        )
        self.b = self.add_weight(shape=(), initializer=keras.initializers.Constant(4.0), name="b")

    def call(self, embeddings: Any) -> Any:
        diff = embeddings[:, None, :] - embeddings[None, :, :]  # (B, B, D)
        return self.b - ops.sum(self.w * ops.square(diff), axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int | None]:
        return (input_shape[0], input_shape[0])


class TripletLoss(keras.losses.Loss):
    """:func:`triplet_loss` as a Keras loss: y_true (B,) identities, y_pred (B, D) embeddings."""

    def __init__(self, margin: float = 0.2, mining: str = "semihard", name: str = "triplet_loss"):
        super().__init__(name=name, reduction="sum")
        if mining not in MININGS:
            raise ValueError(f"mining must be one of {MININGS}, received {mining!r}.")
        self.margin, self.mining = margin, mining

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return triplet_loss(y_true, y_pred, self.margin, self.mining)

    def get_config(self) -> dict[str, Any]:
        return {"margin": self.margin, "mining": self.mining, "name": self.name}


class PairLoss(keras.losses.Loss):
    """:func:`pair_loss` as a Keras loss: y_true (B,) identities, y_pred (B, B) pair logits."""

    def __init__(self, name: str = "pair_loss"):
        super().__init__(name=name, reduction="sum")

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return pair_loss(y_true, y_pred)
