"""Segmentation data: image/mask pairs from several layouts, paired augmentation, batches for ``fit``.

A :class:`SegmentationData` holds the image paths, their masks already decoded to class indices
((H, W) uint8, 0 = background, one value per class name) and the problems met while loading
(files reported by name; a bad pair is left out, the rest loaded, and a count line closes the
list). Each image is checked up front by :func:`cvapps.core.sources.check_image` (header, pixel
cap, a JPEG or PNG cut short), so an unreadable, truncated or oversized image never reaches a
batch; masks are decoded at load time under the same pixel cap.

Layouts :func:`load_segmentation` reads (``DATA`` may also hold them under ``train/``):

- folder pairs: ``image/`` + ``label/`` or ``images/`` + ``masks/``, paired by file stem
  (``12.png`` with ``12.png``; ``x.jpg`` with ``x.png`` or ``x_mask.png``). Mask PNGs hold class
  indices 0..K-1, or 0/255 for binary masks (255 -> class 1). The ISBI membrane stack is one.
- Penn-Fudan: ``images/*.jpg`` + ``masks/*_mask.png`` (0 background, k = k-th person) -> two
  classes, ``background`` and ``person``.
- COCO panoptic category masks (coco128): ``images/train2017/*.jpg`` + ``masks/train2017/*.png``
  holding the COCO category id per pixel (0 unlabelled; person is category 1) -> ``background``
  plus the chosen thing classes (default ``person``).

    >>> import numpy as np
    >>> mask = np.array([[0, 255], [255, 0]], np.uint8)
    >>> binary_or_index(mask, 2).tolist()
    [[0, 1], [1, 0]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvapps.core.data import split_by_image
from cvapps.core.sources import check_image, list_images, read_image, truncated_scope

# COCO's 80 "thing" names in data.yaml order and their panoptic/instance category ids.
COCO_THING_IDS = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    27,
    28,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
    46,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    67,
    70,
    72,
    73,
    74,
    75,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
)
PAIR_FOLDERS = (("image", "label"), ("images", "masks"), ("images", "labels"), ("image", "mask"))


@dataclass
class SegmentationData:
    """Image paths with their class-index masks.

    Attributes:
        paths: N image paths.
        masks: N (H_i, W_i) uint8 class-index masks, the size of their images.
        class_names: names of classes 0..C-1 (0 is the background).
        problems: one-line messages about files that were left out.
    """

    paths: list
    masks: list
    class_names: tuple
    problems: list = field(default_factory=list)

    def __post_init__(self):
        self.class_names = tuple(self.class_names)
        if len(self.paths) != len(self.masks):
            raise ValueError(f"{len(self.paths)} paths but {len(self.masks)} masks; they must match.")
        if len(self.class_names) < 2:
            raise ValueError(f"a segmentation data set needs at least 2 class names, received {self.class_names}.")

    def __len__(self):
        return len(self.paths)

    def subset(self, indices: Sequence[int] | np.ndarray) -> SegmentationData:
        """The pairs at ``indices`` (same class names and problems)."""
        return SegmentationData(
            [self.paths[i] for i in indices], [self.masks[i] for i in indices], self.class_names, list(self.problems)
        )

    def merge(self, other: SegmentationData) -> SegmentationData:
        """Both data sets in one; class names must agree."""
        if tuple(other.class_names) != self.class_names:
            raise ValueError(
                f"cannot merge data sets with class names {list(self.class_names)} and {list(other.class_names)}; "
                "pass the same --classes to both (e.g. person)."
            )
        return SegmentationData(
            self.paths + other.paths, self.masks + other.masks, self.class_names, self.problems + other.problems
        )

    def pixel_counts(self) -> np.ndarray:
        """(C,) number of pixels of each class over all masks."""
        counts = np.zeros(len(self.class_names), np.int64)
        for mask in self.masks:
            counts += np.bincount(mask.ravel(), minlength=len(self.class_names))[: len(self.class_names)]
        return counts


def split_segmentation(
    data: SegmentationData, fraction: float, seed: int | None = 0
) -> tuple[SegmentationData, SegmentationData]:
    """Split by image into ``(train, held_out)``; ``held_out`` has round(fraction * N) images (>= 1).

    The rule of :func:`cvapps.classification.data.split_by_image`: deterministic for ``seed``.

    >>> data = SegmentationData([f"{i}.png" for i in range(10)], [np.zeros((2, 2), np.uint8)] * 10, ("bg", "fg"))
    >>> train, held = split_segmentation(data, 0.2)
    >>> len(train), len(held), sorted(set(train.paths) & set(held.paths))
    (8, 2, [])
    """
    return split_by_image(data, fraction, seed)


# --- loading ------------------------------------------------------------------------------------


def read_mask(path: str | Path) -> np.ndarray:
    """A mask file as (H, W) uint8 values, without any palette or colour conversion.

    Raises:
        ValueError: missing, unreadable, or not single-channel with values up to 255.
    """
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file.")
    try:
        check_image(path)  # too many pixels, cut short, not an image
    except ValueError as error:
        reason = str(error).removeprefix(f"{path}: ").rstrip(".")
        raise ValueError(f"{path}: unreadable mask ({reason}).") from None
    try:
        with truncated_scope(), Image.open(path) as image:
            if image.mode in ("RGB", "RGBA"):
                array = np.asarray(image)
                if not (np.all(array[..., 0] == array[..., 1]) and np.all(array[..., 1] == array[..., 2])):
                    raise ValueError(f"{path}: a colour mask; expected one channel of class indices (mode L or P).")
                return np.ascontiguousarray(array[..., 0])
            array = np.asarray(image)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file.") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: unreadable mask ({error}).") from None
    if array.ndim != 2:
        raise ValueError(f"{path}: mask has shape {array.shape}; expected (H, W) class indices.")
    if array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise ValueError(f"{path}: mask values {array.min()}..{array.max()} do not fit class indices 0..255.")
        array = array.astype(np.uint8)
    return array


def binary_or_index(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices from a mask file's values: 0/255 binary masks become 0/1 when there are
    2 classes; other values are the class indices themselves."""
    if num_classes == 2:
        values = np.unique(mask)
        if np.isin(values, (0, 255)).all():
            return (mask == 255).astype(np.uint8)
    return mask


