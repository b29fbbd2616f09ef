"""Pair metrics: ROC, EER, TAR at FAR, 10-fold accuracy, the best threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

# --- pair metrics ------------------------------------------------------------------------------


def sample_pairs(labels: ArrayLike, count: int = 3000, seed: int = 0) -> np.ndarray:
    """Up to ``count`` same-person and ``count`` different-person index pairs: (M, 3) int rows
    (i, j, same). Same pairs: all of them when there are at most ``count``, else a random
    sample; different pairs: ``count`` random pairs of two identities (as many as same pairs).

    >>> sample_pairs(np.array([0, 0, 1]), count=5).tolist()
    [[0, 1, 1], [1, 2, 0]]
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    positives = np.stack([i[same], j[same]], 1)
    if len(positives) > count:
        positives = positives[np.sort(rng.choice(len(positives), count, replace=False))]
    negatives = np.stack([i[~same], j[~same]], 1)
    wanted = min(len(positives), len(negatives))
    if len(negatives) > wanted:
        negatives = negatives[np.sort(rng.choice(len(negatives), wanted, replace=False))]
    rows = [
        np.column_stack([positives, np.ones(len(positives), int)]),
        np.column_stack([negatives, np.zeros(len(negatives), int)]),
    ]
    return np.concatenate(rows).astype(np.int64)


def squared_distances(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Row-wise squared Euclidean distance of two (N, D) arrays: (N,)."""
    return np.sum(np.square(np.asarray(a, np.float32) - np.asarray(b, np.float32)), axis=-1)


def roc_curve(distances: ArrayLike, same: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of "same when distance <= t": (far, tar, thresholds), thresholds ascending.

    far = false accepts / different pairs, tar = true accepts / same pairs, one point per
    distinct distance (plus the origin).

    >>> far, tar, t = roc_curve(np.array([0.1, 0.4, 0.35, 0.8]), np.array([1, 1, 0, 0]))
    >>> far.tolist(), tar.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    distances = np.asarray(distances, np.float64)
    same = np.asarray(same).astype(bool)
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order]
    last = np.r_[d[1:] != d[:-1], True]  # last index of every distinct distance
    tp = np.cumsum(s)[last]
    fp = np.cumsum(~s)[last]
    tar = np.r_[0.0, tp / max(s.sum(), 1)]
    far = np.r_[0.0, fp / max((~s).sum(), 1)]
    return far, tar, np.r_[-np.inf, d[last]]


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold t maximising accuracy of "same when distance <= t": midpoint between the
    best distinct distance and the next one. Returns (threshold, accuracy)."""
    far, tar, thresholds = roc_curve(distances, same)
    positives = np.sum(same)
    negatives = len(same) - positives
    accuracy = (tar * positives + (1 - far) * negatives) / max(len(same), 1)
    k = int(np.argmax(accuracy))
    upper = thresholds[k + 1] if k + 1 < len(thresholds) else thresholds[k] + 1e-3
    lower = thresholds[k] if np.isfinite(thresholds[k]) else upper - 1e-3
    return float((lower + upper) / 2), float(accuracy[k])


def verification_metrics(distances: ArrayLike, same: ArrayLike, folds: int = 10, seed: int = 0) -> dict[str, Any]:
    """LFW-protocol metrics of pair distances and labels (1 = same person).

    - ``accuracy``: 10-fold cross-validated; for each fold the threshold is the best one on the
      other nine folds, applied to this fold; mean over folds (``accuracy_std`` their std).
    - ``auc``: area under the ROC (trapezoids).
    - ``tar_at_far_1e-3``: true accept rate at the largest threshold whose false accept rate is
      at most 0.001 (needs >= 1000 different pairs to mean anything).
    - ``threshold``: the best threshold on all pairs; ``eer``: equal error rate.

    Returns a dict of those plus ``roc`` (far, tar lists, thinned to <= 500 points).
    """
    distances = np.asarray(distances, np.float64)
    same = np.asarray(same).astype(int)
    if len(distances) == 0 or same.min() == same.max():
        raise ValueError(
            f"need both same and different pairs to score; received {int(same.sum())} same "
            f"and {int((1 - same).sum())} different."
        )
    fold_of = np.random.default_rng(seed).permutation(len(same)) % folds
    accuracies = []
    for k in range(folds):
        test = fold_of == k
        if not test.any():
            continue
        t, _ = best_threshold(distances[~test], same[~test])
        accuracies.append(float(np.mean((distances[test] <= t) == same[test].astype(bool))))
    far, tar, _ = roc_curve(distances, same)
    threshold, _ = best_threshold(distances, same)
    allowed = far <= 1e-3
    eer_index = int(np.argmin(np.abs((1 - tar) - far)))
    keep = np.unique(np.linspace(0, len(far) - 1, min(len(far), 500)).astype(int))
    return {
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "auc": float(np.trapezoid(tar, far)),
        "tar_at_far_1e-3": float(tar[allowed].max()),
        "eer": float(((1 - tar[eer_index]) + far[eer_index]) / 2),
        "threshold": threshold,
        "num_same_pairs": int(same.sum()),
        "num_different_pairs": int((1 - same).sum()),
        "roc": {"far": far[keep].round(6).tolist(), "tar": tar[keep].round(6).tolist()},
    }


def pair_metrics(embeddings: np.ndarray, pairs: ArrayLike, folds: int = 10) -> dict[str, Any]:
    """:func:`verification_metrics` of (M, 3) pair rows (i, j, same) over (N, D) embeddings."""
    pairs = np.asarray(pairs)
    distances = squared_distances(embeddings[pairs[:, 0]], embeddings[pairs[:, 1]])
    return verification_metrics(distances, pairs[:, 2], folds)
