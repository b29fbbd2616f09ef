"""Data sets for training and evaluation, in the formats users already have.

Classification:
- a folder per class, ``root/<class>/*.jpg`` (or ``root/train/<class>/...`` with optional
  ``root/val/`` or ``root/test/`` beside it);
- an ``.npz`` in the ``keras.datasets`` layout: ``x_train, y_train, x_test, y_test``.

    >>> data = load_classification("../shared/data/cifar10", image_size=64, split="train")  # doctest: +SKIP
    >>> data.images.shape, data.labels.shape, data.class_names[:2]                   # doctest: +SKIP
    ((50000, 64, 64, 3), (50000,), ('airplane', 'automobile'))

Batches come from :class:`ClassificationBatches`, a ``keras.utils.PyDataset`` that augments in
NumPy, so training runs on any Keras backend (JAX on a GPU machine) without TensorFlow.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvapps.core.sources import IMAGE_SUFFIXES, read_image, resize_square

SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


@dataclass
class ClassificationData:
    """Images and integer labels.

    Attributes:
        images: (N, S, S, 3) uint8 RGB.
        labels: (N,) int32, indices into ``class_names``.
        class_names: one name per class.
        skipped: one-line messages for files that could not be read and were left out, one per file.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple
    skipped: list = field(default_factory=list)

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels; they must match.")

    def __len__(self):
        return len(self.labels)

    def subset(self, index: np.ndarray | Sequence[int] | slice) -> ClassificationData:
        return ClassificationData(self.images[index], self.labels[index], self.class_names, self.skipped)


def load_classification(
    path: str | Path,
    image_size: int,
    split: str = "train",
    workers: int = 8,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> ClassificationData | None:
    """Load a folder-per-class data set or a keras.datasets-style ``.npz``.

    Args:
        path: a folder (``<class>/*`` or ``train/<class>/*``) or an ``.npz`` file.
        image_size: every image is resized to ``image_size`` x ``image_size`` (a JPEG much larger
            than that is decoded at 1/2, 1/4 or 1/8 scale first, see ``read_image(reduce_to=...)``).
        split: ``"train"``, ``"val"`` or ``"test"``; for a folder holding split sub-folders it
            picks one, for an ``.npz`` it picks ``x_train``/``x_test`` (``"val"`` is not in npz).
        progress: optional ``progress(iterable, total) -> iterable`` wrapped around the file
            reads (the CLI passes a progress bar; the library itself never prints).

    Raises:
        ValueError: missing path, fewer than two classes, an empty class, an npz without the
            expected arrays.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder; expected a folder per class or an .npz file.")
    if path.is_file():
        if path.suffix != ".npz":
            raise ValueError(
                f"{path}: expected a folder of class sub-folders or an .npz file, got a {path.suffix or 'plain'} file."
            )
        return load_npz(path, image_size, split)
    return load_class_folders(split_folder(path, split), image_size, workers, progress)


def split_folder(root: str | Path, split: str) -> Path | None:
    """``root/<split>`` when ``root`` holds split folders, else ``root`` itself (for "train")."""
    root = Path(root)
    for name in SPLIT_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    has_splits = any((root / n).is_dir() for names in SPLIT_FOLDERS.values() for n in names)
    if split == "train" and not has_splits:
        return root
    if split != "train" and not has_splits:
        return None if split == "val" else root
    return None


def load_class_folders(
    root: str | Path | None,
    image_size: int,
    workers: int = 8,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> ClassificationData | None:
    if root is None:
        return None
    classes = sorted(d for d in Path(root).iterdir() if d.is_dir())
    if len(classes) < 2:
        raise ValueError(
            f"{root}: found {len(classes)} class folder(s); a classifier needs at least 2 "
            "(layout: root/<class_name>/*.jpg)."
        )
    files, labels = [], []
    for label, folder in enumerate(classes):
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ValueError(f"{folder}: class folder holds no images; add some or remove the folder.")
        files += images
        labels += [label] * len(images)

    def load(path):
        try:
            return resize_square(read_image(path, reduce_to=image_size), image_size), None
        except ValueError as error:
            return None, str(error)

    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(load, files, chunksize=64)
        results = list(progress(results, len(files)) if progress else results)
    keep = [i for i, (image, _) in enumerate(results) if image is not None]
    skipped = [message for _, message in results if message]
    images = np.stack([results[i][0] for i in keep]) if keep else np.zeros((0, image_size, image_size, 3), np.uint8)
    return ClassificationData(images, np.asarray(labels, np.int32)[keep], tuple(d.name for d in classes), skipped)


def load_npz(path: str | Path, image_size: int, split: str = "train") -> ClassificationData | None:
    if split == "val":
        return None
    key = "train" if split == "train" else "test"
    try:
        return _read_npz(path, image_size, key)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(
            f"{path}: not a readable .npz ({type(error).__name__}: {str(error)[:120]}); the file is "
            "truncated or not a NumPy archive."
        ) from None


def _read_npz(path, image_size, key) -> ClassificationData:
    with np.load(path) as arrays:
        missing = {f"x_{key}", f"y_{key}"} - set(arrays.files)
        if missing:
            raise ValueError(
                f"{path}: missing arrays {sorted(missing)}; expected the keras.datasets layout "
                f"(x_train, y_train, x_test, y_test), found {sorted(arrays.files)}."
            )
        x, y = arrays[f"x_{key}"], arrays[f"y_{key}"].reshape(-1).astype(np.int32)
        names = tuple(str(n) for n in arrays["class_names"]) if "class_names" in arrays.files else None
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{path}: x_{key} has shape {x.shape}; expected (N, H, W) or (N, H, W, 1|3).")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    x = np.stack([resize_square(image.astype(np.uint8), image_size) for image in x])
    names = names or tuple(str(i) for i in range(int(y.max()) + 1))
    return ClassificationData(x, y, names)


def split_off(
    data: ClassificationData, fraction: float, seed: int | None = 0
) -> tuple[ClassificationData, ClassificationData]:
    """Carve a stratified validation split off ``data``: returns (train, val)."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), received {fraction}.")
    rng = np.random.default_rng(seed)
    val = []
    for label in range(len(data.class_names)):
        members = np.flatnonzero(data.labels == label)
        rng.shuffle(members)
        val.extend(members[: max(1, int(round(len(members) * fraction)))])
    mask = np.zeros(len(data), bool)
    mask[val] = True
    return data.subset(np.flatnonzero(~mask)), data.subset(np.flatnonzero(mask))


