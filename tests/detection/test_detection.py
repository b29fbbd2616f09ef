import numpy as np
import pytest

from cvapps.detection import Detections, average_precision, match_predictions, mean_average_precision


def test_detections_validate_and_index():
    found = Detections([[0, 0, 10, 10], [5, 5, 8, 9], [1, 2, 3, 4]], [0.9, 0.2, 0.6], [1, 0, 1], ("cat", "dog"))
    assert found.xyxy.dtype == np.float32 and found.class_id.dtype == np.int64
    assert found.class_name == ["dog", "cat", "dog"]
    assert len(found[found.confidence > 0.5]) == 2
    assert found[1].class_name == ["cat"]
    assert found.to_dict()[0] == {"box": [0.0, 0.0, 10.0, 10.0], "confidence": 0.9, "class_id": 1, "class_name": "dog"}
    assert len(Detections.empty(("a",))) == 0
    with pytest.raises(ValueError, match="as many boxes as confidences and class ids"):
        Detections([[0, 0, 1, 1]], [0.5, 0.6], [0])
    with pytest.raises(ValueError, match="x1 <= x2"):
        Detections([[5, 0, 1, 1]], [0.5], [0])
    with pytest.raises(ValueError, match="confidence must be in"):
        Detections([[0, 0, 1, 1]], [1.5], [0])
    with pytest.raises(ValueError, match="index the 2 class_names"):
        Detections([[0, 0, 1, 1]], [0.5], [2], ("a", "b"))


def test_matching_takes_each_truth_once_in_score_order():
    truth = np.array([[0, 0, 10, 10]], np.float32)
    # Two predictions on the same object: the higher score takes it, the other is a false positive.
    hits = match_predictions(np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32), np.array([0.3, 0.9]), truth, [0.5])
    assert hits[:, 0].tolist() == [False, True]


def test_ap_hand_computed():
    # Ranks by score: TP, FP, TP with 2 truth boxes.
    # precision 1/1, 1/2, 2/3; recall 0.5, 0.5, 1.0; envelope 1, 2/3, 2/3.
    # Recall levels 0.00..0.50 (51 of them) first reached at rank 1 -> 1.0;
    # levels 0.51..1.00 (50) first reached at rank 3 -> 2/3. AP = (51 + 50 * 2/3) / 101 = 0.834983.
    ap = average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), num_true=2)
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert np.isnan(average_precision(np.zeros(0, bool), np.zeros(0), 0))
    assert average_precision(np.zeros(0, bool), np.zeros(0), 3) == 0.0  # truth but no predictions


def test_map50_95_counts_the_thresholds_a_box_passes():
    # Truth 10x10, prediction 10x6 inside it: IoU = 60 / 100 = 0.6.
    # A true positive at IoU thresholds 0.50, 0.55, 0.60 (AP 1), a miss at 0.65 .. 0.95 (AP 0):
    # mAP50 = 1, mAP50-95 = 3 / 10.
    found = Detections([[0, 0, 10, 6]], [0.8], [0], ("thing",))
    truth = [(np.array([[0, 0, 10, 10]], np.float32), np.array([0]))]
    metrics = mean_average_precision([found], truth, num_classes=1)
    assert metrics["map50"] == 1.0
    assert metrics["map50_95"] == pytest.approx(0.3)


def test_classes_without_truth_are_left_out_and_missed_classes_count_zero():
    # Class 0: found perfectly (AP 1). Class 1: has truth, never predicted (AP 0).
    # Class 2: no truth anywhere (left out of the mean). mAP50 = (1 + 0) / 2.
    found = Detections([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.9], [0, 2], ("a", "b", "c"))
    truth = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 1]))]
    metrics = mean_average_precision([found], truth, num_classes=3)
    assert metrics["map50"] == 0.5
    assert [row["num_true"] for row in metrics["per_class"]] == [1, 1, 0]
    assert metrics["per_class"][0]["precision"] == 1.0 and metrics["per_class"][1]["recall"] == 0.0


