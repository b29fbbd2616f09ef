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
    (True, 0.412, 0.709)

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

import functools
import time
from dataclasses import dataclass
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
        image = cv2.resize(
            image, (image_size, image_size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
    return np.repeat(image[..., None], 3, axis=2)


def build_face_model(backbone, embedding_dim=128, settings=None, level=None):
    """Backbone -> global average pool of ``level`` (default the deepest: P5, P2 for LeNet-5) ->
    dense ``embedding_dim`` -> L2 normalise.

    Returns:
        ``keras.Model``: (batch, S, S, 3) pixels in [0, 255] -> (batch, embedding_dim) unit
        vectors, ending in a ``Metadata(task="faces")`` layer holding ``settings``.
    """
    import keras

    from cvapps.nn.layers import Metadata

    if not isinstance(embedding_dim, int) or embedding_dim < 2:
        raise ValueError(f"embedding_dim must be an integer of at least 2, received {embedding_dim!r}.")
    inputs = keras.Input(backbone.input_shape[1:], name="images")
    level = level or max(backbone.pyramid_outputs)  # the deepest level
    if level not in backbone.pyramid_outputs:
        raise ValueError(f"level must be one of {list(backbone.pyramid_outputs)}, received {level!r}.")
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


def squared_distances(a, b):
    """Row-wise squared Euclidean distance of two (N, D) arrays: (N,)."""
    return np.sum(np.square(np.asarray(a, np.float32) - np.asarray(b, np.float32)), axis=-1)


def roc_curve(distances, same):
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


def pair_metrics(embeddings, pairs, folds=10):
    """:func:`verification_metrics` of (M, 3) pair rows (i, j, same) over (N, D) embeddings."""
    pairs = np.asarray(pairs)
    distances = squared_distances(embeddings[pairs[:, 0]], embeddings[pairs[:, 1]])
    return verification_metrics(distances, pairs[:, 2], folds)


# --- encoding faces in photos ------------------------------------------------------------------


class FaceEncoder:
    """Detector + alignment + embedding model, for photos.

    Args:
        model: shipped name, ``.keras``/``.onnx`` path, ``keras.Model`` or opened model; default
            the shipped ``"faces"``.
        detector: ``"haar"``, ``"yunet"``, ``"none"`` or a :class:`cvapps.face_detection.FaceDetector`.
        detector_model: YuNet ``.onnx`` for ``detector="yunet"``.
        runtime: ``"auto"``, ``"onnx"`` or ``"keras"`` (see :func:`cvapps.runtime.open_model`).

    Attributes:
        threshold: the model's verification threshold (squared distance), from its Metadata.
        model_id: a short fingerprint of the model file (sha256 prefix) for embedding caches.
    """

    def __init__(self, model=None, detector="haar", detector_model=None, runtime="auto"):
        from cvapps.face_detection import FaceDetector
        from cvapps.runtime import file_sha256, open_model

        self.model = open_model(model if model is not None else DEFAULT_MODEL, task="faces", runtime=runtime)
        self.info = self.model.info
        if self.info.image_size is None:
            raise ValueError("face models need a fixed input size; this one accepts any size.")
        self.image_size = int(self.info.image_size)
        self.detector = detector if isinstance(detector, FaceDetector) else FaceDetector(detector, detector_model)
        self.threshold = float(self.info.settings.get("threshold", DEFAULT_THRESHOLD))
        embed_faces(self.model, np.zeros((1, self.image_size, self.image_size, 3), np.uint8))  # compile once, here
        # The .keras file's hash (an .onnx export records it), so both runtimes share a cache.
        path = getattr(self.model, "path", None)
        keras_sha = getattr(self.model, "metadata", {}).get("keras_sha256")
        self.model_id = (keras_sha or (file_sha256(path) if path else f"memory-{id(self.model):x}"))[:16]

    def encode(self, image):
        """Detect, align and embed every face of one RGB image (or image path).

        Returns:
            (faces, embeddings): list of :class:`cvapps.face_detection.Face`, largest first, and
            (F, D) float32 unit embeddings in the same order.
        """
        image = _as_image(image)
        faces = self.detector.detect(image)
        if not faces:
            return [], np.zeros((0, int(self.info.settings.get("embedding_dim", 128))), np.float32)
        crops = np.stack([face_pixels(self.detector.align(image, f, self.image_size), self.image_size) for f in faces])
        return faces, embed_faces(self.model, crops)


def _as_image(image):
    from cvapps.core.sources import read_image

    if isinstance(image, (str, Path)):
        return read_image(image)
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an image path or an (H, W, 3) uint8 RGB array, received {image.dtype} {image.shape}."
        )
    return image


def _encoder(model, detector, detector_model=None, runtime="auto"):
    if isinstance(model, FaceEncoder):
        return model
    if isinstance(detector, str):  # a detector by name: opened once per process (cascade files never change)
        detector = _named_detector(detector, None if detector_model is None else str(detector_model))
    return FaceEncoder(model, detector, detector_model, runtime=runtime)


@functools.lru_cache(maxsize=4)
def _named_detector(name, detector_model):
    from cvapps.face_detection import FaceDetector

    return FaceDetector(name, detector_model)


# --- verification (1:1) ------------------------------------------------------------------------

COMPARE = ("largest", "all")


@dataclass(frozen=True)
class Verification:
    """Are two photos the same person?

    Attributes:
        verified: distance <= threshold (False when a face is missing; see ``error``).
        distance: squared distance of the compared faces' embeddings, in [0, 4], or None.
        threshold: the threshold used.
        boxes: (box in image 1, box in image 2) of the compared faces (xyxy), None where no face.
        seconds: wall time of detect + align + embed + compare.
        error: None, or which image had no face ("no face found in image 2").
        num_faces: faces found in each image.
        sources: the two inputs (paths or "array").
    """

    verified: bool
    distance: float | None
    threshold: float
    boxes: tuple
    seconds: float
    error: str | None = None
    num_faces: tuple = (0, 0)
    sources: tuple = ("array", "array")

    def __post_init__(self):
        if self.error is None and self.distance is None:
            raise ValueError("a Verification without an error needs a distance.")

    def to_dict(self):
        return {
            "verified": self.verified,
            "distance": None if self.distance is None else round(self.distance, 6),
            "threshold": round(self.threshold, 6),
            "boxes": [None if b is None else [round(float(v), 1) for v in b] for b in self.boxes],
            "num_faces": list(self.num_faces),
            "seconds": round(self.seconds, 4),
            "error": self.error,
            "sources": list(self.sources),
        }


def verify(
    image1,
    image2,
    model=None,
    *,
    threshold=None,
    detector="haar",
    compare="largest",
    detector_model=None,
    runtime: str = "auto",
) -> Verification:
    """1:1 verification of two photos (paths or (H, W, 3) uint8 RGB arrays).

    Args:
        model: face model (name, path, keras.Model) or a :class:`FaceEncoder` (reused, faster).
        threshold: squared-distance threshold; default the model's own.
        detector: ``"haar"``, ``"yunet"`` or ``"none"`` (the images are face crops).
        compare: ``"largest"`` compares the largest face of each image; ``"all"`` compares every
            face of image 1 with every face of image 2 and reports the closest pair.
        detector_model: YuNet ``.onnx`` for ``detector="yunet"``.
        runtime: ``"auto"``, ``"onnx"`` or ``"keras"`` for the face model (as every predict function).

    Returns:
        :class:`Verification`. An image without a face gives ``verified=False`` and ``error``.

    Raises:
        ValueError: unreadable image, unknown detector or compare mode.
    """
    if compare not in COMPARE:
        raise ValueError(f"compare must be one of {COMPARE}, received {compare!r}.")
    encoder = _encoder(model, detector, detector_model, runtime)
    threshold = encoder.threshold if threshold is None else float(threshold)
    started = time.perf_counter()
    sources = tuple(str(i) if isinstance(i, (str, Path)) else "array" for i in (image1, image2))
    (faces1, codes1), (faces2, codes2) = encoder.encode(image1), encoder.encode(image2)
    counts = (len(faces1), len(faces2))
    missing = [k + 1 for k, faces in enumerate((faces1, faces2)) if not faces]
    if missing:
        boxes = tuple(f[0].box if f else None for f in (faces1, faces2))
        error = "no face found in " + " and ".join(f"image {k}" for k in missing)
        return Verification(False, None, threshold, boxes, time.perf_counter() - started, error, counts, sources)
    if compare == "largest":
        codes1, codes2, faces1, faces2 = codes1[:1], codes2[:1], faces1[:1], faces2[:1]
    # (F1, F2) squared distances; the closest pair decides.
    distances = np.sum(np.square(codes1[:, None, :] - codes2[None, :, :]), axis=-1)
    i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
    distance = float(distances[i, j])
    return Verification(
        distance <= threshold,
        distance,
        threshold,
        (faces1[i].box, faces2[j].box),
        time.perf_counter() - started,
        None,
        counts,
        sources,
    )


# --- calibration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Threshold calibration from labelled pairs.

    Attributes:
        threshold: recommended threshold (best accuracy on the pairs).
        accuracy: 10-fold cross-validated accuracy (:func:`verification_metrics`).
        auc, eer: area under the ROC, equal error rate.
        eer_threshold: the threshold where false accept rate = false reject rate.
        num_pairs: pairs scored; skipped: "image: reason" for pairs left out (no face).
        far, tar: the ROC curve.
    """

    threshold: float
    accuracy: float
    auc: float
    eer: float
    eer_threshold: float
    num_pairs: int
    skipped: tuple
    far: tuple
    tar: tuple

    def to_dict(self):
        return {
            "threshold": self.threshold,
            "accuracy": self.accuracy,
            "auc": self.auc,
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "num_pairs": self.num_pairs,
            "skipped": list(self.skipped),
        }


def read_pairs_csv(path):
    """Rows ``image1,image2,same`` (same: 1/0, true/false, yes/no; optional header row) ->
    [(path1, path2, bool)]; relative image paths are taken from the CSV's folder."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; expected a CSV with rows image1,image2,same.")
    truth = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False}
    rows = []
    with open(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) != 3:
                raise ValueError(f"{path}:{number}: expected 3 columns image1,image2,same; found {len(row)}.")
            label = row[2].strip().lower()
            if label not in truth:
                if number == 1:
                    continue  # header
                raise ValueError(f"{path}:{number}: same must be 1 or 0, received {row[2]!r}.")
            first, second = (Path(p.strip()) for p in row[:2])
            rows.append(
                (
                    path.parent / first if not first.is_absolute() else first,
                    path.parent / second if not second.is_absolute() else second,
                    truth[label],
                )
            )
    if not rows:
        raise ValueError(f"{path}: no pairs found.")
    return rows