def _paired(images_dir, masks_dir, problems):
    masks = {}
    for path in list_images(masks_dir):
        masks[path.stem.removesuffix("_mask")] = path
    pairs = []
    for path in list_images(images_dir):
        mask = masks.pop(path.stem, None)
        if mask is None:
            problems.append(f"{path}: no mask named {path.stem}.png in {masks_dir}; image left out")
        else:
            pairs.append((path, mask))
    for stem, mask in sorted(masks.items()):
        problems.append(f"{mask}: no image named {stem}.* in {images_dir}; mask left out")
    return pairs


def _collect(pairs, convert, class_names, problems, progress=None):
    """Read and check each mask; keep pairs whose mask matches its image and holds known classes."""
    paths, masks, unreadable = [], [], 0
    items = progress(pairs, len(pairs)) if progress else pairs
    for image_path, mask_path in items:
        try:
            width, height = check_image(image_path)  # header, pixel cap, cut short: see check_image
        except ValueError as error:
            problems.append(f"{error} Pair left out.")
            unreadable += 1
            continue
        except Exception as error:  # noqa: BLE001  Pillow raises many types for a broken file
            problems.append(f"{image_path}: unreadable image ({type(error).__name__}: {error}); pair left out")
            unreadable += 1
            continue
        try:
            mask = convert(read_mask(mask_path))
        except ValueError as error:
            problems.append(f"{error} Pair left out.")
            unreadable += 1
            continue
        if mask.shape != (height, width):
            problems.append(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {Path(image_path).name} is "
                f"{width}x{height}; pair left out"
            )
            continue
        top = int(mask.max()) if mask.size else 0
        if top >= len(class_names):
            bad = sorted(int(v) for v in np.unique(mask) if v >= len(class_names))
            problems.append(
                f"{mask_path}: unknown class value(s) {bad[:8]}; expected 0..{len(class_names) - 1} "
                f"({', '.join(class_names)}); pair left out"
            )
            continue
        paths.append(Path(image_path))
        masks.append(np.ascontiguousarray(mask, np.uint8))
    if unreadable:
        folder = Path(pairs[0][0]).parent
        problems.append(
            f"{folder}: {unreadable} of {len(pairs)} image/mask pairs left out because a file could not be read "
            "or used (each named above)"
        )
    return paths, masks


