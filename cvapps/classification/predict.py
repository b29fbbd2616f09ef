"""Classification at inference: the result type, the batch helpers and ``classify``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvapps.classification import DEFAULT_MODEL, UNKNOWN
from cvapps.core.images import check_rgb_array
from cvapps.models import ModelInfo
from cvapps.runtime import open_model

if TYPE_CHECKING:
    import keras
    from numpy.typing import ArrayLike

    from cvapps.core.streaming import FrameResult
    from cvapps.runtime import OpenedModel

# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Classification:
    """Top-k classes of one image, most probable first.

    Attributes:
        class_ids: (k,) int class indices.
        class_names: (k,) names.
        scores: (k,) probabilities in [0, 1], descending.
        source: where the image came from (path or "array"), for reports.
        unknown: True when the top probability was below the caller's ``min_confidence``: the
            image's :attr:`label` is then ``"unknown"`` ("none of these"); the top-k stay as computed.
    """

    class_ids: tuple
    class_names: tuple
    scores: tuple
    source: str = "array"
    unknown: bool = False

    def __post_init__(self):
        if not (len(self.class_ids) == len(self.class_names) == len(self.scores)):
            raise ValueError("class_ids, class_names and scores must have the same length.")
        if any(a < b for a, b in zip(self.scores, self.scores[1:])):
            raise ValueError("scores must be in descending order.")

    @property
    def label(self) -> str:
        """The answer: the most probable class name, or ``"unknown"`` when below ``min_confidence``."""
        return UNKNOWN if self.unknown else self.class_names[0]

    def top(self) -> tuple[str, float]:
        """(label, probability) of the most probable class; the label is ``"unknown"`` when it was
        below ``min_confidence``."""
        return self.label, self.scores[0]

    def to_dict(self) -> list[dict[str, Any]]:
        return [
            {"class_id": int(i), "class_name": n, "score": round(float(s), 6)}
            for i, n, s in zip(self.class_ids, self.class_names, self.scores)
        ]


# --- inference ---------------------------------------------------------------------------------


def predict_probabilities(
    model: str | Path | keras.Model | OpenedModel,
    images: np.ndarray,
    batch_size: int = 64,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> np.ndarray:
    """(N, S, S, 3) pixels -> (N, C) probabilities, ``batch_size`` images per call.

    ``model`` is an opened model (:func:`cvapps.runtime.open_model`: onnxruntime, or Keras's
    compiled predict function) or a ``keras.Model``.
    """
    model = open_model(model)
    starts = range(0, len(images), batch_size)
    starts = progress(starts, len(starts)) if progress else starts
    outputs = [model.predict(images[i : i + batch_size]) for i in starts]
    return np.concatenate(outputs) if outputs else np.zeros((0, len(model.info.class_names)), np.float32)


def prepare(
    images: str | Path | np.ndarray | Sequence[str | Path | np.ndarray], info: ModelInfo
) -> tuple[np.ndarray, list[str]]:
    """Images (paths, arrays or a mix) -> (N, S, S, 3) uint8 batch at the model's input size."""
    from cvapps.core.sources import read_image, resize_square

    if isinstance(images, (str, Path, np.ndarray)) and not (isinstance(images, np.ndarray) and images.ndim == 4):
        images = [images]
    batch, sources = [], []
    for image in images:
        source = str(image) if isinstance(image, (str, Path)) else "array"
        array = read_image(image) if isinstance(image, (str, Path)) else check_rgb_array(image)
        batch.append(resize_square(array, info.image_size))
        sources.append(source)
    return np.stack(batch), sources


def top_k_results(
    probabilities: np.ndarray,
    class_names: Sequence[str],
    top_k: int,
    sources: Iterable[str],
    min_confidence: float = 0.0,
) -> list[Classification]:
    """(N, C) probabilities -> N :class:`Classification` of the ``top_k`` classes; an image whose top
    probability is below ``min_confidence`` is marked ``unknown`` (its label is ``"unknown"``).

    >>> [r] = top_k_results(np.array([[0.3, 0.45, 0.25]]), ["a", "b", "c"], 2, ["x.jpg"], min_confidence=0.5)
    >>> r.class_names, r.label, r.top()
    (('b', 'a'), 'unknown', ('unknown', 0.45))
    """
    check_min_confidence(min_confidence)
    k = min(top_k, probabilities.shape[1])
    ranked = np.argsort(-probabilities, axis=1)[:, :k]
    return [
        Classification(
            tuple(int(i) for i in row),
            tuple(class_names[i] for i in row),
            tuple(float(probabilities[n, i]) for i in row),
            source,
            unknown=bool(probabilities[n, row[0]] < min_confidence),
        )
        for n, (row, source) in enumerate(zip(ranked, sources))
    ]


