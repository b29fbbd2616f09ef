"""evaluate_detector's recall by object size, its scores per source (``groups``) and a teacher as the model."""

import numpy as np
import pytest
from PIL import Image

from cvapps.detection.data import DetectionData, DetectionSample
from cvapps.detection.evaluate import evaluate_detector, recall_by_size
from cvapps.detection.label import Teacher
from cvapps.detection.predict import Detections


def test_recall_by_size_reads_coco_areas_at_the_operating_point():
    # truths, all class 0: 16x16 = 256 (small, < 32² = 1024), 40x40 = 1600 and 32x32 = 1024 (medium: 1024 <= a < 9216),
    # 100x100 = 10000 (large, >= 96² = 9216)
    truth = np.array([[0, 0, 16, 16], [20, 20, 60, 60], [0, 100, 32, 132], [100, 100, 200, 200]], np.float32)
    found = Detections(
        xyxy=[[0, 0, 16, 16], [0, 0, 16, 16], [100, 100, 200, 200], [20, 20, 60, 60], [0, 100, 32, 132]],
        confidence=[0.9, 0.5, 0.1, 0.8, 0.3],
        class_id=[0, 0, 0, 1, 0],
        class_names=("a", "b"),
    )
    # 0.9 takes the small box (0.5 finds it taken); 0.1 on the large one is below 0.25; 0.8 on the 40x40 box
    # is of class 1; 0.3 takes the 32x32 box -> small 1/1, medium 1/2, large 0/1
    result = recall_by_size([found], [(truth, np.zeros(4, np.int64))])
    assert result == {
        "small": {"num_true": 1, "recall": 1.0},
        "medium": {"num_true": 2, "recall": 0.5},
        "large": {"num_true": 1, "recall": 0.0},
    }
    # at 0.05 the 0.1 box counts: large 1/1
    assert recall_by_size([found], [(truth, np.zeros(4, np.int64))], confidence_threshold=0.05)["large"]["recall"] == 1
    # no truth boxes: recall None (null in JSON), not 0
    empty = recall_by_size([found], [(np.zeros((0, 4)), np.zeros(0))])
    assert empty["small"] == {"num_true": 0, "recall": None}
    with pytest.raises(ValueError, match="1 prediction sets for 2 images"):
        recall_by_size([found], [(truth, np.zeros(4)), (truth, np.zeros(4))])


def two_images(tmp_path):
    """Image 0 (64x64): an 'a' box 16x16. Image 1 (128x128): an 'a' box 100x100 and a 'b' box 40x40."""
    for name, side in (("0.png", 64), ("1.png", 128)):
        Image.fromarray(np.full((side, side, 3), 128, np.uint8)).save(tmp_path / name)
    return DetectionData(
        [
            DetectionSample(tmp_path / "0.png", 64, 64, [[8, 8, 24, 24]], [1]),
            DetectionSample(tmp_path / "1.png", 128, 128, [[0, 0, 100, 100], [20, 20, 60, 60]], [1, 0]),
        ],
        ("b", "a"),  # the teacher's order is ("a", "b"): matched by name
    )


def fake_teacher():
    """Finds the 16x16 'a' box at 0.9 in a 64x64 image; in a 128x128 image only the 'b' box, at 0.1."""

    def run(image, confidence_threshold, iou_threshold):
        if image.shape[0] == 64:
            return Detections([[8, 8, 24, 24]], [0.9], [0], ("a", "b"))
        return Detections([[20, 20, 60, 60]], [0.1], [1], ("a", "b"))

    return Teacher("fake.onnx", "yolox", ("a", "b"), 64, run)


def test_a_teacher_is_scored_per_group_from_one_detection_per_image(tmp_path):
    calls = []
    teacher = fake_teacher()
    counted = Teacher("fake.onnx", "yolox", ("a", "b"), 64, lambda *args: calls.append(1) or teacher(*args[:1]))
    metrics = evaluate_detector(counted, two_images(tmp_path), groups={"one": [0], "two": [1]})
    assert len(calls) == 2  # each image detected once for the whole set and both groups
    # a: 2 truths, one exact hit at 0.9 -> precision 1 up to recall 0.5: 51 of the 101 recall levels -> 51/101
    # (IoU 1: the same at every threshold); b: 1 truth, one exact hit (at 0.1) -> 1.0
    assert metrics["per_class"]["a"]["ap50"] == pytest.approx(51 / 101)
    assert metrics["map50"] == pytest.approx((51 / 101 + 1) / 2) == metrics["map50_95"]
    # at 0.25: the small box found, the medium one (0.1) and the large one (no box) not
    assert metrics["size_recall"] == {
        "small": {"num_true": 1, "recall": 1.0},
        "medium": {"num_true": 1, "recall": 0.0},
        "large": {"num_true": 1, "recall": 0.0},
    }
    one, two = metrics["by_source"]["one"], metrics["by_source"]["two"]
    # one: a 1/1 hit -> 1.0; only class a has truth there
    assert (one["images"], one["map50"], set(one["per_class"])) == (1, 1.0, {"a"})
    assert one["per_class"]["a"] == {"ap50": 1.0, "ap50_95": 1.0, "precision": 1.0, "recall": 1.0, "num_true": 1}
    assert (
        one["size_recall"]["small"] == {"num_true": 1, "recall": 1.0} and one["size_recall"]["large"]["recall"] is None
    )
    # two: a missed (AP 0), b hit (AP 1) -> 0.5; nothing scores >= 0.25 -> precision and recall 0
    assert (two["images"], two["map50"], set(two["per_class"])) == (1, 0.5, {"a", "b"})
    assert two["per_class"]["b"]["precision"] == 0.0 and two["per_class"]["b"]["recall"] == 0.0
    assert (
        two["size_recall"]["medium"] == {"num_true": 1, "recall": 0.0} and two["size_recall"]["small"]["recall"] is None
    )
    assert "by_source" not in evaluate_detector(teacher, two_images(tmp_path))


def test_groups_must_index_the_samples(tmp_path):
    data = two_images(tmp_path)
    with pytest.raises(ValueError, match=r"groups\['one'\] holds index 5, outside the 2 samples"):
        evaluate_detector(fake_teacher(), data, groups={"one": [0, 5]})
    with pytest.raises(TypeError, match="groups must be a mapping"):
        evaluate_detector(fake_teacher(), data, groups=[0, 1])
    with pytest.raises(TypeError, match=r"groups\['one'\] must be integer indices"):
        evaluate_detector(fake_teacher(), data, groups={"one": [0.5]})


def test_two_copies_of_a_folder_score_alike(tiny_detector, tmp_path):
    import shutil

    from cvapps.detection.formats import load_detection_sets

    model_path, root, _ = tiny_detector
    shutil.copytree(root, tmp_path / "copy")
    data = load_detection_sets([root, tmp_path / "copy"])  # 4 images, then their 4 copies
    metrics = evaluate_detector(model_path, data, groups={"original": range(4), "copy": range(4, 8)})
    original, copy = metrics["by_source"]["original"], metrics["by_source"]["copy"]
    assert original["images"] == copy["images"] == 4
    assert original["map50"] == copy["map50"] == metrics["map50"] == 1.0  # the fixture's detector finds every square
    assert original["per_class"] == copy["per_class"]
    # the squares are 16..26 px a side: all small (< 32²), all found
    assert metrics["size_recall"]["small"] == {"num_true": 12, "recall": 1.0}
