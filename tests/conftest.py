"""Shared fixtures: the real data folder (skips without it) and a tiny trained classifier."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def data_dir():
    """``$CVAPPS_DATA`` as a Path, or None."""
    value = os.environ.get("CVAPPS_DATA")
    return Path(value) if value and Path(value).is_dir() else None


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
        data, root / "tiny.keras", size="xs", image_size=32, epochs=4, batch_size=8,
        learning_rate=0.05, val_fraction=0.25, checkpoint_dir=root / "run", verbose=0,
    )
    return result.model_path
