"""Face verification and recognition: one-shot learning with a Siamese embedding network.

A face image goes through the shared backbone, global average pooling of P5, a dense layer and
L2 normalisation: a 128-d point on the unit sphere (FaceNet's encoding f(x)). Two faces are the
same person when the squared distance ||f(x1) - f(x2)||^2 is below a threshold (in [0, 4]),
chosen on held-out identities at training time and stored in the model's Metadata settings.
Enrolling a person is storing the encodings of one or a few photos; no retraining.

Python:

    >>> from cvapps.faces import verify
    >>> result = verify("a.jpg", "b.jpg")            # shipped "faces" model, Haar detector  # doctest: +SKIP
    >>> result.verified, round(result.distance, 3), result.threshold                          # doctest: +SKIP
    (True, 0.412, 0.93)

CLI:

    cvapps verify a.jpg b.jpg [--threshold 0.9] [--json -]
    cvapps faces enroll "Ada Lovelace" ada1.jpg ada2.jpg --db faces_db
    cvapps faces identify photo.jpg --db faces_db
    cvapps faces calibrate pairs.csv
    cvapps webcam faces --db faces_db
    cvapps train faces ../shared/data/lfw --output faces.keras
    cvapps eval faces ../shared/data/lfw --holdout 0.1 --json report.json

Colour: most face training data here is grayscale (LFW, ORL, Yale), so every face, in training
and at inference, is converted to grayscale (ITU-R 601 luma) and replicated to 3 channels
(:func:`face_pixels`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "faces"
DEFAULT_THRESHOLD = 1.0  # squared distance; used only when a model carries no threshold


# --- pixels and model --------------------------------------------------------------------------


def face_pixels(image, image_size):
    """(H, W, 3) RGB or (H, W) gray uint8 face crop -> (S, S, 3) uint8 gray replicated to 3 channels.

    Gray = 0.299 R + 0.587 G + 0.114 B (OpenCV's RGB2GRAY); area resize when shrinking.

    >>> face_pixels(np.full((50, 40, 3), (255, 0, 0), np.uint8), 32)[0, 0].tolist()
    [76, 76, 76]
    """
    import cv2

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif image.ndim != 2:
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) gray image, received shape {image.shape}.")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, received {image.dtype}.")
    if image.shape != (image_size, image_size):
        shrinking = image.shape[0] * image.shape[1] > image_size * image_size
        image = cv2.resize(image, (image_size, image_size),
                           interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.repeat(image[..., None], 3, axis=2)


def build_face_model(backbone, embedding_dim=128, settings=None, level="P5"):
    """Backbone -> global average pool of ``level`` -> dense ``embedding_dim`` -> L2 normalise.

    Returns:
        ``keras.Model``: (batch, S, S, 3) pixels in [0, 255] -> (batch, embedding_dim) unit
        vectors, ending in a ``Metadata(task="faces")`` layer holding ``settings``.
    """
    import keras

    from cvapps.layers import Metadata

    if not isinstance(embedding_dim, int) or embedding_dim < 2:
        raise ValueError(f"embedding_dim must be an integer of at least 2, received {embedding_dim!r}.")
    inputs = keras.Input(backbone.input_shape[1:], name="images")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs)[level])
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    x = keras.layers.Dense(embedding_dim, name="embedding")(x)
    x = keras.layers.UnitNormalization(axis=-1, name="l2_normalise")(x)
    settings = {"embedding_dim": embedding_dim, "colour": "gray3", **(settings or {})}
    outputs = Metadata(task="faces", settings=settings)(x)
    return keras.Model(inputs, outputs, name="face_embedder")


def embed_faces(model, faces, batch_size=64):
    """(N, S, S) gray or (N, S, S, 3) pixels -> (N, D) float32 unit embeddings.

    ``model``: an opened model (:func:`cvapps.runtime.open_model`) or a ``keras.Model``.
    """
    from cvapps.runtime import open_model

    model = open_model(model)
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = np.repeat(faces[..., None], 3, axis=-1)
    outputs = [model.predict(faces[i : i + batch_size].astype(np.float32)) for i in range(0, len(faces), batch_size)]
    return np.concatenate(outputs).astype(np.float32) if outputs else np.zeros((0, 0), np.float32)


# --- pair metrics ------------------------------------------------------------------------------


def sample_pairs(labels, count=3000, seed=0):
    """Up to ``count`` same-person and ``count`` different-person index pairs: (M, 3) int rows
    (i, j, same). Same pairs: all of them when there are at most ``count``, else a random
    sample; different pairs: ``count`` random pairs of two identities (as many as same pairs).

    >>> sample_pairs(np.array([0, 0, 1]), count=5).tolist()
    [[0, 1, 1], [0, 2, 0]]
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
    rows = [np.column_stack([positives, np.ones(len(positives), int)]),
            np.column_stack([negatives, np.zeros(len(negatives), int)])]
    return np.concatenate(rows).astype(np.int64)


def squared_distances(a, b):
    """Row-wise squared Euclidean distance of two (N, D) arrays: (N,)."""
    return np.sum(np.square(np.asarray(a, np.float32) - np.asarray(b, np.float32)), axis=-1)


def roc_curve(distances, same):
    """ROC of "same when distance <= t": (far, tar, thresholds), thresholds ascending.

    far = false accepts / different pairs, tar = true accepts / same pairs, one point per
    distinct distance (plus the origin).

    >>> far, tar, t = roc_curve(np.array([0.1, 0.4, 0.35, 0.8]), np.array([1, 1, 0, 0]))
    >>> far.tolist(), tar.tolist()
    [[0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0]]
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


def best_threshold(distances, same):
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


def verification_metrics(distances, same, folds=10, seed=0):
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
        raise ValueError(f"need both same and different pairs to score; received {int(same.sum())} same "
                         f"and {int((1 - same).sum())} different.")
    fold_of = np.random.default_rng(seed).permutation(len(same)) % folds
    accuracies = []
    for k in range(folds):
        test = fold_of == k
        if not test.any():
            continue
        t, _ = best_threshold(distances[~test], same[~test])
        accuracies.append(float(np.mean((distances[test] <= t) == same[test].astype(bool))))
    far, tar, thresholds = roc_curve(distances, same)
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


def pair_metrics(embeddings, pairs, folds=10):
    """:func:`verification_metrics` of (M, 3) pair rows (i, j, same) over (N, D) embeddings."""
    pairs = np.asarray(pairs)
    distances = squared_distances(embeddings[pairs[:, 0]], embeddings[pairs[:, 1]])
    return verification_metrics(distances, pairs[:, 2], folds)
