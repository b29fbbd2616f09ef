"""Detection data: boxed images from YOLO, Pascal VOC, COCO and Penn-Fudan folders, augmented in NumPy.

One loader, :func:`cvapps.detection.formats.load_detection`, recognises the layout and returns a :class:`DetectionData`:
image paths with their boxes (**xyxy float32 (N, 4) in the pixels of the original image**, as
:func:`cvapps.core.sources.read_image` returns it) and class ids (int64 (N,)), the class names, and
``problems``, one line ``path:line: reason`` for each label that was skipped or clipped and each
image left out. Images are not decoded at load time: :func:`cvapps.core.sources.check_image`
reads each header for the size and checks it cheaply (pixel cap, a JPEG or PNG cut short), so an
unreadable, truncated or oversized image is named in ``problems`` (followed by a count line) and
left out of the set instead of failing in a batch or an evaluation.

    >>> from cvapps.detection.data import DetectionBatches, split_detection
    >>> from cvapps.detection.formats import load_detection
    >>> coco = load_detection("../shared/data/coco128")                    # doctest: +SKIP
    >>> persons = coco.select_classes(["person"])                           # doctest: +SKIP
    >>> people = persons.merge(load_detection("../shared/data/pennfudan"))   # doctest: +SKIP
    >>> train, val = split_detection(people, 0.2, seed=0)                   # doctest: +SKIP
    >>> batches = DetectionBatches(train, image_size=320, batch_size=8, augment=True)  # doctest: +SKIP
    >>> images, targets = batches[0]        # (8, 320, 320, 3) float32 in [0, 255], (8, M, 5)  # doctest: +SKIP

Augmentation that moves boxes with the pixels (flip, scale and translate, HSV, mosaic,
letterbox) lives in :mod:`cvapps.detection.augment`; :class:`DetectionBatches` applies it.

Layouts (``load_detection`` picks by what the folder holds):

- YOLO: ``images/`` + ``labels/`` (label path = image path with ``images`` -> ``labels`` and
  ``.txt``), optionally with split sub-folders (``images/train2017``), class names from a
  ``data.yaml`` ``names:`` entry (list or ``index: name`` mapping, any YAML form; read with PyYAML's
  ``safe_load``).
  An image without a label file has no objects (YOLO's convention); a label file without an image
  is reported.
- Pascal VOC: ``images/`` + ``annotations/*.xml``, or ``JPEGImages/`` + ``Annotations/`` (with
  ``ImageSets/Main/<split>.txt`` for ``split``). VOC pixels are 1-based and inclusive, so a box
  ``xmin ymin xmax ymax`` becomes ``(xmin - 1, ymin - 1, xmax, ymax)`` in 0-based pixel edges.
  ``difficult`` objects are kept and flagged in :attr:`DetectionSample.difficult`. Class names
  are the sorted set of ``<name>`` values. XML is parsed with ``defusedxml``: a file declaring
  entities (billion laughs, external entities) is refused by name in ``problems`` and skipped.
- COCO JSON: a ``.json`` file, or a folder holding one (``annotations.json``, ``*.json`` or
  ``annotations/*.json``); image files are looked up beside the json, in ``images/`` there, or in
  ``images/`` one folder up. ``bbox`` ``[x, y, w, h]`` is in 0-based pixel edges and becomes
  ``(x, y, x + w, y + h)``. ``iscrowd = 1`` regions are skipped (they are groups, not objects) and
  counted in one problem line per file. Class names follow the ``categories`` order by id.
- Penn-Fudan (PASCAL Annotation v1 text): ``images/`` + ``annotations/*.txt``, paired by stem
  (the text may name a ``.png`` where the image is now a ``.jpg``); ``(Xmin, Ymin) - (Xmax, Ymax)``
  are 1-based like VOC and converted the same way; one class, ``"person"``.

Image sizes come from the file header (Pillow, no decoding) with the EXIF orientation tag
applied (orientations 5-8 swap width and height), matching what ``read_image`` returns. A box
reaching outside the image is clipped and reported; one with nothing left is skipped and reported.

Augmentation (:func:`hflip`, :func:`random_affine`, :func:`hsv_jitter`, :func:`mosaic`,
:func:`letterbox`) works on (H, W, 3) uint8 images with NumPy and OpenCV; after any geometric
transform boxes are clipped to the canvas and remnants dropped by :func:`filter_boxes`.
:class:`DetectionBatches` is the ``keras.utils.PyDataset`` that feeds a detector. No TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from cvapps.core.data import split_by_image
from cvapps.core.sources import read_image
from cvapps.detection.augment import (
    filter_boxes,
    hflip,
    hsv_jitter,
    letterbox,
    letterbox_boxes,
    mosaic,
    random_affine,
)

_EMPTY_BOXES = np.zeros((0, 4), np.float32)
_EMPTY_IDS = np.zeros((0,), np.int64)


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionSample:
    """One image and its objects.

    Attributes:
        path: the image file.
        width, height: image size in pixels, EXIF orientation applied (as ``read_image`` returns it).
        boxes: (N, 4) float32 xyxy in that image's pixels (0-based edges), inside the image.
        class_ids: (N,) int64 indices into the data set's ``class_names``.
        difficult: (N,) bool, True for VOC ``difficult`` objects (False elsewhere).
    """

    path: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: _EMPTY_BOXES.copy())
    class_ids: np.ndarray = field(default_factory=lambda: _EMPTY_IDS.copy())
    difficult: np.ndarray = None

    def __post_init__(self):
        boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        class_ids = np.asarray(self.class_ids, np.int64).reshape(-1)
        if len(boxes) != len(class_ids):
            raise ValueError(f"{self.path}: {len(boxes)} boxes but {len(class_ids)} class ids; they must match.")
        difficult = (
            np.zeros(len(boxes), bool) if self.difficult is None else np.asarray(self.difficult, bool).reshape(-1)
        )
        if len(difficult) != len(boxes):
            raise ValueError(f"{self.path}: {len(boxes)} boxes but {len(difficult)} difficult flags; they must match.")
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "class_ids", class_ids)
        object.__setattr__(self, "difficult", difficult)

    def keep(self, mask: ArrayLike, class_ids: ArrayLike | None = None) -> DetectionSample:
        """A copy with only the objects where ``mask`` is True (class ids optionally replaced)."""
        mask = np.asarray(mask, bool)
        ids = self.class_ids[mask] if class_ids is None else class_ids
        return replace(self, boxes=self.boxes[mask], class_ids=ids, difficult=self.difficult[mask])


@dataclass
class DetectionData:
    """A detection data set: images (by path), their boxes and class ids, and class names.

    Attributes:
        samples: one :class:`DetectionSample` per image (images without objects included).
        class_names: tuple of names; ``class_ids`` index into it.
        problems: one-line messages ``path:line: reason`` (or ``path: reason``) for every label
            or image that was skipped or clipped while loading.
    """

    samples: list
    class_names: tuple
    problems: list = field(default_factory=list)

    def __post_init__(self):
        self.class_names = tuple(self.class_names)
        for sample in self.samples:
            if len(sample.class_ids) and (
                sample.class_ids.min() < 0 or sample.class_ids.max() >= len(self.class_names)
            ):
                raise ValueError(
                    f"{sample.path}: class ids {sample.class_ids.tolist()} fall outside the "
                    f"{len(self.class_names)} class names; expected 0..{len(self.class_names) - 1}."
                )

    def __len__(self):
        return len(self.samples)

    @property
    def paths(self) -> list:
        """Image paths, one per sample."""
        return [s.path for s in self.samples]

    @property
    def boxes(self) -> list:
        """Per-image (N, 4) float32 xyxy pixel boxes."""
        return [s.boxes for s in self.samples]

    @property
    def class_ids(self) -> list:
        """Per-image (N,) int64 class ids."""
        return [s.class_ids for s in self.samples]

    @property
    def num_boxes(self) -> int:
        return sum(len(s.boxes) for s in self.samples)

    def class_counts(self) -> dict:
        """``{class name: number of boxes}`` over all images."""
        counts = np.bincount(np.concatenate([_EMPTY_IDS, *self.class_ids]), minlength=len(self.class_names))
        return dict(zip(self.class_names, counts.tolist()))

    def subset(self, indices: ArrayLike) -> DetectionData:
        """A DetectionData with the samples at ``indices`` (same class names and problems)."""
        return DetectionData(
            [self.samples[i] for i in np.asarray(indices, int).tolist()], self.class_names, list(self.problems)
        )

    def select_classes(self, names: Iterable[str] | dict[str, str], drop_empty: bool = False) -> DetectionData:
        """Keep only the boxes of classes ``names``, re-indexed 0..len(names)-1 in that order.

        Args:
            names: class names to keep (a list), or a dict ``{old name: new name}`` to keep and
                rename (several old names may map to one new name).
            drop_empty: also drop images left without boxes (default: keep them as negatives).

        Raises:
            ValueError: a name is not one of ``class_names``.
        """
        mapping = dict(names) if isinstance(names, dict) else {n: n for n in names}
        unknown = [n for n in mapping if n not in self.class_names]
        if unknown or not mapping:
            raise ValueError(
                f"unknown class name(s) {unknown or '(none given)'}; expected some of {list(self.class_names)[:20]}"
                f"{' ...' if len(self.class_names) > 20 else ''}."
            )
        new_names = tuple(dict.fromkeys(mapping.values()))
        lookup = np.full(len(self.class_names), -1, np.int64)
        for old, new in mapping.items():
            lookup[self.class_names.index(old)] = new_names.index(new)
        samples = []
        for sample in self.samples:
            ids = lookup[sample.class_ids]
            kept = sample.keep(ids >= 0, ids[ids >= 0])
            if len(kept.boxes) or not drop_empty:
                samples.append(kept)
        return DetectionData(samples, new_names, list(self.problems))

    def merge(self, other: DetectionData) -> DetectionData:
        """This data set followed by ``other``; both must have the same ``class_names``.

        Raises:
            ValueError: the class names differ (make them agree with :meth:`select_classes`).
        """
        if tuple(other.class_names) != self.class_names:
            raise ValueError(
                f"cannot merge data sets with different class names {list(self.class_names)[:10]} and "
                f"{list(other.class_names)[:10]}; make them agree first, e.g. data.select_classes({{'pedestrian': 'person'}})."
            )
        return DetectionData(self.samples + other.samples, self.class_names, self.problems + other.problems)


def split_detection(data: DetectionData, fraction: float, seed: int | None = 0) -> tuple[DetectionData, DetectionData]:
    """Split by image into ``(train, held_out)``; ``held_out`` has round(fraction * N) images (>= 1).

    Deterministic for a given ``seed``; both parts keep the original image order.
    """
    return split_by_image(data, fraction, seed)


# ----------------------------------------------------------------------------------------------
# Batches for model.fit
# ----------------------------------------------------------------------------------------------


def _py_dataset_base():
    from cvapps._keras import import_keras

    return import_keras().utils.PyDataset


class DetectionBatches(_py_dataset_base()):
    """Batches of ``(images, targets)`` for a detector's ``model.fit``.

    ``images``: (B, S, S, 3) float32 RGB in [0, 255], letterboxed (or mosaicked) to ``image_size``.
    ``targets``: (B, max_boxes, 5) float32 rows ``[class_id, x1, y1, x2, y2]`` in those S x S
    pixels; rows past an image's boxes are padding with class_id = -1 (and zeros).

    Args:
        data: a :class:`DetectionData`.
        image_size: S.
        batch_size: images per batch; the last partial batch is kept.
        augment: mosaic (with probability ``mosaic``), else letterbox + :func:`random_affine`
            (``scale``, ``translate``); then horizontal flip (probability ``flip``) and
            :func:`hsv_jitter` (if ``hsv``). Off: letterbox only.
        shuffle: new order every epoch; default: the value of ``augment``.
        max_boxes: target rows per image; default: the most boxes in one image (x4 when mosaic
            can happen). Extra boxes of a crowded image are cut and counted in ``dropped_boxes``.
        keep_difficult: False leaves VOC ``difficult`` objects out of the targets.
        workers: threads preparing batches ahead of the model.

    Images are decoded with ``read_image(path, reduce_to=image_size)``: a JPEG much larger than
    ``image_size`` is decoded at 1/2, 1/4 or 1/8 scale (boxes follow).

    Attributes:
        errors: one-line messages for images that could not be read (the loaders'
            up-front check leaves out most such files; this catches files changed since);
            each such image is replaced by the next readable one and not tried again. Each
            message is also appended to ``data.problems``, which the trainer returns.
        dropped_boxes: boxes cut because an image had more than ``max_boxes``.
    """

    def __init__(
        self,
        data: DetectionData,
        image_size: int = 640,
        batch_size: int = 16,
        augment: bool = False,
        mosaic: float = 0.5,
        flip: float = 0.5,
        scale: tuple[float, float] = (0.5, 1.5),
        translate: float = 0.1,
        hsv: bool = True,
        shuffle: bool | None = None,
        max_boxes: int | None = None,
        keep_difficult: bool = True,
        seed: int = 0,
        workers: int = 2,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        if len(data) == 0:
            raise ValueError("the detection data set holds no images; check the path and the loader's problems list.")
        if not isinstance(image_size, (int, np.integer)) or image_size < 8:
            raise ValueError(f"image_size must be an integer >= 8 pixels, received {image_size!r}.")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}.")
        self.data, self.image_size, self.batch_size = data, int(image_size), int(batch_size)
        self.augment, self.mosaic, self.flip, self.scale, self.translate, self.hsv = (
            augment,
            mosaic,
            flip,
            scale,
            translate,
            hsv,
        )
        self.shuffle = augment if shuffle is None else shuffle
        self.keep_difficult = keep_difficult
        most = max(len(s.boxes) for s in data.samples)
        self.max_boxes = (
            int(max_boxes) if max_boxes is not None else max(1, most * (4 if augment and mosaic > 0 else 1))
        )
        self.seed, self.epoch = seed, 0
        self.order = np.arange(len(data))
        self.errors, self.dropped_boxes, self._bad = [], 0, set()
        if self.shuffle:
            self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.data) / self.batch_size))

    def _load(self, index):
        """(image, boxes, class_ids) of sample ``index``, or of the next readable one."""
        for step in range(len(self.data)):
            k = (index + step) % len(self.data)
            if k in self._bad:
                continue
            sample = self.data.samples[k]
            try:
                image = read_image(sample.path, reduce_to=self.image_size)
            except ValueError as error:
                self._bad.add(k)
                message = f"{error} Replaced by another image."
                self.errors.append(message)
                self.data.problems.append(message)  # so the trainer's result lists it too
                continue
            boxes, ids = sample.boxes, sample.class_ids
            if image.shape[1] != sample.width or image.shape[0] != sample.height:  # resized since loading
                boxes = boxes * np.array(
                    [image.shape[1] / sample.width, image.shape[0] / sample.height] * 2, np.float32
                )
            if not self.keep_difficult:
                boxes, ids = boxes[~sample.difficult], ids[~sample.difficult]
            return image, boxes, ids
        raise ValueError(
            f"none of the {len(self.data)} images could be read; first error: {self.errors[0] if self.errors else '?'}"
        )

    def _example(self, index, rng):
        size = self.image_size
        if self.augment and rng.random() < self.mosaic:
            picks = [index] + rng.integers(0, len(self.data), 3).tolist()
            images, boxes, ids = zip(*(self._load(k) for k in picks))
            image, boxes, ids = mosaic(list(images), list(boxes), list(ids), size, rng)
        else:
            image, boxes, ids = self._load(index)
            image, scale, pad = letterbox(image, size)
            boxes, ids, _ = filter_boxes(letterbox_boxes(boxes, scale, pad), ids, size, size, min_size=1.0)
            if self.augment:
                image, boxes, ids = random_affine(image, boxes, ids, rng, self.scale, self.translate)
        if self.augment:
            if rng.random() < self.flip:
                image, boxes = hflip(image, boxes)
            if self.hsv:
                image = hsv_jitter(image, rng)
        return image, boxes, ids

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        images = np.empty((len(rows), self.image_size, self.image_size, 3), np.float32)
        targets = np.zeros((len(rows), self.max_boxes, 5), np.float32)
        targets[:, :, 0] = -1
        for b, row in enumerate(rows):
            image, boxes, ids = self._example(int(row), rng)
            images[b] = image
            count = min(len(boxes), self.max_boxes)
            self.dropped_boxes += len(boxes) - count
            targets[b, :count, 0] = ids[:count]
            targets[b, :count, 1:] = boxes[:count]
        return images, targets

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.epoch += 1
            self.order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.data))

    def set_epoch(self, epoch: int) -> None:
        """Make the next batches those of (0-based) ``epoch`` of an uninterrupted run: a resumed or
        continued run replays the shuffle and augmentation of the epoch it starts at."""
        if self.shuffle:
            self.epoch = epoch  # on_epoch_end moves to the next epoch's draw, as after ``epoch`` epochs
            self.on_epoch_end()