def test_precision_and_recall_at_the_confidence_threshold():
    # Three predictions of one class, one truth box: a TP at 0.9, FPs at 0.5 and 0.1.
    # At confidence >= 0.25: 2 kept, 1 right -> precision 1/2, recall 1/1.
    found = Detections([[0, 0, 10, 10], [40, 40, 50, 50], [70, 70, 80, 80]], [0.9, 0.5, 0.1], [0, 0, 0])
    truth = [(np.array([[0, 0, 10, 10]], np.float32), np.array([0]))]
    row = mean_average_precision([found], truth, num_classes=1, confidence_threshold=0.25)["per_class"][0]
    assert (row["precision"], row["recall"]) == (0.5, 1.0)
    recall, precision = row["pr_curve"]
    assert recall.tolist() == [1.0, 1.0, 1.0] and precision.tolist() == [1.0, 0.5, 1 / 3]


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="1 prediction sets for 2 images"):
        mean_average_precision([Detections.empty()], [(np.zeros((0, 4)), np.zeros(0))] * 2, num_classes=1)


def test_map_agrees_with_pycocotools_on_random_data():
    """Same boxes, same numbers as the COCO reference implementation."""
    import contextlib
    import io

    pycocotools = pytest.importorskip("pycocotools")  # noqa: F841
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    images, annotations, results, predictions, truths = [], [], [], [], []

    def xywh(box):
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    for image_id in range(30):
        count = rng.integers(0, 6)
        corner = rng.uniform(0, 200, (count, 2))
        truth = np.concatenate([corner, corner + rng.uniform(10, 80, (count, 2))], 1).astype(np.float32)
        truth_ids = rng.integers(0, 3, count)
        jittered = truth + rng.normal(0, 6, truth.shape).astype(np.float32)
        jittered[:, 2:] = np.maximum(jittered[:, 2:], jittered[:, :2] + 1)
        extra = rng.integers(0, 4)
        corner = rng.uniform(0, 200, (extra, 2))
        boxes = np.concatenate([jittered, np.concatenate([corner, corner + rng.uniform(10, 80, (extra, 2))], 1)])
        ids = np.concatenate([truth_ids, rng.integers(0, 3, extra)])
        scores = rng.uniform(0, 1, len(boxes))
        predictions.append(Detections(boxes, scores, ids, ("a", "b", "c")))
        truths.append((truth, truth_ids))
        images.append({"id": image_id, "width": 300, "height": 300})
        for box, c in zip(truth, truth_ids):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(c) + 1,
                    "bbox": xywh(box),
                    "area": float(np.prod(box[2:] - box[:2])),
                    "iscrowd": 0,
                }
            )
        for box, c, s in zip(boxes, ids, scores):
            results.append({"image_id": image_id, "category_id": int(c) + 1, "bbox": xywh(box), "score": float(s)})
    reference = COCO()
    reference.dataset = {"images": images, "annotations": annotations, "categories": [{"id": k} for k in (1, 2, 3)]}
    with contextlib.redirect_stdout(io.StringIO()):
        reference.createIndex()
        evaluation = COCOeval(reference, reference.loadRes(results), "bbox")
        evaluation.params.maxDets = [100, 100, 1000]
        evaluation.params.areaRng = [[0, 1e10]] * 4  # no size buckets: every box counts
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ours = mean_average_precision(predictions, truths, num_classes=3)
    assert ours["map50_95"] == pytest.approx(evaluation.stats[0], abs=1e-6)
    assert ours["map50"] == pytest.approx(evaluation.stats[1], abs=1e-6)


# --- model, targets, loss ------------------------------------------------------------------------

ANCHORS = [[[8, 8], [16, 16], [32, 32]], [[32, 32], [48, 48], [64, 64]], [[64, 64], [96, 96], [128, 128]]]


