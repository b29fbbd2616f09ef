"""Data helpers shared by the apps' loaders (NumPy, PyYAML and the standard library only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# The 80 COCO object classes in their usual order (class ids 0-79 of YOLO-format COCO sets and of COCO-80
# detectors such as YOLOX and NanoDet); facts, not code.
COCO_NAMES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)


def split_by_image(data: Any, fraction: float, seed: int | None = 0) -> tuple[Any, Any]:
    """Split any data set with ``len()`` and ``subset(indices)`` by image into ``(train, held_out)``;
    ``held_out`` has round(fraction * N) images (at least 1, at most N - 1).

    Deterministic for ``seed`` (a permutation from ``numpy.random.default_rng(seed)``); both parts
    keep the original order. Detection and segmentation use it, so ``train --val-fraction F --seed S``
    and ``eval --holdout F --seed S`` always name the same images.

    >>> class Items(list):
    ...     def subset(self, indices):
    ...         return Items(self[i] for i in indices)
    >>> train, held = split_by_image(Items("abcdefghij"), 0.2, seed=0)
    >>> len(train), len(held), sorted(set(train) & set(held))
    (8, 2, [])
    """
    if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), received {fraction!r}; e.g. 0.2 holds out a fifth.")
    if len(data) < 2:
        raise ValueError(f"cannot split {len(data)} image(s); a split needs at least 2.")
    count = min(max(1, round(len(data) * fraction)), len(data) - 1)
    order = np.random.default_rng(seed).permutation(len(data))
    held = np.zeros(len(data), bool)
    held[order[:count]] = True
    return data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))


def read_yaml_names(path: str | Path) -> tuple[list[str] | None, dict[str, str]]:
    """Class names from a YOLO ``data.yaml`` (read with PyYAML's ``safe_load``): ``(names or None, keys)``.

    ``names`` may be a list (``names: [a, b]`` or a block of ``- a`` lines) or a mapping of the
    indices 0..N-1 to names (``names: {0: a, 1: b}`` or ``0: a`` lines), in any YAML form
    (quoting, anchors and aliases, multi-line flow lists); names come back as strings. None when
    there is no ``names`` entry or it is neither of those. ``keys`` holds the other top-level
    entries whose values are single values, as strings (``train: images/train2017`` -> the split's
    path; ``nc: 2`` -> ``"2"``; an empty value -> ``""``); lists and mappings there are left out.

    Raises:
        ValueError: the file cannot be read, is not valid YAML, or is not a ``key: value`` mapping;
            the message names it.
    """
    import yaml

    try:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError as error:
        raise ValueError(f"{path}: cannot read the file ({error.strerror or error}).") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ValueError(
            f"{path}: not valid YAML ({problem}{where}); expected a YOLO data.yaml such as 'names: [cat, dog]'."
        ) from None
    if content is None:
        return None, {}
    if not isinstance(content, dict):
        raise ValueError(
            f"{path}: holds a YAML {type(content).__name__}, not 'key: value' lines; expected a YOLO data.yaml "
            "such as 'names: [cat, dog]'."
        )
    keys = {
        str(key): "" if value is None else str(value)
        for key, value in content.items()
        if key != "names" and not isinstance(value, (list, dict))
    }
    return _names(content.get("names")), keys


def _names(value):
    if isinstance(value, list):
        return [_text(v) for v in value]
    if not isinstance(value, dict) or not value:
        return None
    try:
        order = [int(k) for k in value]
    except (TypeError, ValueError):
        return None
    if sorted(order) != list(range(len(order))):
        return None
    names = [""] * len(order)
    for index, name in zip(order, value.values()):
        names[index] = _text(name)
    return names


def _text(value):
    return "" if value is None else str(value)
