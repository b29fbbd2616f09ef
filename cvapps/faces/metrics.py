"""Pair metrics (ROC, EER, TAR at FAR, 10-fold accuracy, the best threshold) and simulated
identification galleries (false-name and correct-name rates of 1:N, its threshold)."""

from __future__ import annotations

from dataclasses import dataclass
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


def threshold_at_far(distances: ArrayLike, same: ArrayLike, far: float) -> tuple[float, float, float]:
    """The largest threshold of "same when distance <= t" whose false accept rate is at most ``far``.

    Returns (threshold, far_there, tar_there). Between two observed distances every threshold
    gives the same rates; the midpoint is returned (as :func:`best_threshold` does), and half
    the smallest distance when even that one is a different pair.

    >>> t, far, tar = threshold_at_far(np.array([0.1, 0.4, 0.35, 0.8]), np.array([1, 1, 0, 0]), far=0.0)
    >>> round(t, 3), far, tar
    (0.225, 0.0, 0.5)

    Raises:
        ValueError: ``far`` outside [0, 1).
    """
    if not 0 <= far < 1:
        raise ValueError(f"far must be a false accept rate in [0, 1), received {far!r}.")
    rates, tar, thresholds = roc_curve(distances, same)
    k = int(np.flatnonzero(rates <= far)[-1])  # rates rise with the threshold; rates[0] = 0
    upper = thresholds[k + 1] if k + 1 < len(thresholds) else thresholds[k] + 1e-3
    lower = thresholds[k] if np.isfinite(thresholds[k]) else 0.0
    return float((lower + upper) / 2), float(rates[k]), float(tar[k])


# --- identification (1:N) ----------------------------------------------------------------------


@dataclass(frozen=True)
class GallerySimulation:
    """Nearest-gallery distances of probes over many random galleries (:func:`simulate_galleries`).

    Attributes:
        gallery_people: people enrolled per gallery (N); photos_per_person: their enrolled photos.
        trials: galleries drawn.
        stranger: (S,) nearest gallery distance of every stranger probe (a photo of someone not
            enrolled), over all trials.
        genuine: (G,) nearest gallery distance of every genuine probe (another photo of an
            enrolled person); genuine_right: (G,) whether that nearest photo is their own person's.
    """

    gallery_people: int
    photos_per_person: int
    trials: int
    stranger: np.ndarray
    genuine: np.ndarray
    genuine_right: np.ndarray

    def false_name_rate(self, threshold: float) -> float:
        """Fraction of strangers named as someone: nearest gallery distance <= threshold."""
        return float(np.mean(self.stranger <= threshold)) if len(self.stranger) else float("nan")

    def correct_name_rate(self, threshold: float) -> float:
        """Fraction of enrolled people's other photos named as themselves at ``threshold``."""
        if not len(self.genuine):
            return float("nan")
        return float(np.mean(self.genuine_right & (self.genuine <= threshold)))

    def threshold_at(self, false_name_rate: float) -> float:
        """The largest threshold whose false-name rate is at most ``false_name_rate`` (the
        midpoint between two distinct observed stranger distances; half the smallest one when
        even that one is too many).

        >>> sim = GallerySimulation(1, 1, 1, np.array([0.4, 0.2, 0.8, 1.0]), np.zeros(0), np.zeros(0, bool))
        >>> round(sim.threshold_at(0.25), 3), sim.false_name_rate(sim.threshold_at(0.25))
        (0.3, 0.25)
        """
        if not 0 <= false_name_rate < 1:
            raise ValueError(f"false_name_rate must be in [0, 1), received {false_name_rate!r}.")
        if not len(self.stranger):
            raise ValueError("no stranger probes were simulated; the data needs more people than the gallery.")
        d = np.sort(self.stranger.astype(np.float64))
        k = int(np.floor(false_name_rate * len(d)))  # at most k strangers may be within the threshold
        below = d[:k][d[:k] < d[k]]  # ties with d[k] (the same photos meet in many trials) must stay out
        return float((below[-1] + d[k]) / 2) if len(below) else float(d[k] / 2)


def simulate_galleries(
    embeddings: ArrayLike,
    labels: ArrayLike,
    gallery_people: int = 10,
    photos_per_person: int = 1,
    trials: int = 200,
    seed: int = 0,
) -> GallerySimulation:
    """Identification (1:N) on random galleries of held-out people.

    Each trial enrolls ``photos_per_person`` random photo(s) of ``gallery_people`` random people
    (among those with at least one more photo); every photo of the other people probes as a
    stranger and the enrolled people's other photos probe as genuine.

    >>> codes = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 2, 2, 3, 3]]
    >>> sim = simulate_galleries(codes, [0, 0, 1, 1, 2, 2, 3, 3], gallery_people=2, trials=3)
    >>> len(sim.stranger), len(sim.genuine), sim.correct_name_rate(0.1), sim.false_name_rate(1.9)
    (12, 6, 1.0, 0.0)

    Raises:
        ValueError: fewer than ``gallery_people + 1`` people, or fewer than ``gallery_people``
            with more than ``photos_per_person`` photos.
    """
    embeddings = np.asarray(embeddings, np.float32)
    labels = np.asarray(labels)
    if len(embeddings) != len(labels):
        raise ValueError(f"embeddings and labels must match in length, received {len(embeddings)} and {len(labels)}.")
    if gallery_people < 1 or photos_per_person < 1 or trials < 1:
        raise ValueError(
            "gallery_people, photos_per_person and trials must be at least 1, received "
            f"{gallery_people}, {photos_per_person}, {trials}."
        )
    people = np.unique(labels)
    by_person = {p: np.flatnonzero(labels == p) for p in people}
    eligible = np.array([p for p in people if len(by_person[p]) > photos_per_person])
    if len(people) <= gallery_people or len(eligible) < gallery_people:
        raise ValueError(
            f"a gallery of {gallery_people} people needs more people than that, {gallery_people} of them with "
            f"more than {photos_per_person} photo(s); received {len(people)} people, {len(eligible)} such."
        )
    rng = np.random.default_rng(seed)
    norms = np.sum(embeddings * embeddings, axis=1)
    stranger, genuine, right = [], [], []
    for _ in range(trials):
        enrolled = rng.choice(eligible, gallery_people, replace=False)
        picks = [rng.permutation(by_person[p]) for p in enrolled]
        gallery = np.concatenate([p[:photos_per_person] for p in picks])
        owner = np.repeat(enrolled, photos_per_person)
        probes = np.concatenate([p[photos_per_person:] for p in picks])
        strangers = np.flatnonzero(~np.isin(labels, enrolled))
        for rows, keep_owner in ((strangers, False), (probes, True)):
            d = norms[rows, None] + norms[None, gallery] - 2 * embeddings[rows] @ embeddings[gallery].T
            nearest = np.argmin(d, axis=1)
            distance = np.maximum(d[np.arange(len(rows)), nearest], 0)
            if keep_owner:
                genuine.append(distance)
                right.append(owner[nearest] == labels[rows])
            else:
                stranger.append(distance)
    return GallerySimulation(
        gallery_people,
        photos_per_person,
        trials,
        np.concatenate(stranger).astype(np.float64),
        np.concatenate(genuine).astype(np.float64),
        np.concatenate(right).astype(bool),
    )
