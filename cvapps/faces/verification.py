"""1:1 verification, calibration, and the identify/enroll shortcuts."""

from __future__ import annotations

import numbers
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvapps.faces.encoder import _encoder
from cvapps.faces.metrics import roc_curve, squared_distances, threshold_at_far, verification_metrics

if TYPE_CHECKING:
    import keras

    from cvapps.faces.database import Enrollment, Identity
    from cvapps.faces.detector import FaceDetector
    from cvapps.faces.encoder import FaceEncoder
    from cvapps.runtime import KerasModel, OnnxModel

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

    def to_dict(self) -> dict[str, Any]:
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
    image1: str | Path | np.ndarray,
    image2: str | Path | np.ndarray,
    model: str | Path | keras.Model | OnnxModel | KerasModel | FaceEncoder | None = None,
    *,
    threshold: float | None = None,
    detector: str | FaceDetector = "haar",
    compare: str = "largest",
    detector_model: str | Path | None = None,
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
        target_far: the false accept rate asked for (``calibrate(..., far=)``).
        far_threshold: the largest threshold whose false accept rate on the pairs is at most
            ``target_far``; far_there, tar_there: the false and true accept rates at it.
        num_same, num_different: same-person and different-person pairs scored. A FAR of
            ``target_far`` is only resolved with at least ``1 / target_far`` different pairs.
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
    target_far: float = 1e-3
    far_threshold: float = 0.0
    far_there: float = 0.0
    tar_there: float = 0.0
    num_same: int = 0
    num_different: int = 0

    @property
    def far_resolved(self) -> bool:
        """Enough different pairs (at least ``1 / target_far``) for ``target_far`` to mean anything."""
        return self.target_far > 0 and self.num_different * self.target_far >= 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "accuracy": self.accuracy,
            "auc": self.auc,
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "num_pairs": self.num_pairs,
            "num_same": self.num_same,
            "num_different": self.num_different,
            "target_far": self.target_far,
            "far_threshold": self.far_threshold,
            "far_at_far_threshold": self.far_there,
            "tar_at_far_threshold": self.tar_there,
            "far_resolved": self.far_resolved,
            "skipped": list(self.skipped),
        }


def read_pairs_csv(path: str | Path) -> list[tuple[Path, Path, bool]]:
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


def calibrate(
    pairs: str | Path | Iterable[tuple[str | Path, str | Path, bool]],
    model: str | Path | keras.Model | OnnxModel | KerasModel | FaceEncoder | None = None,
    detector: str | FaceDetector = "haar",
    detector_model: str | Path | None = None,
    far: float = 1e-3,
) -> Calibration:
    """ROC, EER, a recommended threshold and the threshold at a false accept rate, from the
    user's labelled pairs.

    Args:
        pairs: a CSV path (see :func:`read_pairs_csv`) or a list of (image1, image2, same).
        far: the false accept rate to report a threshold for: the largest squared-distance
            threshold whose FAR on these pairs is at most ``far``, and the TAR there.

    Returns:
        :class:`Calibration`. Pairs whose image is unreadable or has no face are skipped and
        listed; the largest face of each image is used.

    Raises:
        ValueError: fewer than one same and one different usable pair; ``far`` outside [0, 1).
    """
    if isinstance(far, bool) or not isinstance(far, numbers.Real) or not 0 <= far < 1:
        raise ValueError(f"far must be a false accept rate in [0, 1) (e.g. 0.001), received {far!r}.")
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
    rates, tar, thresholds = roc_curve(distances, same)
    eer_index = int(np.argmin(np.abs((1 - tar) - rates)))
    eer_threshold = float(thresholds[eer_index]) if np.isfinite(thresholds[eer_index]) else 0.0
    far_threshold, far_there, tar_there = threshold_at_far(distances, same, far)
    return Calibration(
        metrics["threshold"],
        metrics["accuracy"],
        metrics["auc"],
        metrics["eer"],
        eer_threshold,
        len(usable),
        tuple(sorted(skipped)),
        tuple(rates.tolist()),
        tuple(tar.tolist()),
        float(far),
        far_threshold,
        far_there,
        tar_there,
        int(same.sum()),
        int(len(same) - same.sum()),
    )


def identify(
    image: str | Path | np.ndarray,
    db: str | Path,
    model: str | Path | keras.Model | OnnxModel | KerasModel | FaceEncoder | None = None,
    threshold: float | None = None,
    detector: str | FaceDetector = "haar",
    detector_model: str | Path | None = None,
) -> list[Identity]:
    """1:N: name every face of ``image`` from the face database folder ``db``.

    ``threshold``: squared distance; default the model's identification (1:N) threshold
    (``FaceEncoder.identify_threshold``), stricter than the verification one. Shortcut for ``FaceDatabase(db, model, detector).identify(image, threshold)``; see
    :mod:`cvapps.faces.database`. Returns a list of :class:`cvapps.faces.database.Identity`.
    """
    from cvapps.faces.database import FaceDatabase

    return FaceDatabase(db, _encoder(model, detector, detector_model)).identify(image, threshold)


def enroll(
    name: str,
    images: str | Path | np.ndarray | Iterable[str | Path | np.ndarray],
    db: str | Path,
    model: str | Path | keras.Model | OnnxModel | KerasModel | FaceEncoder | None = None,
    detector: str | FaceDetector = "haar",
    detector_model: str | Path | None = None,
) -> Enrollment:
    """Add photos of ``name`` to the face database ``db``; see :meth:`cvapps.faces.database.FaceDatabase.enroll`."""
    from cvapps.faces.database import FaceDatabase

    return FaceDatabase(db, _encoder(model, detector, detector_model)).enroll(name, images)