def random_flip_translate(
    images: np.ndarray, rng: np.random.Generator, flip: bool = True, translate: float = 0.125
) -> np.ndarray:
    """Batched augmentation: random horizontal flip and translation with reflect padding.

    images: (N, H, W, C). Translation shifts by up to ``translate * H`` pixels each way:
    reflect-pad by p, then crop an H x W window at a random offset in [0, 2p].
    """
    n, h, w, _ = images.shape
    if flip:
        flipped = rng.random(n) < 0.5
        images = np.where(flipped[:, None, None, None], images[:, :, ::-1], images)
    pad = int(round(translate * h))
    if pad:
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
        dy, dx = rng.integers(0, 2 * pad + 1, (2, n))
        rows = dy[:, None] + np.arange(h)  # (N, H)
        cols = dx[:, None] + np.arange(w)  # (N, W)
        images = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return images


def _py_dataset_base():
    from cvapps._keras import import_keras

    return import_keras().utils.PyDataset


class ClassificationBatches(_py_dataset_base()):
    """Batches of (float32 pixels in [0, 255], one-hot labels) for ``model.fit``.

    Args:
        data: a :class:`ClassificationData`.
        batch_size: images per batch; the last partial batch is kept.
        augment: shuffle each epoch and apply :func:`random_flip_translate`.
        flip, translate: augmentation settings (no flip for digits or text).
        workers: threads preparing batches ahead of the model.
    """

    def __init__(
        self,
        data: ClassificationData,
        batch_size: int = 128,
        augment: bool = False,
        flip: bool = True,
        translate: float = 0.125,
        seed: int = 0,
        workers: int = 2,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.data = data
        self.batch_size = batch_size
        self.augment = augment
        self.flip = flip
        self.translate = translate
        self.num_classes = len(data.class_names)
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(data))
        self.seed = seed
        self.epoch = 0
        if augment:
            self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.data) / self.batch_size))

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.data.images[rows]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            images = random_flip_translate(images, rng, self.flip, self.translate)
        onehot = np.eye(self.num_classes, dtype=np.float32)[self.data.labels[rows]]
        return images.astype(np.float32), onehot

    def on_epoch_end(self) -> None:
        if self.augment:
            self.epoch += 1
            self.order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.data))

    def set_epoch(self, epoch: int) -> None:
        """Make the next batches those of (0-based) ``epoch`` of an uninterrupted run: a resumed or
        continued run replays the shuffle and augmentation of the epoch it starts at."""
        if self.augment:
            self.epoch = epoch  # on_epoch_end moves to the next epoch's draw, as after ``epoch`` epochs
            self.on_epoch_end()