def test_geometry_matches_the_anchor_grid_of_each_level():
    from cvapps.core.boxes import anchor_grid
    from cvapps.detection import SlotGeometry

    geometry = SlotGeometry.build(64, ANCHORS)
    # 64 px: P3 8x8, P4 4x4, P5 2x2 cells, 3 anchors each -> (64 + 16 + 4) * 3 = 252 slots.
    assert len(geometry) == 252 and geometry.offsets == (0, 192, 240)
    for offset, stride, anchors in zip(geometry.offsets, (8, 16, 32), ANCHORS):
        expected = anchor_grid(64, stride, anchors)
        slots = slice(offset, offset + len(expected))
        centres = (geometry.grid[slots] + 0.5) * geometry.strides[slots]
        np.testing.assert_allclose(centres, (expected[:, :2] + expected[:, 2:]) / 2)
        np.testing.assert_allclose(geometry.anchors[slots], expected[:, 2:] - expected[:, :2])


def test_assignment_by_centre_cell_and_anchor_ratio():
    from cvapps.detection import SlotGeometry, assign_targets

    geometry = SlotGeometry.build(64, ANCHORS)
    # A 16x16 box centred at (24, 24), class 1.
    # P3 (stride 8): cell (row 3, column 3); ratios to anchors 8, 16, 32 are 2, 1, 2 (all < 4):
    #   slots (3 * 8 + 3) * 3 + a = 81, 82, 83.
    # P4 (stride 16): cell (1, 1); ratios to 32, 48, 64 are 2, 3, 4 (4 is not < 4):
    #   slots 192 + (1 * 4 + 1) * 3 + a = 207, 208.
    # P5: ratios 4, 6, 8: none.
    targets = assign_targets([[16, 16, 32, 32]], [1], geometry)
    assert np.flatnonzero(targets[:, 0]).tolist() == [81, 82, 83, 207, 208]
    assert targets[81].tolist() == [1, 16, 16, 32, 32, 1]
    assert assign_targets(np.zeros((0, 4)), [], geometry).sum() == 0


def test_keras_decode_and_ciou_match_the_numpy_box_ops():
    from cvapps.core.boxes import complete_box_iou, decode
    from cvapps.detection import SlotGeometry, complete_iou, decode_slots

    geometry = SlotGeometry.build(64, ANCHORS)
    raw = np.random.default_rng(0).normal(0, 1, (2, len(geometry), 4)).astype(np.float32)
    ours = np.asarray(decode_slots(raw, geometry))
    for stride in (8, 16, 32):  # boxes.decode takes one stride: level by level
        level = geometry.strides[:, 0] == stride
        expected = decode(raw[:, level], geometry.anchors[level], geometry.grid[level], stride)
        np.testing.assert_allclose(ours[:, level], expected, rtol=1e-5, atol=1e-4)
    a, b = ours[0], ours[1]
    np.testing.assert_allclose(np.asarray(complete_iou(a, b)), complete_box_iou(a, b, aligned=True), atol=1e-5)


def test_loss_is_low_for_the_right_answer_and_finite_without_objects():
    from cvapps.core.boxes import encode
    from cvapps.detection import SlotGeometry, assign_targets, detection_loss

    geometry = SlotGeometry.build(64, ANCHORS)
    targets = assign_targets([[16, 16, 32, 32]], [1], geometry)[None]
    loss = detection_loss(geometry, num_classes=2)
    positive = targets[0, :, 0] > 0
    right = np.full((1, len(geometry), 7), -12.0, np.float32)  # no object, no class anywhere
    for stride in (8, 16):  # the box sits at P3 and P4 (see the assignment test); encode level by level
        slots = positive & (geometry.strides[:, 0] == stride)
        right[0, slots, :4] = encode(targets[0, slots, 1:5], geometry.anchors[slots], geometry.grid[slots], stride)
    right[0, positive, 4] = 12.0  # object
    right[0, positive, 6] = 12.0  # class 1
    wrong = np.random.default_rng(1).normal(0, 1, right.shape).astype(np.float32)
    low, high = float(np.asarray(loss(targets, right))[0]), float(np.asarray(loss(targets, wrong))[0])
    assert low < 1e-3 < high
    empty = np.zeros_like(targets)
    assert np.isfinite(np.asarray(loss(empty, wrong))).all()