def check_min_confidence(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"min_confidence must be a probability in [0, 1], received {value!r}; e.g. 0.3 labels "
            "images whose top class scores below 30% as 'unknown'."
        )


def group_classes(probabilities: ArrayLike, class_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Fold ImageNet's fine classes into readable parents ("dog", "cat", "car", ...), see
    :func:`cvapps.classification.imagenet.fold_groups`; returns (probabilities, class names)."""
    from cvapps.classification.imagenet import fold_groups

    return fold_groups(probabilities, class_names)


def classify(
    images: str | Path | np.ndarray | Sequence[str | Path | np.ndarray],
    model: str | Path | keras.Model | OpenedModel | None = None,
    *,
    top_k: int = 5,
    min_confidence: float = 0.0,
    group: bool = False,
    batch_size: int = 32,
    runtime: str = "auto",
    stream: bool = False,
) -> list[Classification] | Iterator[FrameResult]:
    """Classify images with a cvapps classifier.

    Args:
        images: a path, an (H, W, 3) RGB array, an (N, H, W, 3) batch, or a list of paths/arrays;
            with ``stream=True`` any source: an image, folder, glob, video file, camera index or
            stream URL.
        model: a shipped model name, a ``.keras``/``.onnx`` path, a ``keras.Model`` or an opened
            model (:func:`cvapps.runtime.open_model`); default ``"imagenet"`` (EfficientNet-Lite0,
            the 1000 ImageNet classes; built into the cache on first use). Open it once and
            pass it in when classifying many times.
        top_k: how many classes to return per image (at least 1).
        batch_size: images per forward pass.
        runtime: ``"auto"`` (onnxruntime when the model has a matching ``.onnx``), ``"onnx"``
            or ``"keras"``.
        min_confidence: "none of these": an image whose top probability is below this gets the
            label ``"unknown"`` (:attr:`Classification.label`); 0 (default) never.
        group: fold ImageNet's fine classes into parents ("English springer" -> "dog"; imagenet
            model only; see :data:`cvapps.classification.imagenet.GROUP_RANGES`) before taking the top k.
        stream: yield :class:`~cvapps.core.streaming.FrameResult` ``(frame, classification)`` frame
            by frame instead of returning a list (see :mod:`cvapps.core.streaming`).

    Returns:
        list of :class:`Classification`, one per image, in input order; with ``stream=True`` an
        iterator of ``FrameResult(frame, classification)`` (None for a frame that could not be read).

    >>> for frame, result in classify("clip.mp4", stream=True):   # doctest: +SKIP
    ...     print(frame.index, result.top())
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, received {top_k!r}.")
    check_min_confidence(min_confidence)
    model = open_model(DEFAULT_MODEL if model is None else model, task="classify", runtime=runtime)
    info = model.info
    if stream:
        from cvapps.core.streaming import FrameStream, stream_results

        def one(frame):
            batch, _ = prepare([frame.image], info)
            [result] = results_from_probabilities(
                predict_probabilities(model, batch, 1),
                info.class_names,
                [frame.source],
                top_k=top_k,
                min_confidence=min_confidence,
                group=group,
            )
            return result

        return stream_results(FrameStream(images), one)
    batch, sources = prepare(images, info)
    return results_from_probabilities(
        predict_probabilities(model, batch, batch_size),
        info.class_names,
        sources,
        top_k=top_k,
        min_confidence=min_confidence,
        group=group,
    )


def results_from_probabilities(
    probabilities: np.ndarray,
    class_names: Sequence[str],
    sources: Iterable[str],
    *,
    top_k: int = 5,
    min_confidence: float = 0.0,
    group: bool = False,
) -> list[Classification]:
    """(N, C) probabilities -> N :class:`Classification`: classes folded first when ``group``, then the top k,
    then "unknown" below ``min_confidence``. The one post-processing of :func:`classify` and the CLI."""
    if group:
        probabilities, class_names = group_classes(probabilities, class_names)
    return top_k_results(probabilities, class_names, top_k, sources, min_confidence)