def _find_pair_folders(root):
    for base in (root, root / "train"):
        for images, masks in PAIR_FOLDERS:
            if (base / images).is_dir() and (base / masks).is_dir():
                return base / images, base / masks
    return None


def load_segmentation(
    path: str | Path,
    classes: Sequence[str] | None = None,
    class_names: Iterable[str] | None = None,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> SegmentationData:
    """Load a segmentation data set in any layout this module reads (see the module docstring).

    Args:
        path: the data folder.
        classes: for COCO category masks, the thing names to keep (default ``["person"]``);
            Penn-Fudan takes only ``person``.
        class_names: for folder pairs, the names of classes 0..K-1; default ``background``,
            ``foreground`` for binary masks, else ``"0"``, ``"1"``, ... up to the largest value
            found.

    Raises:
        ValueError: the folder does not exist or holds no layout this loader knows.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder; pass a data folder (image/ + label/, images/ + masks/, ...).")
    problems = []
    if (root / "masks").is_dir() and any((root / "masks").glob("*_mask.png")) and (root / "images").is_dir():
        return _load_pennfudan(root, classes, problems, progress)
    if (root / "masks" / "train2017").is_dir():
        return _load_coco_masks(root, classes, problems, progress)
    found = _find_pair_folders(root)
    if found is None:
        raise ValueError(
            f"{root}: no segmentation layout found; expected image/ + label/ or images/ + masks/ (optionally "
            "under train/), Penn-Fudan's images/ + masks/*_mask.png, or COCO's images/train2017 + masks/train2017."
        )
    images_dir, masks_dir = found
    pairs = _paired(images_dir, masks_dir, problems)
    if class_names is None:
        values = set()
        for _, mask_path in pairs:
            try:
                values.update(np.unique(read_mask(mask_path)).tolist())
            except ValueError:
                continue  # reported when collected
        if values <= {0, 255} or values <= {0, 1}:
            class_names = ("background", "foreground")
        else:
            class_names = tuple(str(i) for i in range(max(values) + 1))
    class_names = tuple(class_names)
    paths, masks = _collect(pairs, lambda m: binary_or_index(m, len(class_names)), class_names, problems, progress)
    return SegmentationData(paths, masks, class_names, problems)


def _load_pennfudan(root, classes, problems, progress):
    if classes and list(classes) != ["person"]:
        raise ValueError(f"{root}: Penn-Fudan masks hold persons only; received classes {list(classes)}.")
    pairs = _paired(root / "images", root / "masks", problems)
    paths, masks = _collect(pairs, lambda m: (m > 0).astype(np.uint8), ("background", "person"), problems, progress)
    return SegmentationData(paths, masks, ("background", "person"), problems)


def _coco_names(root):
    from cvapps.core.data import read_yaml_names

    yaml = root / "data.yaml"
    names = read_yaml_names(yaml)[0] if yaml.is_file() else None
    return list(names) if names else None


def _load_coco_masks(root, classes, problems, progress):
    names = _coco_names(root)
    classes = list(classes or ["person"])
    if names is None or len(names) != len(COCO_THING_IDS):
        if classes != ["person"]:
            raise ValueError(f"{root}: no data.yaml with the 80 COCO names; only classes=['person'] can be used.")
        names = ["person"]
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ValueError(f"unknown COCO class name(s) {unknown}; expected some of {names[:12]}...")
    lookup = np.zeros(256, np.uint8)  # category id -> our class index (0 for everything else)
    for index, name in enumerate(classes, start=1):
        lookup[COCO_THING_IDS[names.index(name)]] = index
    images = {p.stem: p for p in list_images(root / "images" / "train2017")}
    pairs = []
    for mask_path in list_images(root / "masks" / "train2017"):
        image = images.get(mask_path.stem)
        if image is None:
            problems.append(
                f"{mask_path}: no image named {mask_path.stem}.* in {root / 'images' / 'train2017'}; mask left out"
            )
        else:
            pairs.append((image, mask_path))
    class_names = ("background", *classes)
    paths, masks = _collect(pairs, lambda m: lookup[m], class_names, problems, progress)
    return SegmentationData(paths, masks, class_names, problems)


def load_segmentation_sets(
    paths: Sequence[str | Path],
    classes: Sequence[str] | None = None,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> SegmentationData:
    """Load one or more data folders and merge them (e.g. Penn-Fudan plus coco128's persons)."""
    if not paths:
        raise ValueError("no data sets given; pass at least one folder.")
    merged = None
    for path in paths:
        data = load_segmentation(path, classes=classes, progress=progress)
        merged = data if merged is None else merged.merge(data)
    return merged


# --- augmentation -------------------------------------------------------------------------------


def border_weights(mask: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """Ronneberger et al.'s weight map: w(x) = 1 + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)),
    d1, d2 the distances to the nearest and second-nearest object (connected component of a
    non-background class). Thin background gaps between touching objects get large weights.
    (The paper's class-balancing term w_c is 1 here.)

    >>> mask = np.zeros((5, 9), np.uint8); mask[:, :4] = 1; mask[:, 5:] = 1
    >>> w = border_weights(mask, w0=10, sigma=5)
    >>> round(float(w[2, 4]), 3)   # gap pixel: d1 = d2 = 1 -> 1 + 10 exp(-4 / 50)
    10.231
    """
    import cv2

    count, components = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=4)
    weights = np.ones(mask.shape, np.float32)
    if count < 3:  # fewer than two objects: no borders between objects
        return weights
    nearest = np.full(mask.shape, np.inf, np.float32)  # running smallest and second smallest distance
    second = np.full(mask.shape, np.inf, np.float32)
    for k in range(1, count):
        distance = cv2.distanceTransform((components != k).astype(np.uint8), cv2.DIST_L2, 5)
        second = np.minimum(second, np.maximum(nearest, distance))
        nearest = np.minimum(nearest, distance)
    weights += w0 * np.exp(-((nearest + second) ** 2) / (2 * sigma**2))
    return weights


def elastic_field(
    shape: tuple[int, int], rng: np.random.Generator, grid: int = 3, sigma: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random displacements (paper: a 3x3 grid of N(0, sigma) pixel shifts, bicubic
    interpolation) -> (map_x, map_y) float32 for ``cv2.remap``."""
    import cv2

    height, width = shape
    coarse = rng.normal(0.0, sigma, (2, grid, grid)).astype(np.float32)
    dx = cv2.resize(coarse[0], (width, height), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(coarse[1], (width, height), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs + dx, ys + dy


def colour_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.3,
) -> np.ndarray:
    """Random brightness, contrast and saturation of a float RGB image in [0, 255] (image only)."""
    image = image * (1 + rng.uniform(-brightness, brightness))
    mean = image.mean()
    image = (image - mean) * (1 + rng.uniform(-contrast, contrast)) + mean
    grey = image.mean(axis=2, keepdims=True)
    image = (image - grey) * (1 + rng.uniform(-saturation, saturation)) + grey
    return np.clip(image, 0, 255)


def augment_pair(
    image: np.ndarray,
    mask: np.ndarray,
    size: int,
    rng: np.random.Generator,
    *,
    weights: np.ndarray | None = None,
    fit: bool = False,
    scale: tuple[float, float] = (0.75, 1.25),
    rotate: float = 15.0,
    flip: bool = True,
    vflip: bool = False,
    elastic: float = 0.0,
    colour: bool = True,
    border: str = "reflect",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One random ``size`` x ``size`` training crop of ``image`` and ``mask``, same geometry for both.

    One affine matrix does scale, rotation and flips and picks the crop (the image bilinear, the
    mask nearest, the optional weight map bilinear); with probability ``elastic`` an elastic
    deformation follows; colour jitter touches the image only.

    Args:
        image: (H, W, 3) uint8. mask: (H, W) uint8 class indices. weights: (H, W) float32 or None.
        fit: scale the image so its longer side is ``size`` first (whole-scene data such as
            photos of people); False keeps the native resolution (tiles of a large microscopy image).
        scale: range of the random zoom factor. rotate: largest rotation in degrees.
        border: "reflect" (mirror, as the paper does) or "constant" (black image, background mask).

    Returns:
        (image float32 (S, S, 3), mask uint8 (S, S), weights float32 (S, S) or None).
    """
    import cv2

    height, width = mask.shape
    zoom = (size / max(height, width) if fit else 1.0) * rng.uniform(*scale)
    angle = rng.uniform(-rotate, rotate) if rotate else 0.0
    # The crop centre in source pixels: anywhere the tile still overlaps the image mostly.
    half = size / (2 * zoom)
    cx = rng.uniform(min(half, width / 2), max(width - half, width / 2))
    cy = rng.uniform(min(half, height / 2), max(height - half, height / 2))
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, zoom)  # source -> scaled/rotated about the centre
    matrix[:, 2] += (size / 2 - cx, size / 2 - cy)  # ... then moved so the centre lands mid-tile
    if flip and rng.random() < 0.5:
        matrix = np.array([[-1, 0, size], [0, 1, 0]], np.float64) @ np.vstack([matrix, [0, 0, 1]])
    if vflip and rng.random() < 0.5:
        matrix = np.array([[1, 0, 0], [0, -1, size]], np.float64) @ np.vstack([matrix, [0, 0, 1]])
    mode = cv2.BORDER_REFLECT_101 if border == "reflect" else cv2.BORDER_CONSTANT
    out_image = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0)
    out_mask = cv2.warpAffine(mask, matrix, (size, size), flags=cv2.INTER_NEAREST, borderMode=mode, borderValue=0)
    out_weights = None
    if weights is not None:
        out_weights = cv2.warpAffine(
            weights, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=1.0
        )
    if elastic and rng.random() < elastic:
        map_x, map_y = elastic_field((size, size), rng)
        out_image = cv2.remap(out_image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        out_mask = cv2.remap(out_mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
        if out_weights is not None:
            out_weights = cv2.remap(out_weights, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out_image = out_image.astype(np.float32)
    if colour:
        out_image = colour_jitter(out_image, rng)
    return out_image, out_mask, out_weights


def fit_pair(image: np.ndarray, mask: np.ndarray, size: int, fit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic ``size`` x ``size`` view for validation: the image scaled so its longer
    side is ``size`` (``fit``) or its centre crop, zero-padded (mask: background) to the square."""
    import cv2

    if fit:
        zoom = size / max(mask.shape)
        new = (max(1, round(mask.shape[1] * zoom)), max(1, round(mask.shape[0] * zoom)))
        image = cv2.resize(image, new, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, new, interpolation=cv2.INTER_NEAREST)
    top, left = max(0, (mask.shape[0] - size) // 2), max(0, (mask.shape[1] - size) // 2)
    image, mask = image[top : top + size, left : left + size], mask[top : top + size, left : left + size]
    out_image = np.zeros((size, size, 3), np.float32)
    out_mask = np.zeros((size, size), np.uint8)
    out_image[: image.shape[0], : image.shape[1]] = image
    out_mask[: mask.shape[0], : mask.shape[1]] = mask
    return out_image, out_mask


# --- batches for model.fit ----------------------------------------------------------------------


def _py_dataset_base():
    from cvapps._keras import import_keras

    return import_keras().utils.PyDataset


class SegmentationBatches(_py_dataset_base()):
    """Batches of ``(images, targets)`` for a segmenter's ``model.fit``.

    ``images``: (B, S, S, 3) float32 RGB in [0, 255]. ``targets``: (B, S, S, 1) float32 class
    indices, or (B, S, S, 2) [class index, pixel weight] when ``border_weight`` is set.

    Args:
        data: a :class:`SegmentationData`.
        image_size: S, the training tile.
        batch_size: tiles per batch.
        augment: random crops with :func:`augment_pair` (``options`` are passed on); off:
            :func:`fit_pair` views, in order.
        repeats: passes over the data per epoch (small data sets: many random crops per epoch).
        border_weight: w0 of :func:`border_weights` (0: no weights).
        max_side: images (and masks) larger than this are shrunk once when cached.

    Attributes:
        errors: one-line messages for images that could not be read (replaced by another one).
    """

    def __init__(
        self,
        data: SegmentationData,
        image_size: int = 256,
        batch_size: int = 8,
        augment: bool = False,
        repeats: int = 1,
        border_weight: float = 0.0,
        fit: bool = False,
        seed: int = 0,
        workers: int = 2,
        max_side: int | None = None,
        **options: Any,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        if len(data) == 0:
            raise ValueError("the segmentation data set holds no images; check the path and the loader's problems.")
        if not isinstance(image_size, (int, np.integer)) or image_size < 16:
            raise ValueError(f"image_size must be an integer >= 16 pixels, received {image_size!r}.")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}.")
        self.data, self.image_size, self.batch_size = data, int(image_size), int(batch_size)
        self.augment, self.repeats, self.border_weight, self.fit = augment, max(1, int(repeats)), border_weight, fit
        self.options, self.seed, self.epoch = options, seed, 0
        self.max_side = max_side
        self.order = np.arange(len(data) * self.repeats) % len(data)
        self.errors, self._cache, self._bad = [], {}, set()
        if augment:
            self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.order) / self.batch_size)

    def _load(self, index):
        for step in range(len(self.data)):
            k = (index + step) % len(self.data)
            if k in self._bad:
                continue
            if k not in self._cache:
                try:
                    image = read_image(self.data.paths[k])
                except ValueError as error:
                    self._bad.add(k)
                    self.errors.append(f"{error} Replaced by another image.")
                    continue
                mask = self.data.masks[k]
                if image.shape[:2] != mask.shape:
                    self._bad.add(k)
                    self.errors.append(
                        f"{self.data.paths[k]}: image {image.shape[:2]} differs from its mask "
                        f"{mask.shape}; replaced by another image."
                    )
                    continue
                image, mask = self._shrink(image, mask)
                weights = border_weights(mask, self.border_weight) if self.border_weight else None
                self._cache[k] = (image, mask, weights)
            return self._cache[k]
        raise ValueError(f"none of the {len(self.data)} images could be read; first error: {self.errors[:1]}")

    def _shrink(self, image, mask):
        import cv2

        if not self.max_side or max(mask.shape) <= self.max_side:
            return image, mask
        zoom = self.max_side / max(mask.shape)
        new = (max(1, round(mask.shape[1] * zoom)), max(1, round(mask.shape[0] * zoom)))
        return cv2.resize(image, new, interpolation=cv2.INTER_AREA), cv2.resize(
            mask, new, interpolation=cv2.INTER_NEAREST
        )

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        size = self.image_size
        images = np.empty((len(rows), size, size, 3), np.float32)
        targets = np.ones((len(rows), size, size, 2 if self.border_weight else 1), np.float32)
        for b, row in enumerate(rows):
            image, mask, weights = self._load(int(row))
            if self.augment:
                image, mask, weights = augment_pair(
                    image, mask, size, rng, weights=weights, fit=self.fit, **self.options
                )
            else:
                image, mask = fit_pair(image, mask, size, self.fit)
                weights = None
            images[b] = image
            targets[b, :, :, 0] = mask
            if self.border_weight and weights is not None:
                targets[b, :, :, 1] = weights
        return images, targets

    def on_epoch_end(self) -> None:
        if self.augment:
            self.epoch += 1
            self.order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.order)) % len(self.data)

    def set_epoch(self, epoch: int) -> None:
        """Make the next batches those of (0-based) ``epoch`` of an uninterrupted run: a resumed or
        continued run replays the shuffle and augmentation of the epoch it starts at."""
        if self.augment:
            self.epoch = epoch  # on_epoch_end moves to the next epoch's draw, as after ``epoch`` epochs
            self.on_epoch_end()
