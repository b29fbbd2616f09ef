"""Face detection and alignment to the canonical crop the embedding model was trained on.

Detectors (:class:`FaceDetector`):

- ``"haar"`` (default, offline): OpenCV's Viola-Jones frontal-face cascade shipped in
  opencv-python (``cv2.data.haarcascades``), plus the eye cascade inside the upper part of each
  face for the two eye centres (when both are found).
- ``"yunet"``: ``cv2.FaceDetectorYN`` with the YuNet ONNX file (default
  ``$CVAPPS_DATA/weights/face_detection_yunet_2026may.onnx``): boxes, scores and five landmarks.
  No download happens unless :func:`download_yunet` is called explicitly.
- ``"none"``: the whole image is the face (LFW-style crops).

Alignment (:func:`alignment_matrix`, :meth:`FaceDetector.align`): one affine warp to an S x S
crop. The canonical crop is the training data's framing: the LFW crops used for training are
almost exactly OpenCV's Haar face box (measured on 398 LFW crops: box = 0.97 of the crop, centred;
eyes at (0.32, 0.39) and (0.67, 0.39) of the crop). So:

- with eye landmarks the crop is rotated about the box centre by the eye-line angle, so the eyes
  come out level; for YuNet, whose landmarks are reliable, scale and centre also come from the
  eyes (inter-ocular distance = 0.353 S, eye midpoint at (0.49 S, 0.39 S));
- without landmarks: the box, made square, widened by ``margin`` (1.03), no rotation.

Boxes are xyxy pixels of the original image.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DETECTORS = ("haar", "yunet", "none")
YUNET_FILE = "face_detection_yunet_2026may.onnx"
YUNET_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx"
)
HAAR_MARGIN = 1.03  # crop side / face box side (LFW framing)
EYE_DISTANCE = 0.353  # inter-ocular distance / crop side (LFW framing)
EYE_CENTRE = (0.49, 0.39)  # eye midpoint / crop side (LFW framing)


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: (x1, y1, x2, y2) float pixels.
        score: detector confidence (YuNet: probability; Haar: neighbour count; none: 1).
        eyes: ((x, y) of the eye on the image's left, (x, y) of the other) or None.
    """

    box: tuple
    score: float = 1.0
    eyes: tuple | None = None

    def __post_init__(self):
        x1, y1, x2, y2 = self.box
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f"a face box needs x2 > x1 and y2 > y1, received {self.box}.")

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return (x2 - x1) * (y2 - y1)

    def to_dict(self) -> dict[str, Any]:
        out = {"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 4)}
        if self.eyes is not None:
            out["eyes"] = [[round(float(v), 1) for v in eye] for eye in self.eyes]
        return out


def yunet_path(path: str | Path | None = None) -> Path:
    """The YuNet model file: ``path``, else ``$CVAPPS_WEIGHTS``/``$CVAPPS_DATA/weights``."""
    if path:
        return Path(path)
    for folder in (
        os.environ.get("CVAPPS_WEIGHTS"),
        os.environ.get("CVAPPS_DATA") and Path(os.environ["CVAPPS_DATA"]) / "weights",
    ):
        if folder and (Path(folder) / YUNET_FILE).is_file():
            return Path(folder) / YUNET_FILE
    return Path(os.environ.get("CVAPPS_DATA", "data")) / "weights" / YUNET_FILE


def download_yunet(destination: str | Path, timeout: float = 15) -> Path:
    """Download OpenCV Zoo's YuNet to ``destination`` (only when asked; fails fast offline)."""
    import urllib.request

    from cvapps.core.sinks import atomic_path

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = atomic_path(destination)
    try:
        with urllib.request.urlopen(YUNET_URL, timeout=timeout) as response, open(temporary, "wb") as handle:
            handle.write(response.read())
        os.replace(temporary, destination)
    except OSError as error:
        raise ValueError(
            f"could not download YuNet from {YUNET_URL} ({error}); this machine may be offline. "
            f"Copy {YUNET_FILE} to {destination} by hand, or use --detector haar."
        ) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return destination


class FaceDetector:
    """Find faces in RGB images and cut them out as aligned square crops.

    Args:
        kind: ``"haar"``, ``"yunet"`` or ``"none"``.
        model_path: YuNet ``.onnx`` (``kind="yunet"`` only; default :func:`yunet_path`).
        score_threshold: YuNet's minimum score.
        min_face: smallest face side in pixels, as a fraction of the image's shorter side.

    >>> detector = FaceDetector("none")
    >>> [face] = detector.detect(np.zeros((40, 30, 3), np.uint8))
    >>> face.box
    (0.0, 0.0, 30.0, 40.0)
    """

    def __init__(
        self,
        kind: str = "haar",
        model_path: str | Path | None = None,
        score_threshold: float = 0.6,
        min_face: float = 0.05,
    ):
        import cv2

        if kind not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, received {kind!r}.")
        self.kind, self.score_threshold, self.min_face = kind, score_threshold, min_face
        if kind == "haar":
            folder = Path(cv2.data.haarcascades)
            self.face_cascade = cv2.CascadeClassifier(str(folder / "haarcascade_frontalface_default.xml"))
            self.eye_cascade = cv2.CascadeClassifier(str(folder / "haarcascade_eye.xml"))
            if self.face_cascade.empty() or self.eye_cascade.empty():
                raise ValueError(f"OpenCV's Haar cascades are missing from {folder}; reinstall opencv-python.")
        elif kind == "yunet":
            path = yunet_path(model_path)
            if not path.is_file():
                raise ValueError(
                    f"YuNet model {path} not found. Put {YUNET_FILE} there (or pass --detector-model), "
                    "download it on a connected machine with cvapps.faces.detector.download_yunet(path), "
                    "or use --detector haar."
                )
            try:
                self.yunet = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, 0.3, 5000)
            except cv2.error as error:
                reason = str(error).strip().splitlines()[-1][:120]
                raise ValueError(
                    f"{path}: not a YuNet face detector OpenCV can load ({reason}); pass the YuNet .onnx "
                    "(face_detection_yunet_*.onnx) as --detector-model, or --detector haar."
                ) from None

    def detect(self, image: np.ndarray) -> list[Face]:
        """(H, W, 3) RGB uint8 -> list of :class:`Face`, largest first (empty when none)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, received shape {image.shape}.")
        height, width = image.shape[:2]
        if self.kind == "none":
            return [Face((0.0, 0.0, float(width), float(height)))]
        faces = self._haar(image) if self.kind == "haar" else self._yunet(image)
        return sorted(faces, key=lambda f: -f.area)

    def _haar(self, image):
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        # A tight face crop (a small image) has no context around the face, which the cascade
        # needs: pad a quarter of the side with grey; upscale small images so faces reach the
        # 24 px window. Large frames (a webcam's) are searched as they are.
        pad = max(gray.shape) // 4 if min(gray.shape) < 300 else 0
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128)
        scale = max(1.0, 240.0 / min(padded.shape))
        if scale > 1:
            padded = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        smallest = max(24, int(self.min_face * min(gray.shape) * scale))
        boxes, neighbours = self.face_cascade.detectMultiScale2(padded, 1.1, 5, minSize=(smallest, smallest))
        faces = []
        for (x, y, w, h), count in zip(np.reshape(boxes, (-1, 4)), np.reshape(neighbours, -1)):
            eyes = self._haar_eyes(padded, x, y, w, h)
            to_image = lambda px, py: (px / scale - pad, py / scale - pad)
            if eyes is not None:
                eyes = tuple(to_image(*e) for e in eyes)
            x1, y1 = to_image(x, y)
            x2, y2 = to_image(x + w, y + h)
            faces.append(Face((float(x1), float(y1), float(x2), float(y2)), float(count), eyes))
        return faces

    def _haar_eyes(self, gray, x, y, w, h):
        """Both eye centres inside the upper 60% of a face box, one in each half, or None."""
        roi = gray[y : y + int(0.6 * h), x : x + w]
        found = self.eye_cascade.detectMultiScale(roi, 1.1, 5, minSize=(max(8, w // 8), max(8, w // 8)))
        found = [(x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in np.reshape(found, (-1, 4))]
        left = [e for e in found if e[0] < x + w / 2]
        right = [e for e in found if e[0] >= x + w / 2]
        if not left or not right:
            return None

        # Closest to the expected eye positions (0.32 w, 0.39 h) and (0.67 w, 0.39 h).
        def pick(candidates, fx):
            return min(candidates, key=lambda e: (e[0] - x - fx * w) ** 2 + (e[1] - y - 0.39 * h) ** 2)

        a, b = pick(left, 0.32), pick(right, 0.67)
        if abs(math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))) > 30:
            return None  # implausible roll for a frontal-face cascade: likely an eyebrow or nostril
        return a, b

    def _yunet(self, image):
        import cv2

        height, width = image.shape[:2]
        self.yunet.setInputSize((width, height))
        _, rows = self.yunet.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        faces = []
        for row in [] if rows is None else rows:
            x, y, w, h = (float(v) for v in row[:4])
            if w <= 1 or h <= 1:
                continue
            # YuNet's landmarks: right eye (image left), left eye, nose, mouth corners; score last.
            eyes = tuple(sorted([(float(row[4]), float(row[5])), (float(row[6]), float(row[7]))]))
            faces.append(Face((x, y, x + w, y + h), float(row[-1]), eyes))
        return faces

    def align(self, image: np.ndarray, face: Face, image_size: int) -> np.ndarray:
        """The canonical (S, S, 3) RGB uint8 crop of ``face`` (see the module docstring)."""
        import cv2

        if self.kind == "none":  # the image is the crop: resized as in training (load_faces), no margin
            from cvapps.core.sources import resize_square

            return resize_square(np.asarray(image), image_size)
        matrix = alignment_matrix(face, image_size, use_eye_scale=self.kind == "yunet")
        return cv2.warpAffine(
            np.asarray(image), matrix, (image_size, image_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )


def alignment_matrix(
    face: Face, image_size: int, margin: float = HAAR_MARGIN, use_eye_scale: bool = False
) -> np.ndarray:
    """2 x 3 affine matrix taking image pixels to the S x S canonical crop of ``face``.

    p' = S/2 + s R(-theta) (p - c), where theta is the eye-line angle (0 without eyes),
    s = S / (margin * box side) and c the box centre; with ``use_eye_scale``,
    s = EYE_DISTANCE * S / |eye_r - eye_l| and c is placed so the eye midpoint lands on EYE_CENTRE.

    >>> face = Face((10, 10, 110, 110), eyes=((40, 40), (80, 60)))       # eyes tilted by 26.6 deg
    >>> m = alignment_matrix(face, 100, margin=1.0)
    >>> eyes = np.array([[40, 40, 1], [80, 60, 1]]) @ m.T
    >>> bool(abs(eyes[0, 1] - eyes[1, 1]) < 1e-9)                      # level after the warp
    True
    """
    import cv2

    x1, y1, x2, y2 = face.box
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    side = max(x2 - x1, y2 - y1)
    angle = 0.0
    scale = image_size / (margin * side)
    if face.eyes is not None:
        (lx, ly), (rx, ry) = face.eyes
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        if use_eye_scale:
            scale = EYE_DISTANCE * image_size / max(math.hypot(rx - lx, ry - ly), 1e-6)
            centre = ((lx + rx) / 2, (ly + ry) / 2)
    # getRotationMatrix2D(c, angle, s) maps p -> s R (p - c) + c, rotating the eye line (at
    # +angle in image coordinates, y down) onto the horizontal.
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    target = (image_size / 2, image_size / 2)
    if face.eyes is not None and use_eye_scale:
        target = (EYE_CENTRE[0] * image_size, EYE_CENTRE[1] * image_size)
    matrix[:, 2] += np.array(target) - np.array(centre)
    return matrix
