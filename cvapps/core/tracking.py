"""Multi-object tracking, line crossing counts and zone counts, for ``--track``, ``--count-line`` and ``--zone``.

:class:`Tracker` gives detections track ids that persist from frame to frame (ByteTrack, from
Roboflow's ``trackers`` package, imported on first use); :class:`LineCounter` counts tracks whose
box centre crosses a line segment, in and out, by class; :class:`PolygonZone` counts the boxes
whose bottom-centre lies inside a polygon, per frame. Boxes are xyxy pixels, float32 (N, 4)
everywhere. Line and polygon coordinates are pixels, or fractions of the frame's width and height
when every value is in [0, 1] (:func:`parse_points`).

    >>> import numpy as np
    >>> from cvapps.core.tracking import LineCounter
    >>> counter = LineCounter("0,0.5,1,0.5")        # across the middle, pointing right: down is "in"
    >>> box = lambda y: np.array([[90, y - 5, 110, y + 5]], np.float32)  # centre (100, y)
    >>> for y in (40, 48, 56):                      # one track (id 7) walking down over y = 50
    ...     crossed_in, crossed_out = counter.update(box(y), [7], ["person"], frame_shape=(100, 200))
    >>> crossed_in.tolist(), counter.to_dict()
    ([True], {'line': [[0.0, 50.0], [200.0, 50.0]], 'in': {'person': 1}, 'out': {}, 'total_in': 1, 'total_out': 0})
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["LineCounter", "PolygonZone", "TrackOptions", "Tracker", "parse_points"]

# ----------------------------------------------------------------------------------------------
# Tracking
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackOptions:
    """How :class:`Tracker` starts, continues and ends tracks (ByteTrack's settings).

    The defaults follow Ultralytics' ``bytetrack.yaml`` where it has an equivalent:
    ``new_track_thresh: 0.25`` (``activation_threshold``), ``track_high_thresh: 0.25``
    (``high_threshold``), ``track_buffer: 30`` (``lost_frames``); ``min_iou`` and ``min_frames``
    are the ``trackers`` package's defaults (Ultralytics matches at IoU >= 0.2, ``match_thresh:
    0.8`` on 1 - IoU, and confirms a track on its second frame too). Ultralytics also drops boxes
    under ``track_low_thresh: 0.1`` before tracking; here that is the detector's threshold: run the
    detector at 0.1 so that ByteTrack's low boxes reach the tracker at all.

    Attributes:
        activation_threshold: a detection must score at least this to start a track (cvapps'
            default detection threshold; ByteTrack's own default is 0.7).
        high_threshold: ByteTrack's split of each frame's detections: those at or above it are
            matched first, to every track; those below it only continue tracks left unmatched
            (its low-score recovery, e.g. a person half hidden for a few frames). At most
            ``activation_threshold``, so that every detection that may start a track is a high one.
        lost_frames: a track that finds no detection is kept this many frames of a 30 fps video
            (ByteTrack's ``track_buffer``: scaled by the :class:`Tracker`'s ``frame_rate``, so 30 is
            one second at any rate: 30 updates at 30 fps, 60 at 60 fps) before it ends; an object
            reappearing within them keeps its id. 0 ends a track on its first missed frame.
        min_iou: a detection continues a track only if its box overlaps the track's predicted box
            by at least this IoU.
        min_frames: a new track gets an id once it has been matched in this many consecutive
            frames; until then its boxes have track id -1 (tentative). The frame a track starts on
            is always tentative (ByteTrack's rule in ``trackers``), so 1 and 2 (the default) both
            give the id on the object's second frame, 3 on its third.
        trail: box centres kept per track for drawing (:attr:`Tracker.trails`); 0 keeps none.
        class_aware: match a detection only to tracks of its own class (each class tracked on its
            own, as if every class were a separate video). False (ByteTrack's and Ultralytics'
            way): class-agnostic, so a track survives the detector flipping its class (a fox that
            is "dog" one frame and "cat" the next), but may jump to an overlapping box of another
            class (the fox to the bed it stands on).

    >>> TrackOptions(lost_frames=60).lost_frames
    60
    >>> TrackOptions(high_threshold=0.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: TrackOptions.high_threshold must be at most activation_threshold (0.25), ...; received 0.5. ...
    """

    activation_threshold: float = 0.25
    high_threshold: float = 0.25
    lost_frames: int = 30
    min_iou: float = 0.1
    min_frames: int = 2
    trail: int = 30
    class_aware: bool = False

    @classmethod
    def starting_at(cls, confidence_threshold: float, class_aware: bool = False) -> TrackOptions:
        """The options ``detect(..., track=True)`` and ``--track`` use: tracks start at the detection
        threshold, boxes under it only continue tracks (``activation_threshold = high_threshold``).

        >>> TrackOptions.starting_at(0.4).activation_threshold
        0.4
        """
        return cls(
            activation_threshold=confidence_threshold, high_threshold=confidence_threshold, class_aware=class_aware
        )

    def __post_init__(self):
        if not isinstance(self.class_aware, bool):
            raise TypeError(f"TrackOptions.class_aware must be True or False; received {self.class_aware!r}.")
        for name in ("activation_threshold", "high_threshold", "min_iou"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"TrackOptions.{name} must be a number in [0, 1]; received {value!r}.")
            if not 0 <= value <= 1:
                raise ValueError(f"TrackOptions.{name} must be in [0, 1]; received {value!r}.")
            object.__setattr__(self, name, float(value))
        for name, low in (("lost_frames", 0), ("min_frames", 1), ("trail", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"TrackOptions.{name} must be an integer >= {low}; received {value!r}.")
            if value < low:
                raise ValueError(f"TrackOptions.{name} must be an integer >= {low}; received {value!r}.")
            object.__setattr__(self, name, int(value))
        if self.high_threshold > self.activation_threshold:
            raise ValueError(
                f"TrackOptions.high_threshold must be at most activation_threshold ({self.activation_threshold}), "
                f"so that every detection that may start a track is matched first; received {self.high_threshold}. "
                "Raise activation_threshold too, or lower high_threshold."
            )


CLASS_STRIPE = 16384.0  # pixels between the classes' stripes with class_aware (frames up to 16384 pixels)


class Tracker:
    """Track ids for detections across the frames of one stream (ByteTrack, class-agnostic).

    ByteTrack (Zhang et al. 2022) predicts each track's box with a Kalman filter, matches the
    frame's confident detections to the predicted boxes by IoU (Hungarian), then matches the
    remaining tracks to the low-confidence detections, and starts tentative tracks from the
    confident detections left over. Association ignores the class, as ByteTrack does; the class
    of a tracked box is the class of the detection it was matched with. Ids are non-negative,
    unique per Tracker and never reused, not even after :meth:`reset`.

    Args:
        options: thresholds and lengths, :class:`TrackOptions`.
        frame_rate: the stream's frames per second (one update per frame): a lost track is kept
            ``options.lost_frames * frame_rate / 30`` updates.

    >>> import numpy as np
    >>> tracker = Tracker()
    >>> for step in range(3):                       # one box moving right 2 px a frame
    ...     box = np.array([[10 + 2 * step, 10, 30 + 2 * step, 30]], np.float32)
    ...     index, track_id = tracker.update(box, [0.9], [0])
    ...     print(index.tolist(), track_id.tolist())
    [0] [-1]
    [0] [0]
    [0] [0]
    >>> {k: v.tolist() for k, v in tracker.trails.items()}   # centres since the id was given
    {0: [[22.0, 20.0], [24.0, 20.0]]}
    """

    def __init__(self, options: TrackOptions | None = None, frame_rate: float = 30.0) -> None:
        options = TrackOptions() if options is None else options
        if not isinstance(options, TrackOptions):
            raise TypeError(f"Tracker takes a cvapps.core.tracking.TrackOptions; received {type(options).__name__}.")
        if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float, np.integer, np.floating)):
            raise TypeError(f"frame_rate must be a positive number of frames per second; received {frame_rate!r}.")
        if not math.isfinite(frame_rate) or frame_rate <= 0:
            raise ValueError(f"frame_rate must be a positive number of frames per second; received {frame_rate!r}.")
        self.options = options
        self.frame_rate = float(frame_rate)
        self._offset = 0  # added to ByteTrack's ids, which restart at 0 after a reset
        self._largest = -1  # the largest id given so far
        self._tracker = None  # built at the first update: importing trackers takes about a second
        self._trails: dict[int, deque] = {}
        self._seen: list[int] = []  # confirmed ids returned by the last update
        self._votes: dict[int, dict[str, tuple[int, int]]] = {}  # id -> name -> (count, last vote)
        self._step = 0
        self.reset()

    def _new_bytetrack(self):
        from trackers import ByteTrackTracker

        o = self.options
        # lost_track_buffer is counted in 30 fps frames and scaled by frame_rate / 30.
        return ByteTrackTracker(
            lost_track_buffer=o.lost_frames,
            frame_rate=self.frame_rate,
            track_activation_threshold=o.activation_threshold,
            minimum_consecutive_frames=o.min_frames,
            minimum_iou_threshold=o.min_iou,
            high_conf_det_threshold=o.high_threshold,
        )

    def reset(self) -> None:
        """Forget every track (call between videos); later ids continue after the last one given."""
        # ByteTrack gives an id only to a track matched in this update, and update() returns it,
        # so the largest id returned so far is the largest given
        self._offset = self._largest + 1
        self._tracker = None
        self._trails.clear()
        self._seen = []
        self._votes.clear()

    def update(self, xyxy: ArrayLike, confidence: ArrayLike, class_id: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Advance the tracks by one frame; returns which detections to keep and their track ids.

        Args:
            xyxy: (N, 4) float boxes of this frame, xyxy pixels; N may be 0.
            confidence: (N,) scores in [0, 1].
            class_id: (N,) integer classes (carried, not used for matching).

        Returns:
            ``(index, track_id)``: (M,) int64 indices into the inputs, ascending (input order),
            and (M,) int64 track ids, -1 for a detection not confirmed as a track yet. Kept: every
            detection scoring at least ``activation_threshold`` (tracked or -1), and a lower one
            only when it continued a confirmed track; the other low ones are dropped.

        Raises:
            ValueError: mismatched lengths, boxes not (N, 4) finite xyxy, scores outside [0, 1].
        """
        import supervision as sv

        boxes, scores, classes = _check_detections(xyxy, confidence, class_id)
        if self._tracker is None:
            self._tracker = self._new_bytetrack()
        matched = boxes
        if self.options.class_aware:
            # each class in its own far-apart stripe of the plane: boxes of two classes never overlap,
            # so IoU matching pairs a detection with tracks of its class only (the batched-NMS offset)
            matched = boxes.astype(np.float64) + (classes * CLASS_STRIPE)[:, None].astype(np.float64)
        detections = sv.Detections(
            xyxy=matched, confidence=scores, class_id=classes, data={"index": np.arange(len(boxes))}
        )
        result = self._tracker.update(detections)
        if len(result):
            index = np.asarray(result.data["index"], np.int64)
            raw = np.asarray(result.tracker_id, np.int64)
        else:
            index, raw = np.zeros(0, np.int64), np.zeros(0, np.int64)
        track_id = np.where(raw >= 0, raw + self._offset, -1)
        keep = (scores[index] >= self.options.activation_threshold) | (track_id >= 0)
        order = np.argsort(index[keep], kind="stable")
        index, track_id = index[keep][order], track_id[keep][order]
        if len(track_id):
            self._largest = max(self._largest, int(track_id.max()))

        confirmed = track_id >= 0
        # centres (x1 + x2) / 2, (y1 + y2) / 2 of the boxes that continued confirmed tracks
        centres = (boxes[index[confirmed], :2] + boxes[index[confirmed], 2:]) / 2
        self._seen = track_id[confirmed].tolist()
        if self.options.trail:
            for tid, centre in zip(self._seen, centres):
                self._trails.setdefault(tid, deque(maxlen=self.options.trail)).append(centre)
        alive = {t.tracker_id + self._offset for t in self._tracker.tracks if t.tracker_id >= 0}
        for memory in (self._trails, self._votes):
            for tid in [tid for tid in memory if tid not in alive]:
                del memory[tid]
        return index, track_id

    @property
    def trails(self) -> dict[int, np.ndarray]:
        """{track id: (K, 2) float32 box centres, oldest first} for the confirmed tracks of the last update.

        At most ``options.trail`` centres each, from the frames the track had its id (K >= 1).
        """
        return {
            tid: np.asarray(self._trails[tid], np.float32).reshape(-1, 2) for tid in self._seen if tid in self._trails
        }

    def name_tracks(self, track_id: ArrayLike, names: Sequence[str], unknown: str = "unknown") -> list[str]:
        """Names that stay with a track once identified (faces): one per input, in input order.

        Each call adds ``names[i]`` as a vote for track ``track_id[i]`` (``unknown`` is no vote);
        a track's name is its most voted one so far (ties: the latest). A track never identified,
        or a box with track id -1, gets its own ``names[i]``.

        Args:
            track_id: (N,) track ids, as returned by :meth:`update`.
            names: (N,) this frame's names, e.g. from face recognition.
            unknown: the name that means "not identified".

        >>> tracker = Tracker()
        >>> [tracker.name_tracks([3], [n])[0] for n in ("ada", "unknown", "ada", "unknown")]
        ['ada', 'ada', 'ada', 'ada']
        >>> tracker.name_tracks([3, -1, 4], ["bob", "eve", "unknown"])    # ada 2 votes, bob 1
        ['ada', 'eve', 'unknown']
        """
        ids = np.asarray(track_id).reshape(-1)
        names = [names] if isinstance(names, str) else list(names)
        if len(ids) != len(names):
            raise ValueError(
                f"name_tracks needs one name per track id; received {len(ids)} ids and {len(names)} names."
            )
        if len(ids) and not np.all(np.mod(ids, 1) == 0):
            raise ValueError(f"track ids must be integers; received {ids[:5].tolist()}.")
        self._step += 1
        for tid, name in zip(ids.astype(np.int64).tolist(), names):
            if tid >= 0 and name != unknown:
                votes = self._votes.setdefault(tid, {})
                votes[name] = (votes.get(name, (0, 0))[0] + 1, self._step)
        out = []
        for tid, name in zip(ids.astype(np.int64).tolist(), names):
            votes = self._votes.get(tid) if tid >= 0 else None
            out.append(max(votes, key=votes.__getitem__) if votes else name)
        return out


def _check_detections(xyxy, confidence, class_id) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.asarray(xyxy, np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"xyxy must be (N, 4) boxes; received shape {boxes.shape}. Reshape with .reshape(-1, 4).")
    scores = np.asarray(confidence, np.float32).reshape(-1)
    classes = np.asarray(class_id).reshape(-1)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(
            f"update needs one confidence and one class id per box; received {len(boxes)} boxes, "
            f"{len(scores)} confidences and {len(classes)} class ids."
        )
    if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] < boxes[:, :2]):
        raise ValueError("boxes must be finite xyxy pixels with x1 <= x2 and y1 <= y2; convert with cvapps.core.boxes.")
    if np.any(~((scores >= 0) & (scores <= 1))):
        raise ValueError(f"confidence must be in [0, 1]; received {scores[~((scores >= 0) & (scores <= 1))][:5]}.")
    if len(classes) and not np.all(np.mod(classes, 1) == 0):
        raise ValueError(f"class_id must hold integers; received {classes[:5].tolist()}.")
    return boxes, scores, classes.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Lines and polygons
# ----------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[,\s]+")


def parse_points(text: str, what: str) -> np.ndarray:
    """Parse "x1,y1,x2,y2[,...]" (commas and/or spaces) into (K, 2) float32 points, K >= 2.

    The values are returned as written. Callers (:class:`LineCounter`, :class:`PolygonZone`)
    read them as pixels, or as fractions of the frame's width (x) and height (y) when every value
    is in [0, 1]: "0.5,0,0.5,1" is a vertical line through the middle of any video.

    Args:
        text: the option's value.
        what: the option's name for the error message, e.g. ``"--count-line"``.

    Raises:
        ValueError: not numbers, an odd count, fewer than 2 points, or not finite.

    >>> parse_points("10,20, 30,40", "--count-line").tolist()
    [[10.0, 20.0], [30.0, 40.0]]
    >>> parse_points("a,b", "--count-line")
    Traceback (most recent call last):
    ...
    ValueError: --count-line takes x1,y1,x2,y2[,...] as pixels, or fractions of the frame in [0, 1]; received 'a,b' ('a' is not a number).
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} takes a string 'x1,y1,x2,y2[,...]'; received {type(text).__name__}.")
    expected = f"{what} takes x1,y1,x2,y2[,...] as pixels, or fractions of the frame in [0, 1]; received {text!r}"
    parts = [part for part in _NUMBER.split(text.strip()) if part]
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"{expected} ({part!r} is not a number).") from None
    if len(values) % 2:
        raise ValueError(f"{expected} ({len(values)} values: x and y come in pairs).")
    if len(values) < 4:
        raise ValueError(f"{expected} ({len(values) // 2} point(s); at least 2 are needed).")
    points = np.array(values, np.float32).reshape(-1, 2)
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{expected} (values must be finite).")
    return points


def _frame_size(frame_shape) -> tuple[int, int]:
    """(height, width) of an (H, W) or (H, W, C) shape."""
    try:
        height, width = (int(v) for v in tuple(frame_shape)[:2])
    except (TypeError, ValueError):
        raise ValueError(
            f"frame_shape must be (H, W) or (H, W, C), e.g. image.shape; received {frame_shape!r}."
        ) from None
    if len(tuple(frame_shape)) < 2 or height <= 0 or width <= 0:
        raise ValueError(f"frame_shape must be (H, W) or (H, W, C) with H, W > 0; received {frame_shape!r}.")
    return height, width


class _Points:
    """Points given as pixels or as fractions of the frame, resolved to pixels at first use."""

    def __init__(self, points, what, minimum, exactly=None):
        if isinstance(points, str):
            points = parse_points(points, what)
        raw = np.asarray(points, np.float32)
        count = f"exactly {exactly}" if exactly else f"at least {minimum}"
        if raw.ndim == 1 and raw.size % 2 == 0:
            raw = raw.reshape(-1, 2)
        if raw.ndim != 2 or raw.shape[1] != 2 or len(raw) < minimum or (exactly and len(raw) != exactly):
            raise ValueError(
                f"{what} takes {count} (x, y) points as a (K, 2) array or 'x1,y1,x2,y2,...'; received shape {raw.shape}."
            )
        if not np.all(np.isfinite(raw)):
            raise ValueError(f"{what} points must be finite; received {raw.tolist()}.")
        self.raw = raw
        self.fractional = bool(np.all((raw >= 0) & (raw <= 1)))
        self.pixels = None if self.fractional else raw.copy()

    def resolve(self, frame_shape) -> np.ndarray:
        if self.pixels is None:
            height, width = _frame_size(frame_shape)
            self.pixels = (self.raw * np.array([width, height], np.float32)).astype(np.float32)
        return self.pixels

    def to_list(self) -> list[list[float]]:
        points = self.raw if self.pixels is None else self.pixels
        return [[round(float(x), 2), round(float(y), 2)] for x, y in points]


class LineCounter:
    """Count tracks whose box centre crosses a line segment, "in" and "out", per class.

    Sides: with the line from ``start`` A to ``end`` B, d = B - A, the signed distance of a
    point P is ``s = (d_x (P_y - A_y) - d_y (P_x - A_x)) / |d|`` (the 2-D cross product d x (P - A),
    over |d|). In image coordinates (y down) s > 0 is the right of the direction A -> B as drawn
    on screen (for a line pointing right, below it), s < 0 its left. **in** is a move from the
    left (s < 0) to the right (s > 0); **out** the reverse. So "0,0.5,1,0.5" (pointing right)
    counts moving down as in; "0.5,0,0.5,1" (pointing down) counts moving right to left as in;
    swap the two points to swap in and out.

    Each confirmed track (id >= 0) has a side, -1 or +1, which changes only once its centre is
    more than ``margin`` pixels beyond the line (hysteresis: a centre jittering on the line does
    not count in, out, in). A change of side counts once, if the motion from the centre's last
    position on the old side to its position now crosses the line *segment*: the crossing point
    X = P + t (Q - P), t = s_P / (s_P - s_Q), must project onto AB with u = (X - A) . d / |d|^2
    in [0, 1]. A track first seen within the margin has no side until it leaves it.

    Args:
        line: [[x1, y1], [x2, y2]] (or flat, or "x1,y1,x2,y2"): pixels, or fractions of the
            frame's width and height when all four values are in [0, 1], resolved at the first
            :meth:`update` (or drawing).
        margin: pixels; see above.

    Attributes:
        in_counts, out_counts: {class name: crossings} so far.
    """

    def __init__(self, line: ArrayLike | str, margin: float = 2.0) -> None:
        self._points = _Points(line, "--count-line", 2, exactly=2)
        if np.all(self._points.raw[0] == self._points.raw[1]):
            raise ValueError(f"--count-line needs two different points; received {self._points.raw.tolist()}.")
        if isinstance(margin, bool) or not isinstance(margin, (int, float, np.integer, np.floating)) or not margin >= 0:
            raise ValueError(f"margin must be a number of pixels >= 0; received {margin!r}.")
        self.margin = float(margin)
        self.in_counts: dict[str, int] = {}
        self.out_counts: dict[str, int] = {}
        self._state: dict[int, tuple[int, np.ndarray]] = {}  # id -> (side, last centre on that side)

    def resolve(self, frame_shape: Sequence[int]) -> np.ndarray:
        """(2, 2) float32 [start, end] in pixels (fractions resolved against ``frame_shape`` once)."""
        return self._points.resolve(frame_shape)

    @property
    def total_in(self) -> int:
        return sum(self.in_counts.values())

    @property
    def total_out(self) -> int:
        return sum(self.out_counts.values())

    def reset(self) -> None:
        """Zero the counts and forget the tracks' sides (the line stays resolved)."""
        self.in_counts.clear()
        self.out_counts.clear()
        self._state.clear()

    def update(
        self, xyxy: ArrayLike, track_id: ArrayLike, class_names: Sequence[str], frame_shape: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Take one frame's tracked boxes; returns (crossed_in, crossed_out), (N,) bool each.

        Args:
            xyxy: (N, 4) boxes, xyxy pixels.
            track_id: (N,) ids from :meth:`Tracker.update`; -1 (tentative) boxes are ignored.
            class_names: (N,) class name of each box (the key of the counts).
            frame_shape: the frame's (H, W) or (H, W, C), for a line given as fractions.
        """
        if track_id is None:
            raise ValueError("LineCounter.update needs track ids; received None. Track the detections first (--track).")
        boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
        ids = np.asarray(track_id).reshape(-1)
        if len(ids) and not np.all(np.mod(ids, 1) == 0):
            raise ValueError(f"track ids must be integers; received {ids[:5].tolist()}.")
        ids = ids.astype(np.int64)
        names = list(class_names)
        if not len(boxes) == len(ids) == len(names):
            raise ValueError(
                f"LineCounter.update needs one track id and class name per box; received {len(boxes)} boxes, "
                f"{len(ids)} ids and {len(names)} names."
            )
        start, end = self.resolve(frame_shape).astype(np.float64)
        d = end - start
        length = float(np.hypot(*d))
        centres = (boxes[:, :2] + boxes[:, 2:]).astype(np.float64) / 2
        # s = d x (P - A) / |d|: signed distance, > 0 on the right of start -> end (y down)
        signed = (d[0] * (centres[:, 1] - start[1]) - d[1] * (centres[:, 0] - start[0])) / length
        side = np.where(signed > self.margin, 1, np.where(signed < -self.margin, -1, 0))
        crossed_in, crossed_out = np.zeros(len(boxes), bool), np.zeros(len(boxes), bool)
        for i in np.flatnonzero((ids >= 0) & (side != 0)):
            tid, now = int(ids[i]), int(side[i])
            before = self._state.get(tid)
            self._state[tid] = (now, centres[i])
            if before is None or before[0] == now:
                continue
            p, q = before[1], centres[i]
            s_p = float(d[0] * (p[1] - start[1]) - d[1] * (p[0] - start[0])) / length
            # where the motion p -> q meets the infinite line, and where that is along the segment
            crossing = p + s_p / (s_p - float(signed[i])) * (q - p)
            u = float(np.dot(crossing - start, d)) / (length * length)
            if 0 <= u <= 1:
                counts, flags = (self.in_counts, crossed_in) if now > 0 else (self.out_counts, crossed_out)
                counts[names[i]] = counts.get(names[i], 0) + 1
                flags[i] = True
        return crossed_in, crossed_out

    def to_dict(self) -> dict[str, Any]:
        """{"line": [[x1, y1], [x2, y2]], "in": {class: n}, "out": {class: n}, "total_in": n, "total_out": n}."""
        return {
            "line": self._points.to_list(),
            "in": dict(self.in_counts),
            "out": dict(self.out_counts),
            "total_in": self.total_in,
            "total_out": self.total_out,
        }


class PolygonZone:
    """A polygon counting the boxes whose bottom-centre ((x1 + x2) / 2, y2) lies inside it, per frame.

    The bottom-centre is supervision's default anchor (where a person stands). A point on the
    polygon's boundary is inside. Any polygon of 3 or more vertices works, concave or
    self-intersecting (even-odd rule).

    Args:
        polygon: (K, 2) vertices (or flat, or "x1,y1,x2,y2,x3,y3,..."), K >= 3: pixels, or
            fractions of the frame when every value is in [0, 1], resolved at first use.

    >>> zone = PolygonZone([[10, 10], [30, 10], [30, 30], [10, 30]])
    >>> boxes = np.array([[15, 0, 25, 20], [15, 0, 25, 30], [15, 0, 25, 31]], np.float32)  # bottoms y 20, 30, 31
    >>> zone.contains(boxes, frame_shape=(100, 100)).tolist()
    [True, True, False]
    >>> zone.count(boxes, ["cat", "dog", "dog"], frame_shape=(100, 100))["inside"]
    {'cat': 1, 'dog': 1}
    """

    def __init__(self, polygon: ArrayLike | str) -> None:
        self._points = _Points(polygon, "--zone", 3)

    def resolve(self, frame_shape: Sequence[int]) -> np.ndarray:
        """(K, 2) float32 vertices in pixels (fractions resolved against ``frame_shape`` once)."""
        return self._points.resolve(frame_shape)

    def contains(self, xyxy: ArrayLike, frame_shape: Sequence[int]) -> np.ndarray:
        """(N,) bool: whether each box's bottom-centre is inside the polygon or on its boundary."""
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        points = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1)
        return _inside_polygon(points, self.resolve(frame_shape).astype(np.float64))

    def count(self, xyxy: ArrayLike, class_names: Sequence[str], frame_shape: Sequence[int]) -> dict[str, Any]:
        """{"polygon": [[x, y], ...], "inside": {class: n}, "total": n} for this frame's boxes."""
        names = list(class_names)
        inside = self.contains(xyxy, frame_shape)
        if len(names) != len(inside):
            raise ValueError(
                f"count needs one class name per box; received {len(inside)} boxes and {len(names)} names."
            )
        counts: dict[str, int] = {}
        for name in (n for n, hit in zip(names, inside) if hit):
            counts[name] = counts.get(name, 0) + 1
        return {"polygon": self._points.to_list(), "inside": counts, "total": int(inside.sum())}


def _inside_polygon(points: np.ndarray, polygon: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """(N,) bool: even-odd ray casting, or within ``tolerance`` pixels of an edge; (N, E) broadcasting.

    Each edge is put in a canonical order (its lower-y end first, then lower x) so that the result
    does not depend on the polygon's starting vertex or orientation, not even in rounding.
    """
    a, b = polygon, np.roll(polygon, -1, axis=0)
    swap = (a[:, 1] > b[:, 1]) | ((a[:, 1] == b[:, 1]) & (a[:, 0] > b[:, 0]))
    a, b = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)  # a_y <= b_y
    px, py = points[:, :1], points[:, 1:]  # (N, 1) against (E,) edges
    ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    # the ray from P to +x crosses edge a-b when a_y <= P_y < b_y and P_x < the edge's x at P_y:
    # x = a_x + (P_y - a_y) (b_x - a_x) / (b_y - a_y)
    spans = (ay <= py) & (py < by)
    rise = np.where(by > ay, by - ay, 1.0)
    crosses = spans & (px < ax + (py - ay) * (bx - ax) / rise)
    inside = np.count_nonzero(crosses, axis=1) % 2 == 1
    # on an edge: distance from P to the segment, t = clip((P - a) . (b - a) / |b - a|^2, 0, 1)
    ex, ey = bx - ax, by - ay
    length2 = ex * ex + ey * ey
    t = np.clip(((px - ax) * ex + (py - ay) * ey) / np.where(length2 > 0, length2, 1.0), 0, 1)
    distance2 = (px - ax - t * ex) ** 2 + (py - ay - t * ey) ** 2
    on_edge = np.any(distance2 <= tolerance * tolerance, axis=1)
    return inside | on_edge