def calibrate(pairs, model=None, detector="haar", detector_model=None):
    """ROC, EER and a recommended threshold from the user's labelled pairs.

    Args:
        pairs: a CSV path (see :func:`read_pairs_csv`) or a list of (image1, image2, same).

    Returns:
        :class:`Calibration`. Pairs whose image is unreadable or has no face are skipped and
        listed; the largest face of each image is used.

    Raises:
        ValueError: fewer than one same and one different usable pair.
    """
    rows = read_pairs_csv(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    encoder = _encoder(model, detector, detector_model)
    codes, skipped = {}, []
    for image in {str(p) for row in rows for p in row[:2]}:
        try:
            faces, embeddings = encoder.encode(image)
            codes[image] = embeddings[0] if faces else None
            if not faces:
                skipped.append(f"{image}: no face found")
        except ValueError as error:
            codes[image] = None
            skipped.append(str(error))
    usable = [
        (codes[str(a)], codes[str(b)], bool(s))
        for a, b, s in rows
        if codes[str(a)] is not None and codes[str(b)] is not None
    ]
    if not usable:
        raise ValueError("no pair has a face in both images; nothing to calibrate.")
    distances = squared_distances([u[0] for u in usable], [u[1] for u in usable])
    same = np.array([u[2] for u in usable], int)
    metrics = verification_metrics(distances, same, folds=min(10, len(usable)))
    far, tar, thresholds = roc_curve(distances, same)
    eer_index = int(np.argmin(np.abs((1 - tar) - far)))
    eer_threshold = float(thresholds[eer_index]) if np.isfinite(thresholds[eer_index]) else 0.0
    return Calibration(
        metrics["threshold"],
        metrics["accuracy"],
        metrics["auc"],
        metrics["eer"],
        eer_threshold,
        len(usable),
        tuple(sorted(skipped)),
        tuple(far.tolist()),
        tuple(tar.tolist()),
    )


def identify(image, db, model=None, threshold=None, detector="haar", detector_model=None):
    """1:N: name every face of ``image`` from the face database folder ``db``.

    Shortcut for ``FaceDatabase(db, model, detector).identify(image, threshold)``; see
    :mod:`cvapps.face_database`. Returns a list of :class:`cvapps.face_database.Identity`.
    """
    from cvapps.face_database import FaceDatabase

    return FaceDatabase(db, _encoder(model, detector, detector_model)).identify(image, threshold)


def enroll(name, images, db, model=None, detector="haar", detector_model=None):
    """Add photos of ``name`` to the face database ``db``; see :meth:`cvapps.face_database.FaceDatabase.enroll`."""
    from cvapps.face_database import FaceDatabase

    return FaceDatabase(db, _encoder(model, detector, detector_model)).enroll(name, images)
