"""Detection at inference: the Detections result type and detect()."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from cvapps.core.boxes import yolo_xyxy
from cvapps.detection import DEFAULT_MODEL
from cvapps.detection.model import SlotGeometry

if TYPE_CHECKING:
    import keras

    from cvapps.core.streaming import FrameResult
    from cvapps.core.tracking import Tracker, TrackOptions
    from cvapps.runtime import OpenedModel

# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detections:
    """Detections in one image, in the one internal box format.

    Attributes:
        xyxy: (N, 4) float32 boxes, x1 <= x2 and y1 <= y2, pixels of the original image.
        confidence: (N,) float32 scores in [0, 1].
        class_id: (N,) int64 indices into ``class_names``.
        class_names: the model's class names.
        track_id: (N,) int64 track ids when the detections come from a tracked stream
            (``detect(..., track=True)``): the same object keeps its id from frame to frame; -1 is a
            box not confirmed as a track yet. None when not tracked.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: tuple = ()
    track_id: np.ndarray | None = None

    def __post_init__(self):
        xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        confidence = np.asarray(self.confidence, np.float32).reshape(-1)
        class_id = np.asarray(self.class_id).reshape(-1)
        if not len(xyxy) == len(confidence) == len(class_id):
            raise ValueError(
                f"Detections needs as many boxes as confidences and class ids; received "
                f"{len(xyxy)}, {len(confidence)} and {len(class_id)}."
            )
        if len(class_id) and not np.all(np.equal(np.mod(class_id, 1), 0)):
            raise ValueError(f"class_id must hold integers; received {class_id[:5]}.")
        class_id = class_id.astype(np.int64)
        if not np.all(np.isfinite(xyxy)) or np.any(xyxy[:, 2:] < xyxy[:, :2]):
            raise ValueError(
                "boxes must be finite xyxy with x1 <= x2 and y1 <= y2; convert with cvapps.core.boxes.to_xyxy."
            )
        if np.any((confidence < 0) | (confidence > 1)):
            raise ValueError("confidence must be in [0, 1].")
        if self.class_names and len(class_id) and (class_id.min() < 0 or class_id.max() >= len(self.class_names)):
            raise ValueError(f"class_id values must index the {len(self.class_names)} class_names.")
        if self.track_id is not None:
            track_id = np.asarray(self.track_id).reshape(-1)
            if len(track_id) != len(xyxy) or (len(track_id) and np.any(np.mod(track_id, 1) != 0)):
                raise ValueError(
                    f"track_id must hold one integer per box ({len(xyxy)}); received {len(track_id)} values."
                )
            object.__setattr__(self, "track_id", track_id.astype(np.int64))
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @classmethod
    def empty(cls, class_names: Sequence[str] = ()) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), class_names)

    def __len__(self):
        return len(self.xyxy)

    def __getitem__(self, index):
        """Select detections by boolean mask, integer array or slice; returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        tracks = None if self.track_id is None else self.track_id[index]
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.class_names, tracks)

    @property
    def class_name(self) -> list[str]:
        """Name of each detection's class (``str(class_id)`` when the model has no names)."""
        return [self.class_names[i] if self.class_names else str(i) for i in self.class_id]

    def to_dict(self) -> list[dict[str, Any]]:
        """One JSON-ready record per detection (with ``track_id`` when tracked)."""
        records = [
            {
                "box": [round(float(v), 2) for v in box],
                "confidence": round(float(c), 6),
                "class_id": int(i),
                "class_name": n,
            }
            for box, c, i, n in zip(self.xyxy, self.confidence, self.class_id, self.class_name)
        ]
        if self.track_id is not None:
            for record, track in zip(records, self.track_id):
                record["track_id"] = int(track)
        return records


# --- inference ---------------------------------------------------------------------------------


