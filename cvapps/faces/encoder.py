"""Face pixels, the embedding model and FaceEncoder (detect, align, embed the faces of a photo)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvapps.faces import DEFAULT_MODEL, DEFAULT_THRESHOLD

if TYPE_CHECKING:
    import keras

    from cvapps.faces.detector import Face, FaceDetector
    from cvapps.nn.backbone import Backbone
    from cvapps.runtime import KerasModel, OnnxModel

# --- pixels and model --------------------------------------------------------------------------


def face_pixels(image: np.ndarray, image_size: int) -> np.ndarray:
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


def build_face_model(
    backbone: Backbone, embedding_dim: int = 128, settings: dict[str, Any] | None = None, level: str | None = None
) -> keras.Model:
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


def embed_faces(
    model: OnnxModel | KerasModel | keras.Model | str | Path, faces: np.ndarray, batch_size: int = 64
) -> np.ndarray:
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


# --- the identification (1:N) threshold -------------------------------------------------------

IDENTIFY_SOURCES = ("model", "card", "verification")


@dataclass(frozen=True)
class IdentifyThreshold:
    """The squared-distance threshold that identification (1:N) names faces with, and where it comes from.

    A stranger is named as someone when ANY enrolled photo is within the threshold, so 1:N needs
    a stricter threshold than 1:1 verification, and its false-name rate grows with the gallery.

    Attributes:
        value: the threshold.
        source: ``"model"`` (the model's ``identify_threshold`` setting), ``"card"`` (the
            shipped model's card, ``models/NAME.json`` settings, for exactly this model file) or
            ``"verification"`` (fallback for models without one: the 1:1 threshold, whose 1:N
            false-name rate is unknown).
        false_name_rates: {people enrolled (one photo each): fraction of strangers named as
            someone at ``value``}, measured on held-out people (empty when unknown).
        correct_name_rate: fraction of the enrolled people's other photos named as themselves
            at ``value`` in the same measurement (None when unknown).
    """

    value: float
    source: str
    false_name_rates: dict = field(default_factory=dict)
    correct_name_rate: float | None = None

    def describe(self, people: int | None = None) -> str:
        """One line for a user: the threshold, its source and the rates it implies.

        >>> print(IdentifyThreshold(0.6, "model", {2: 0.0002, 10: 0.001}, 0.25).describe(people=3))
        ... # doctest: +NORMALIZE_WHITESPACE
        identification threshold 0.6000 (the model's 1:N threshold; on held-out people it named 0.2 in 1,000
        strangers as someone with 2 people enrolled, 1.0 with 10, and 25% of the enrolled people's other photos
        correctly; this database has 3 people)
        """
        here = f"; this database has {people} {'person' if people == 1 else 'people'}" if people is not None else ""
        if self.source == "verification":
            return (
                f"identification threshold {self.value:.4f} is the model's verification (1:1) threshold: the model "
                "has no identify_threshold setting, so how many strangers it names is unknown, and it grows with the "
                f"number of people enrolled{here}; pass a stricter --threshold (a model trained by 'cvapps train "
                "faces' stores one)"
            )
        rates = ", ".join(
            f"{rate * 1000:.1f}"
            + (" in 1,000 strangers as someone" if k == 0 else "")
            + f" with {n}"
            + (" people enrolled" if k == 0 else "")
            for k, (n, rate) in enumerate(sorted(self.false_name_rates.items()))
        )
        if self.correct_name_rate is not None:
            rates += f", and {self.correct_name_rate:.0%} of the enrolled people's other photos correctly"
        measured = f"; on held-out people it named {rates}" if rates else ""
        return f"identification threshold {self.value:.4f} (the model's 1:N threshold{measured}{here})"


def identify_threshold_from(settings: dict, card: dict | None = None) -> IdentifyThreshold:
    """The :class:`IdentifyThreshold` of a face model from its settings, else its card's.

    ``settings``: the model's Metadata settings; ``card``: the ``settings`` of its card (used
    only when the model has no ``identify_threshold``). Either holds ``identify_threshold`` and
    optionally ``identify_false_name_rates`` ({"N": rate}) and ``identify_correct_name_rate``.
    Falls back to the verification ``threshold`` (or ``DEFAULT_THRESHOLD``).

    >>> identify_threshold_from({"threshold": 1.3}).source
    'verification'
    >>> identify_threshold_from({"threshold": 1.3}, {"identify_threshold": 0.6}).value
    0.6
    """
    for source, values in (("model", settings), ("card", card or {})):
        if values.get("identify_threshold") is not None:
            rates = {int(n): float(r) for n, r in (values.get("identify_false_name_rates") or {}).items()}
            correct = values.get("identify_correct_name_rate")
            return IdentifyThreshold(
                float(values["identify_threshold"]), source, rates, None if correct is None else float(correct)
            )
    return IdentifyThreshold(float(settings.get("threshold", DEFAULT_THRESHOLD)), "verification")


def _card_settings(name, model_id):
    """The ``settings`` of the shipped card ``models/NAME.json`` when they are for this very model file."""
    from cvapps.models import model_card

    try:
        settings = model_card(name).get("settings") or {}
    except (OSError, ValueError):  # an unreadable card: the model's own settings still hold
        return {}
    return settings if str(settings.get("keras_sha256", ""))[:16] == model_id else {}


# --- encoding faces in photos ------------------------------------------------------------------


class FaceEncoder:
    """Detector + alignment + embedding model, for photos.

    Args:
        model: shipped name, ``.keras``/``.onnx`` path, ``keras.Model`` or opened model; default
            the shipped ``"faces"``.
        detector: ``"haar"``, ``"yunet"``, ``"none"`` or a :class:`cvapps.faces.detector.FaceDetector`.
        detector_model: YuNet ``.onnx`` for ``detector="yunet"``.
        runtime: ``"auto"``, ``"onnx"`` or ``"keras"`` (see :func:`cvapps.runtime.open_model`).

    Attributes:
        threshold: the model's verification (1:1) threshold (squared distance), from its Metadata.
        identify: the :class:`IdentifyThreshold` of identification (1:N): the model's
            ``identify_threshold`` setting, or its shipped card's, else the verification threshold.
        identify_threshold: ``identify.value``.
        model_id: a short fingerprint of the model file (sha256 prefix) for embedding caches.
    """

    def __init__(
        self,
        model: str | Path | keras.Model | OnnxModel | KerasModel | None = None,
        detector: str | FaceDetector = "haar",
        detector_model: str | Path | None = None,
        runtime: str = "auto",
    ):
        from cvapps.faces.detector import FaceDetector
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
        self.identify = identify_threshold_from(self.info.settings, _card_settings(self.info.name, self.model_id))
        self.identify_threshold = self.identify.value

    def encode(self, image: str | Path | np.ndarray) -> tuple[list[Face], np.ndarray]:
        """Detect, align and embed every face of one RGB image (or image path).

        Returns:
            (faces, embeddings): list of :class:`cvapps.faces.detector.Face`, largest first, and
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
    from cvapps.faces.detector import FaceDetector

    return FaceDetector(name, detector_model)