def test_detector_builds_and_keeps_its_anchors_through_save_and_load(tmp_path):
    from cvapps.detection import build_detector
    from cvapps.models import load_model, model_info, save_model
    from cvapps.nn.backbone import Backbone

    model = build_detector(Backbone(family="compact", size="xs", image_size=64), 2, ANCHORS, ["cat", "dog"], width=16)
    assert model.output_shape == (None, 252, 7)
    save_model(model, tmp_path / "d.keras")
    info = model_info(load_model(tmp_path / "d.keras"), tmp_path / "d.keras")
    assert info.task == "detect" and info.class_names == ("cat", "dog")
    assert info.settings == {"anchors": ANCHORS, "strides": [8, 16, 32]}
    with pytest.raises(ValueError, match="divisible by 32"):
        build_detector(Backbone(family="compact", size="xs", image_size=48), 2, ANCHORS)
    with pytest.raises(ValueError, match=r"shaped \(3 levels, A, 2\)"):
        build_detector(Backbone(family="compact", size="xs", image_size=64), 2, [[8, 8]])


def test_tiny_detector_overfits_a_handful_of_images_to_map_1(tiny_detector):
    """Model, assignment, loss, decoding and NMS working together: train on 4 images, find them all."""
    from cvapps.detection import detect, mean_average_precision
    from cvapps.detection.formats import load_detection

    model_path, root, truths = tiny_detector
    data = load_detection(root)
    assert data.class_names == ("red", "blue") and not data.problems
    found = detect([str(p) for p in data.paths], model_path, confidence_threshold=0.3, runtime="keras")
    metrics = mean_average_precision(found, truths, num_classes=2)
    assert metrics["map50"] == 1.0, [f.to_dict() for f in found]


def test_person_detector_reaches_its_card_map(real_data):
    """The shipped person detector on the 60 images its training held out, as its card states."""
    from cvapps.detection import evaluate_detector
    from cvapps.detection.data import split_detection
    from cvapps.detection.formats import load_detection_sets
    from cvapps.models import model_card, shipped_models

    if "person" not in shipped_models():
        pytest.skip("no shipped person model in models/")
    data = load_detection_sets([real_data / "coco128", real_data / "pennfudan"], ["person"])
    _, held_out = split_detection(data, 0.2, seed=0)
    assert len(held_out) == 60
    metrics = evaluate_detector("person", held_out)
    card = model_card("person")["metrics"]
    assert metrics["map50"] >= card["map50"] - 0.005
    assert metrics["map50_95"] >= card["map50_95"] - 0.005


def test_raccoon_detector_reaches_its_card_map(real_data):
    """The shipped raccoon detector (trained on a Pascal VOC folder) on the 40 images it never saw."""
    from cvapps.detection import evaluate_detector
    from cvapps.detection.data import split_detection
    from cvapps.detection.formats import load_detection
    from cvapps.models import model_card, shipped_models

    if "raccoon" not in shipped_models():
        pytest.skip("no shipped raccoon model in models/")
    _, held_out = split_detection(load_detection(real_data / "raccoon"), 0.2, seed=0)
    assert len(held_out) == 40
    metrics = evaluate_detector("raccoon", held_out)
    card = model_card("raccoon")["metrics"]
    assert metrics["map50"] >= card["map50"] - 0.005
    assert metrics["map50_95"] >= card["map50_95"] - 0.005


def test_detect_refuses_arrays_that_are_not_rgb_uint8(tiny_detector):
    from cvapps.detection import detect

    model_path, _, _ = tiny_detector
    with pytest.raises(ValueError, match=r"must be \(H, W, 3\) uint8 RGB; received float64"):
        detect(np.zeros((32, 32, 3)), model_path, runtime="keras")