def decode_predictions(raw: ArrayLike, geometry: SlotGeometry) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of :func:`decode_slots` plus scores: (slots, 5 + C) raw -> (boxes (slots, 4)
    xyxy model-input pixels, scores (slots, C) = sigmoid(objectness) * sigmoid(class logit))."""
    raw = np.asarray(raw, np.float32)
    sigmoid = 1 / (1 + np.exp(-raw))
    boxes = yolo_xyxy(sigmoid, geometry.anchors, geometry.grid, geometry.strides)
    return boxes, sigmoid[:, 4:5] * sigmoid[:, 5:]


def detect(
    images: str | int | Path | np.ndarray | Sequence[str | Path | np.ndarray],
    model: str | Path | keras.Model | OpenedModel | None = None,
    *,
    confidence_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    classes: str | int | Iterable[str | int] | None = None,
    max_detections: int = 300,
    class_thresholds: Mapping[str, float] | None = None,
    runtime: str = "auto",
    stream: bool = False,
    track: bool | TrackOptions | Tracker = False,
) -> list[Detections] | Iterator[FrameResult]:
    """Detect objects; boxes come back in each original image's pixels.

    Args:
        images: a path, an (H, W, 3) RGB array, or a list of them; with ``stream=True`` any source:
            an image, folder, glob, video file, camera index (``0``) or stream URL (``rtsp://...``).
        model: a detector: shipped name, ``.keras``/``.onnx`` path, ``keras.Model`` or opened
            model; default the shipped ``person`` detector.
        confidence_threshold: keep detections scoring at least this (objectness x class).
        iou_threshold: class-aware NMS suppresses overlaps above this IoU.
        classes: class names (or ids) to keep; default all. A box is given the best of these
            classes, so asking for ``["cat"]`` still finds a cat the model scored second to dog.
        max_detections: at most this many per image, best first.
        class_thresholds: ``{class name: threshold}`` overriding ``confidence_threshold`` for
            those classes (e.g. ``{"person": 0.5}`` with 0.25 for the rest).
        stream: yield :class:`~cvapps.core.streaming.FrameResult` ``(frame, detections)`` frame by
            frame instead of returning a list (a video is never held in memory; see
            :mod:`cvapps.core.streaming`).
        track: give boxes track ids that persist across the frames, in order (ByteTrack, from the
            ``trackers`` package): ``True`` or a :class:`cvapps.core.tracking.TrackOptions` (a new
            tracker for this call), or a :class:`cvapps.core.tracking.Tracker` of yours, which keeps
            its tracks from call to call (Ultralytics' ``persist=True``: ``detect(frame, track=tracker)``
            in your own loop). Boxes scoring between 0.1 and the threshold are used to continue a
            track through a dip in confidence (ByteTrack's second association) and are returned when
            they do; a box that is not a confirmed track yet has id -1.

    Returns:
        list of :class:`Detections`, one per image; with ``stream=True`` an iterator of
        ``FrameResult(frame, detections)`` (``detections`` None for a frame that could not be read).

    Raises:
        ValueError: a bad threshold, class or image; with ``stream=True`` a source that cannot be
            opened (at the call, before the first frame).

        >>> for frame, found in detect("street.mp4", stream=True, track=True):   # doctest: +SKIP
        ...     print(frame.index, found.track_id, found.class_name)
    """
    from cvapps.runtime import open_model

    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1]; received {iou_threshold}.")
    model = open_model(DEFAULT_MODEL if model is None else model, task="detect", runtime=runtime)
    info = model.info
    thresholds = class_threshold_vector(info.class_names, confidence_threshold, classes, class_thresholds)
    geometry = _geometry(info.image_size, json.dumps(info.settings["anchors"]), tuple(info.settings["strides"]))
    tracking = track is not False and track is not None
    if tracking:
        _check_track(track)  # before a stream's source is opened
    # with tracking the detector keeps the low boxes too, for ByteTrack's second association
    lowered = np.where(np.isfinite(thresholds), np.minimum(thresholds, TRACK_LOW_THRESHOLD), thresholds)
    one = functools.partial(
        _detect_one,
        model=model,
        thresholds=lowered if tracking else thresholds,
        geometry=geometry,
        iou=iou_threshold,
        most=max_detections,
    )
    frames = None
    if stream:
        from cvapps.core.streaming import FrameStream, stream_results

        frames = FrameStream(images)
    tracker = _tracker(track, confidence_threshold, frames.fps if frames else None) if tracking else None

    def run(image):
        return one(image) if tracker is None else _track(one(image), tracker, thresholds)

    if stream:
        return stream_results(frames, lambda frame: run(frame.image))
    if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    return [run(image) for image in images]


TRACK_LOW_THRESHOLD = 0.1  # ByteTrack's low boxes (Ultralytics' track_low_thresh): only continue tracks


def _tracker(track, confidence_threshold, fps=None):
    """The Tracker for ``track``: the caller's own (kept across calls), or a new one; ``True`` starts tracks
    at ``confidence_threshold``."""
    from cvapps.core.tracking import Tracker, TrackOptions

    if isinstance(track, Tracker):
        return track
    _check_track(track)
    if track is True:
        track = TrackOptions.starting_at(confidence_threshold)
    return Tracker(track, frame_rate=fps or 30.0)


def _check_track(track):
    from cvapps.core.tracking import Tracker, TrackOptions

    if not (track is True or isinstance(track, (TrackOptions, Tracker))):
        raise TypeError(
            f"track must be True, False, a cvapps.core.tracking.TrackOptions or a Tracker; received {track!r}."
        )


def _track(found: Detections, tracker: Tracker, thresholds: np.ndarray) -> Detections:
    """``found`` (detected down to TRACK_LOW_THRESHOLD) through ``tracker``: a box at or above its class's
    threshold is a confident box; one below only continues a track (ByteTrack's low boxes) and is dropped
    when it continues none."""
    below = min(tracker.options.activation_threshold, tracker.options.high_threshold)
    confident = found.confidence >= thresholds[found.class_id]
    # a box under its own class's threshold may continue a track but never start one
    scores = np.where(confident, found.confidence, np.minimum(found.confidence, np.nextafter(np.float32(below), 0)))
    index, track_id = tracker.update(found.xyxy, scores, found.class_id)
    kept = found[index]
    return Detections(kept.xyxy, kept.confidence, kept.class_id, kept.class_names, track_id)


def _detect_one(image, model, thresholds, geometry, iou, most) -> Detections:
    """Detections in one image (a path or an (H, W, 3) uint8 RGB array) with per-class ``thresholds``."""
    from cvapps.core.boxes import clip_boxes, nms
    from cvapps.core.sources import read_image
    from cvapps.detection.augment import letterbox, unletterbox_boxes

    image = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"an image array must be (H, W, 3) uint8 RGB; received {image.dtype} of shape {image.shape}.")
    info = model.info
    boxed, scale, pad = letterbox(image, info.image_size)
    boxes, scores = decode_predictions(model.predict(boxed[None].astype(np.float32))[0], geometry)
    scores = np.where(np.isfinite(thresholds), scores, 0.0)  # classes not asked for score 0
    class_id = scores.argmax(axis=1)
    confidence = scores[np.arange(len(scores)), class_id]
    keep = np.flatnonzero((confidence >= thresholds[class_id]) & (confidence > 0))
    kept = keep[nms(boxes[keep], confidence[keep], iou, class_ids=class_id[keep], max_detections=most)]
    height, width = image.shape[:2]
    xyxy = clip_boxes(unletterbox_boxes(boxes[kept], scale, pad), width, height)
    inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # not wholly in the padding
    return Detections(xyxy[inside], confidence[kept][inside], class_id[kept][inside], info.class_names)


def class_threshold_vector(
    class_names: Iterable[str],
    confidence_threshold: float = 0.25,
    classes: str | int | Iterable[str | int] | None = None,
    class_thresholds: Mapping[str, float] | None = None,
) -> np.ndarray:
    """The confidence each class must reach, as a (C,) array; ``inf`` for classes left out.

    >>> class_threshold_vector(("person", "dog", "cat"), 0.25, classes=["person", "cat"],
    ...                        class_thresholds={"cat": 0.6}).tolist()
    [0.25, inf, 0.6]

    Raises:
        ValueError: a threshold outside [0, 1], or a class the model does not have.
    """
    names = list(class_names)

    def index(name, what):
        if isinstance(name, (int, np.integer)) and 0 <= name < len(names):
            return int(name)
        if name in names:
            return names.index(name)
        raise ValueError(f"{what}: the model has no class {name!r}; its classes are {', '.join(names)}.")

    def checked(value, what):
        if not isinstance(value, (int, float, np.floating)) or not 0 <= value <= 1:
            raise ValueError(f"{what} must be a number in [0, 1]; received {value!r}.")
        return float(value)

    thresholds = np.full(len(names), checked(confidence_threshold, "confidence_threshold"), np.float64)
    for name, value in (class_thresholds or {}).items():
        thresholds[index(name, "class_thresholds")] = checked(value, f"class_thresholds[{name!r}]")
    if classes is not None:
        if isinstance(classes, (str, int, np.integer)):
            classes = [classes]
        wanted = np.zeros(len(names), bool)
        wanted[[index(c, "classes") for c in classes]] = True
        thresholds[~wanted] = np.inf
    return thresholds


def crop_detections(image: np.ndarray, detections: Detections) -> list[np.ndarray]:
    """The pixels inside each box: a list of (h, w, 3) arrays, one per detection (boxes are
    rounded outwards to whole pixels; a box smaller than a pixel gives a 1-pixel crop).

    >>> import numpy as np
    >>> image = np.zeros((10, 20, 3), np.uint8)
    >>> found = Detections([[2.5, 1, 6, 4]], [0.9], [0])
    >>> [c.shape for c in crop_detections(image, found)]
    [(3, 4, 3)]
    """
    height, width = image.shape[:2]
    crops = []
    for x1, y1, x2, y2 in detections.xyxy:
        left, top = min(int(np.floor(x1)), width - 1), min(int(np.floor(y1)), height - 1)
        right, bottom = max(int(np.ceil(x2)), left + 1), max(int(np.ceil(y2)), top + 1)
        crops.append(image[top:bottom, left:right].copy())
    return crops


@functools.lru_cache(maxsize=8)
def _geometry(image_size, anchors_json, strides):
    """:class:`SlotGeometry` of a model, built once per (size, anchors, strides)."""
    return SlotGeometry.build(image_size, json.loads(anchors_json), strides)
