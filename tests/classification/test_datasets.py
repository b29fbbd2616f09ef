import numpy as np
import pytest
from conftest import make_shapes_dataset

from cvapps.classification.data import ClassificationData, load_classification, random_flip_translate, split_off


def test_folder_per_class_loads_sorted_classes_and_resizes(tmp_path):
    make_shapes_dataset(tmp_path, per_class=3, size=20)
    data = load_classification(tmp_path, image_size=32)
    assert data.class_names == ("bright", "dark")
    assert data.images.shape == (6, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_split_folders_are_used(tmp_path):
    make_shapes_dataset(tmp_path / "train", per_class=4)
    make_shapes_dataset(tmp_path / "test", per_class=2)
    assert len(load_classification(tmp_path, 32, "train")) == 8
    assert len(load_classification(tmp_path, 32, "test")) == 4
    assert load_classification(tmp_path, 32, "val") is None  # no val folder: caller carves one out


def test_corrupt_file_is_reported_and_skipped(tmp_path):
    make_shapes_dataset(tmp_path, per_class=3)
    (tmp_path / "dark" / "broken.jpg").write_bytes(b"not a jpeg at all")
    data = load_classification(tmp_path, image_size=32)
    assert len(data) == 6
    assert len(data.skipped) == 1 and "broken.jpg" in data.skipped[0]


def test_one_class_and_empty_class_are_errors(tmp_path):
    make_shapes_dataset(tmp_path, per_class=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: class folder holds no images"):
        load_classification(tmp_path, 32)
    single = tmp_path / "single"
    (single / "only").mkdir(parents=True)
    with pytest.raises(ValueError, match="found 1 class folder"):
        load_classification(single, 32)


def test_npz_in_keras_datasets_layout(tmp_path):
    x = np.zeros((5, 28, 28), np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(5) % 2, x_test=x[:2], y_test=np.array([0, 1]))
    train = load_classification(tmp_path / "d.npz", 32, "train")
    assert train.images.shape == (5, 32, 32, 3)  # grayscale -> RGB, 28 -> 32
    assert train.class_names == ("0", "1")
    assert len(load_classification(tmp_path / "d.npz", 32, "test")) == 2
    np.savez(tmp_path / "bad.npz", images=x)
    with pytest.raises(ValueError, match="expected the keras.datasets layout"):
        load_classification(tmp_path / "bad.npz", 32)


def test_missing_path_and_wrong_file_type(tmp_path):
    with pytest.raises(ValueError, match="no such file or folder"):
        load_classification(tmp_path / "nope", 32)
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(ValueError, match="expected a folder of class sub-folders or an .npz"):
        load_classification(tmp_path / "x.csv", 32)


def test_split_off_is_stratified():
    data = ClassificationData(np.zeros((40, 4, 4, 3), np.uint8), np.repeat([0, 1], 20), ("a", "b"))
    train, val = split_off(data, 0.25)
    assert len(val) == 10 and np.bincount(val.labels).tolist() == [5, 5]
    assert len(train) == 30


def test_flip_and_translate():
    image = np.arange(2 * 4 * 3).reshape(1, 2, 4, 3).astype(np.uint8)

    class AlwaysFlip:
        def random(self, n):
            return np.zeros(n)  # < 0.5 -> flip

    flipped = random_flip_translate(image, AlwaysFlip(), flip=True, translate=0)
    np.testing.assert_array_equal(flipped[0], image[0, :, ::-1])
    # With translation the shape is kept and every pixel comes from the (reflect-padded) image.
    rng = np.random.default_rng(0)
    moved = random_flip_translate(np.repeat(image, 5, 0), rng, flip=False, translate=0.5)
    assert moved.shape == (5, 2, 4, 3)
    assert set(np.unique(moved)) <= set(np.unique(image))


def test_a_resumed_run_replays_the_epoch_it_resumes_at():
    from cvapps.classification.data import ClassificationBatches

    rng = np.random.default_rng(0)
    data = ClassificationData(rng.integers(0, 255, (20, 8, 8, 3), dtype=np.uint8), np.arange(20) % 2, ("a", "b"))
    uninterrupted = ClassificationBatches(data, 4, augment=True, seed=3)
    for _ in range(2):  # epochs 0 and 1 go by
        uninterrupted.on_epoch_end()
    resumed = ClassificationBatches(data, 4, augment=True, seed=3)
    resumed.set_epoch(2)  # what fit_resumable does when the run resumes at epoch 2
    for index in range(len(resumed)):
        for ours, theirs in zip(resumed[index], uninterrupted[index]):
            np.testing.assert_array_equal(ours, theirs)
    fresh = ClassificationBatches(data, 4, augment=True, seed=3)
    assert not np.array_equal(fresh[0][0], uninterrupted[0][0])  # epoch 0's draw differs from epoch 2's
