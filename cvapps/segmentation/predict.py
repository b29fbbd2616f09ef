"""Segmentation at inference: the Segmentation result type, overlap-tile inference and segment()."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from cvapps.core.images import pad_to_multiple
from cvapps.runtime import open_model
from cvapps.segmentation import DEFAULT_MODEL

if TYPE_CHECKING:
    import keras
    from numpy.typing import ArrayLike

    from cvapps.core.streaming import FrameResult
    from cvapps.runtime import OpenedModel

# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segmentation:
    """Per-pixel classes of one image, at the image's own resolution.

    Attributes:
        probabilities: (H, W, C) float32 class probabilities (they sum to 1 over C).
        labels: (H, W) uint8 most probable class per pixel (argmax of ``probabilities``).
        class_names: C names; class 0 is the background.
        source: where the image came from (path or "array").

    >>> import numpy as np
    >>> p = np.zeros((2, 3, 2), np.float32); p[..., 0] = 1; p[0, 0] = (0.2, 0.8)
    >>> s = Segmentation.from_probabilities(p, ("background", "person"))
    >>> s.labels.tolist(), s.fractions()
    ([[1, 0, 0], [0, 0, 0]], {'background': 0.833333, 'person': 0.166667})
    """

    probabilities: np.ndarray
    labels: np.ndarray
    class_names: tuple
    source: str = "array"

    def __post_init__(self):
        p, labels = self.probabilities, self.labels
        if not isinstance(p, np.ndarray) or p.ndim != 3:
            raise ValueError(f"probabilities must be an (H, W, C) array, received {getattr(p, 'shape', type(p))}.")
        if not isinstance(labels, np.ndarray) or labels.shape != p.shape[:2]:
            raise ValueError(
                f"labels must be an (H, W) array matching probabilities {p.shape[:2]}, "
                f"received {getattr(labels, 'shape', type(labels))}."
            )
        if len(self.class_names) != p.shape[2]:
            raise ValueError(f"{len(self.class_names)} class names for {p.shape[2]} probability channels.")

    @classmethod
    def from_probabilities(
        cls, probabilities: ArrayLike, class_names: Iterable[str], source: str = "array"
    ) -> Segmentation:
        probabilities = np.asarray(probabilities, np.float32)
        return cls(probabilities, probabilities.argmax(-1).astype(np.uint8), tuple(class_names), source)

    @property
    def foreground(self) -> np.ndarray:
        """(H, W) float32 probability of any non-background class: 1 - p(class 0)."""
        return 1.0 - self.probabilities[..., 0]

    def mask(self, classes: str | int | Iterable[str | int] | None = None) -> np.ndarray:
        """(H, W) bool: pixels labelled with one of ``classes`` (names or ids; default every
        non-background class)."""
        ids = _class_ids(classes, self.class_names)
        return np.isin(self.labels, ids)

    def fractions(self) -> dict:
        """{class name: fraction of the image's pixels}, rounded to 6 digits."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.class_names))
        return {n: round(float(c) / self.labels.size, 6) for n, c in zip(self.class_names, counts)}

    def to_dict(self) -> dict:
        return {
            "height": int(self.labels.shape[0]),
            "width": int(self.labels.shape[1]),
            "class_names": list(self.class_names),
            "fractions": self.fractions(),
        }


def _class_ids(classes, class_names):
    if classes is None:
        return list(range(1, len(class_names)))
    ids = []
    for c in [classes] if isinstance(classes, (str, int)) else classes:
        if isinstance(c, str):
            if c not in class_names:
                raise ValueError(f"unknown class {c!r}; the model's classes are {list(class_names)}.")
            ids.append(class_names.index(c))
        elif 0 <= int(c) < len(class_names):
            ids.append(int(c))
        else:
            raise ValueError(f"class id {c} is outside 0..{len(class_names) - 1}.")
    return ids


# --- inference ---------------------------------------------------------------------------------


def _tile_starts(length, tile, step):
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _tile_weight(tile):
    """(T, T) blending weight: grows linearly from the tile border to its centre (never 0)."""
    ramp = np.minimum(np.arange(tile) + 1, np.arange(tile)[::-1] + 1).astype(np.float32)
    return np.minimum(ramp[:, None], ramp[None, :])


def predict_probabilities(
    model: str | Path | keras.Model | OpenedModel,
    image: ArrayLike,
    tile: int | Literal["auto"] | None = "auto",
    overlap: float = 0.25,
    batch_size: int = 8,
) -> np.ndarray:
    """(H, W, 3) RGB image -> (H, W, C) float32 class probabilities at the image's resolution.

    Scales the image first when the model says so (``settings["scale_to"]``), pads it to a
    multiple of ``settings["stride"]`` (mirror or zero padding, ``settings["border"]``) and
    crops the output back. Larger than ``tile`` (``"auto"``: the training tile; None: never)
    in either side -> overlap-tile: tiles of ``tile`` pixels overlapping by ``overlap``, blended
    by :func:`_tile_weight`.

    Args:
        model: an opened model (:func:`cvapps.runtime.open_model`), a name, a path or a keras.Model.
    """
    import cv2

    model = open_model(model, task="segment")
    settings = model.info.settings
    stride, border = int(settings.get("stride", 32)), settings.get("border", "reflect")
    image = _check_image(image)
    height, width = image.shape[:2]
    scale_to = settings.get("scale_to")
    work = image
    if scale_to and max(height, width) != scale_to:
        zoom = scale_to / max(height, width)
        new = (max(1, round(width * zoom)), max(1, round(height * zoom)))
        work = cv2.resize(image, new, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    if tile == "auto":
        tile = settings.get("tile")
    if tile is not None:
        tile = max(stride, int(tile) // stride * stride)
    mode = "reflect" if border == "reflect" else "constant"
    if tile and (work.shape[0] > tile or work.shape[1] > tile):
        probabilities = _overlap_tile(model, work, tile, overlap, mode, batch_size)
    else:
        padded, (h, w) = pad_to_multiple(work.astype(np.float32), stride, mode)
        probabilities = model.predict(padded[None])[0, :h, :w]
    probabilities = np.asarray(probabilities, np.float32)
    if probabilities.shape[:2] != (height, width):
        probabilities = cv2.resize(probabilities, (width, height), interpolation=cv2.INTER_LINEAR)
        if probabilities.ndim == 2:  # cv2 drops a single channel
            probabilities = probabilities[..., None]
        probabilities /= probabilities.sum(-1, keepdims=True)
    return probabilities


def _overlap_tile(model, image, tile, overlap, mode, batch_size):
    height, width = image.shape[:2]
    # Pad to at least one tile each way (mirror context at the borders, as in the paper).
    pad_h, pad_w = max(0, tile - height), max(0, tile - width)
    work = np.pad(
        image.astype(np.float32),
        [(0, pad_h), (0, pad_w), (0, 0)],
        mode="symmetric" if mode == "reflect" else "constant",
    )
    step = max(1, int(tile * (1 - overlap)))
    corners = [(y, x) for y in _tile_starts(work.shape[0], tile, step) for x in _tile_starts(work.shape[1], tile, step)]
    weight = _tile_weight(tile)
    total = None
    norm = np.zeros(work.shape[:2], np.float32)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i : i + batch_size]
        batch = np.stack([work[y : y + tile, x : x + tile] for y, x in chunk])
        out = np.asarray(model.predict(batch), np.float32)
        if total is None:
            total = np.zeros((*work.shape[:2], out.shape[-1]), np.float32)
        for (y, x), p in zip(chunk, out):
            total[y : y + tile, x : x + tile] += p * weight[..., None]
            norm[y : y + tile, x : x + tile] += weight
    return (total / norm[..., None])[:height, :width]


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image must have shape (H, W, 3) RGB; received shape {image.shape}.")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"an image must be at least 1x1 pixels; received shape {image.shape}.")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def segment(
    images: str | Path | np.ndarray | Sequence[str | Path | np.ndarray],
    model: str | Path | keras.Model | OpenedModel | None = None,
    *,
    tile: int | Literal["auto"] | None = "auto",
    runtime: str = "auto",
    stream: bool = False,
) -> list[Segmentation] | Iterator[FrameResult]:
    """Segment images: per image the class probabilities and labels at its original resolution.

    Args:
        images: a path, an (H, W, 3) RGB array, an (N, H, W, 3) batch, or a list of paths/arrays
            (any sizes); with ``stream=True`` any source: an image, folder, glob, video file,
            camera index or stream URL.
        model: shipped name, ``.keras``/``.onnx`` path, ``keras.Model`` or an opened model
            (default ``"person_seg"``). Open it once and pass it in when segmenting many times.
        tile: overlap-tile side for large images (``"auto"``: the training tile; None: whole image).
        runtime: ``"auto"``, ``"onnx"`` or ``"keras"``.
        stream: yield :class:`~cvapps.core.streaming.FrameResult` ``(frame, segmentation)`` frame by
            frame instead of returning a list (see :mod:`cvapps.core.streaming`).

    Returns:
        list of :class:`Segmentation`, one per image, in input order; with ``stream=True`` an iterator
        of ``FrameResult(frame, segmentation)`` (None for a frame that could not be read).

    Raises:
        ValueError: an unreadable file (named), an array that is not (H, W, 3), or a model
            that is not a segmentation model.
    """
    from cvapps.core.sources import read_image

    model = open_model(DEFAULT_MODEL if model is None else model, task="segment", runtime=runtime)
    if stream:
        from cvapps.core.streaming import FrameStream, stream_results

        return stream_results(
            FrameStream(images),
            lambda frame: Segmentation.from_probabilities(
                predict_probabilities(model, frame.image, tile), model.info.class_names, frame.source
            ),
        )
    if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    results = []
    for image in images:
        source = str(image) if isinstance(image, (str, Path)) else "array"
        array = read_image(image) if isinstance(image, (str, Path)) else image
        probabilities = predict_probabilities(model, array, tile)
        results.append(Segmentation.from_probabilities(probabilities, model.info.class_names, source))
    return results
