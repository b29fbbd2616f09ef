"""cvapps.core.boxes: formats, YOLO label lines, IoU family, NMS (exactly TensorFlow's), anchors."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvapps.core import boxes as B

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def box_sets(draw, max_boxes=30, min_boxes=0, positive=False, grid=40):
    """(N, 4) float32 xyxy boxes on a small integer grid (so overlaps, ties and zero areas happen)."""
    n = draw(st.integers(min_boxes, max_boxes))
    low = 1 if positive else 0
    corner = draw(st.lists(st.tuples(st.integers(0, grid), st.integers(0, grid)), min_size=n, max_size=n))
    size = draw(st.lists(st.tuples(st.integers(low, grid // 2), st.integers(low, grid // 2)), min_size=n, max_size=n))
    xy = np.array(corner, np.float32).reshape(-1, 2)
    return np.concatenate([xy, xy + np.array(size, np.float32).reshape(-1, 2)], axis=1)


@st.composite
def detections(draw, max_boxes=30, classes=1):
    """(boxes, scores, class_ids): scores from a few levels, so equal scores are common."""
    boxes = draw(box_sets(max_boxes))
    n = len(boxes)
    scores = np.array(draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)), np.float32) / 6
    class_ids = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)), np.int64)
    return boxes, scores, class_ids


def reference_nms(boxes, scores, iou_threshold, class_ids=None, score_threshold=-np.inf):
    """Textbook greedy NMS, one box at a time: the oracle our vectorised version must equal."""
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] > np.float32(score_threshold)]
    kept = []
    for i in order:
        rivals = [k for k in kept if class_ids is None or class_ids[k] == class_ids[i]]
        if not rivals or B.box_iou(boxes[[i]], boxes[rivals]).max() <= np.float32(iou_threshold):
            kept.append(i)
    return np.array(kept, np.int64)


# ----------------------------------------------------------------------------------------------
# Formats and YOLO label lines
# ----------------------------------------------------------------------------------------------


def test_format_conversions_by_hand():
    xyxy = np.array([[10, 20, 40, 60]], np.float32)  # x 10..40, y 20..60: 30 wide, 40 tall
    assert B.from_xyxy(xyxy, "xywh").tolist() == [[10, 20, 30, 40]]
    assert B.from_xyxy(xyxy, "cxcywh").tolist() == [[25, 40, 30, 40]]
    assert B.to_xyxy([[25, 40, 30, 40]], "cxcywh").tolist() == xyxy.tolist()
    np.testing.assert_allclose(B.normalize(xyxy, image_width=100, image_height=200), [[0.1, 0.1, 0.4, 0.3]], rtol=1e-6)
    assert B.box_area(xyxy).tolist() == [1200.0]
    assert B.clip_boxes([[-5, 10, 120, 30]], image_width=100, image_height=50).tolist() == [[0, 10, 100, 30]]


@FAST
@given(box_sets(), st.sampled_from(B.FORMATS), st.integers(1, 4000), st.integers(1, 4000))
def test_format_conversions_round_trip(boxes, fmt, width, height):
    np.testing.assert_allclose(B.to_xyxy(B.from_xyxy(boxes, fmt), fmt), boxes, atol=1e-4)
    np.testing.assert_allclose(
        B.denormalize(B.normalize(boxes, width, height), width, height), boxes, rtol=1e-6, atol=1e-4
    )


def test_bad_box_inputs_say_what_was_received():
    with pytest.raises(ValueError, match="unknown box format 'yolo'"):
        B.to_xyxy([[0, 0, 1, 1]], "yolo")
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\), received shape \(4,\); one box is"):
        B.box_area([0, 0, 1, 1])
    with pytest.raises(TypeError, match="boxes must be a numeric array, received dtype <U1"):
        B.box_area([["a", "b", "c", "d"]])
    with pytest.raises(ValueError, match=r"boxes holds NaN or inf \(first at index \[0, 2\]\)"):
        B.box_area([[0, 0, np.nan, 1]])
    with pytest.raises(ValueError, match=r"boxes\[1\] = \[10.0, 10.0, 5.0, 5.0\] has x2 < x1.*to_xyxy\(boxes, fmt\)"):
        B.nms([[0, 0, 1, 1], [10, 10, 5, 5]], [0.5, 0.4])  # xywh passed as xyxy


def test_parse_yolo_labels_converts_and_reports_each_bad_line():
    text = "\n".join(
        [
            "0 0.5 0.5 0.2 0.4",  # 1: fine -> x 80..120 of 200, y 30..70 of 100
            "",  # 2: blank lines are not problems
            "1 0.5 0.5 0.2",  # 3: four fields
            "2 0.5 abc 0.2 0.2",  # 4: not a number
            "-1 0.5 0.5 0.2 0.2",  # 5: negative class
            "1.5 0.5 0.5 0.2 0.2",  # 6: class not an integer
            "3 0.5 0.5 0 0.2",  # 7: zero width
            "4 0.5 0.5 0.2 -0.1",  # 8: negative height
            "5 0.95 0.5 0.2 0.2",  # 9: x2 = 1.05 -> clipped to the image, kept
            "6 1.5 0.5 0.2 0.2",  # 10: wholly right of the image -> skipped
            "7 0.5 0.5 nan 0.2",  # 11: not finite
            "8 0.982555 0.5 0.0348906 0.2",  # 12: x2 = 1.0000003, label rounding: clipped, not reported
        ]
    )
    boxes, class_ids, problems = B.parse_yolo_labels(text, image_width=200, image_height=100, source="a.txt")
    assert boxes.dtype == np.float32 and class_ids.dtype == np.int64
    np.testing.assert_allclose(boxes, [[80, 30, 120, 70], [170, 40, 200, 60], [193.02194, 40, 200, 60]], atol=1e-4)
    assert class_ids.tolist() == [0, 5, 8]
    reported = {int(p.split("line ")[1].split(":")[0]): p for p in problems}
    assert sorted(reported) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert reported[3] == "a.txt: line 3: expected 5 fields 'class cx cy w h', got 4; line skipped"
    assert "cx cy w h must be numbers" in reported[4]
    assert "class id must be an integer >= 0, got -1" in reported[5]
    assert "got '1.5'" in reported[6]
    assert "width and height must be > 0, got w=0 h=0.2" in reported[7]
    assert "w=0.2 h=-0.1" in reported[8]
    assert "x2=1.05" in reported[9] and "clipped to the image" in reported[9]
    assert "wholly outside the image; line skipped" in reported[10]
    assert "must be finite" in reported[11]


def test_yolo_labels_round_trip_and_format_errors():
    boxes = np.array([[80, 30, 120, 70], [0, 0, 200, 100]], np.float32)
    text = B.format_yolo_labels(boxes, [3, 0], image_width=200, image_height=100)
    assert text == "3 0.5 0.5 0.2 0.4\n0 0.5 0.5 1 1\n"
    parsed, class_ids, problems = B.parse_yolo_labels(text.splitlines(), 200, 100)
    np.testing.assert_allclose(parsed, boxes, atol=1e-4)
    assert class_ids.tolist() == [3, 0] and problems == []
    assert B.parse_yolo_labels("", 200, 100)[0].shape == (0, 4)
    with pytest.raises(ValueError, match=r"reaches outside the 200x100 image; clip with clip_boxes\(\) first"):
        B.format_yolo_labels([[0, 0, 201, 10]], [0], 200, 100)
    with pytest.raises(ValueError, match="class_ids must be >= 0"):
        B.format_yolo_labels(boxes, [0, -2], 200, 100)
    with pytest.raises(ValueError, match="image_width must be a positive number of pixels, received 0"):
        B.parse_yolo_labels("0 0.5 0.5 0.1 0.1", 0, 100)


# ----------------------------------------------------------------------------------------------
# IoU and its variants
# ----------------------------------------------------------------------------------------------


def test_iou_by_hand():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 0, 30, 10], [2, 2, 7, 7]], np.float32)
    # strip 5x10: inter 50, union 100 + 100 - 50 = 150 -> 1/3; disjoint -> 0; 5x5 inside: 25 / 100
    np.testing.assert_allclose(B.box_iou(a, b), [[1 / 3, 0, 0.25]], rtol=1e-6)
    # GIoU of the disjoint pair: enclosing 30x10 = 300, union 200 -> 0 - (300 - 200) / 300 = -1/3
    assert B.generalized_box_iou(a, b[1:2])[0, 0] == pytest.approx(-1 / 3, rel=1e-6)
    # DIoU of the strip pair: centres (5, 5) and (10, 5), rho^2 = 25; enclosing 15x10, c^2 = 325
    assert B.distance_box_iou(a, b[:1])[0, 0] == pytest.approx(1 / 3 - 25 / 325, rel=1e-6)
    # same aspect ratio: v = 0, so CIoU = DIoU
    assert B.complete_box_iou(a, b[:1])[0, 0] == pytest.approx(1 / 3 - 25 / 325, rel=1e-6)


def test_complete_iou_aspect_term_by_hand():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 20, 10]], np.float32)
    # IoU 100 / 200 = 0.5; centres 5 apart, enclosing 20x10: DIoU = 0.5 - 25 / 500 = 0.45
    # v = 4 / pi^2 (atan(20 / 10) - atan(10 / 10))^2, alpha = v / (1 - 0.5 + v), CIoU = DIoU - alpha v
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(1)) ** 2
    expected = 0.45 - v / (0.5 + v) * v
    assert B.complete_box_iou(a, b)[0, 0] == pytest.approx(expected, rel=1e-5)
    assert B.complete_box_iou(a, b, aligned=True).tolist() == pytest.approx([expected], rel=1e-5)


IOU_VARIANTS = (B.box_iou, B.generalized_box_iou, B.distance_box_iou, B.complete_box_iou)


@FAST
@given(box_sets(max_boxes=12), box_sets(max_boxes=12))
def test_iou_family_properties(a, b):
    iou = B.box_iou(a, b)
    assert iou.shape == (len(a), len(b)) and iou.dtype == np.float32
    np.testing.assert_allclose(iou, B.box_iou(b, a).T, rtol=1e-6)  # symmetric
    assert ((iou >= 0) & (iou <= 1)).all()
    zero_area = B.box_area(a) == 0
    assert (iou[zero_area] == 0).all()  # zero-area boxes overlap nothing, never NaN
    for variant in IOU_VARIANTS:
        values = variant(a, b)
        assert values.shape == (len(a), len(b)) and np.isfinite(values).all()
        assert (values <= iou + 1e-6).all() and (values >= -1.5).all()
        if len(a) == len(b):
            np.testing.assert_allclose(variant(a, b, aligned=True), np.diagonal(values), rtol=1e-5, atol=1e-6)
    assert (B.generalized_box_iou(a, b) >= -1 - 1e-6).all() and (B.distance_box_iou(a, b) >= -1 - 1e-6).all()


@FAST
@given(box_sets(max_boxes=12, positive=True))
def test_iou_with_itself_is_one(a):
    for variant in IOU_VARIANTS:
        np.testing.assert_allclose(variant(a, a, aligned=True), np.ones(len(a)), rtol=1e-6)


def test_iou_of_empty_and_degenerate_inputs():
    none, some = np.zeros((0, 4), np.float32), np.array([[0, 0, 1, 1], [3, 3, 3, 3]], np.float32)
    for variant in IOU_VARIANTS:
        assert variant(none, some).shape == (0, 2) and variant(some, none).shape == (2, 0)
        assert variant(none, none, aligned=True).shape == (0,)
        point = np.array([[3, 3, 3, 3]], np.float32)
        assert variant(point, point).tolist() == [[0.0]]  # two identical points: 0, not NaN
    with pytest.raises(ValueError, match="aligned=True needs as many boxes in a as in b, received 2 and 0"):
        B.box_iou(some, none, aligned=True)


# ----------------------------------------------------------------------------------------------
# Non-max suppression
# ----------------------------------------------------------------------------------------------


@pytest.fixture(params=["onnxruntime", "grid"])
def nms_path(request, monkeypatch):
    """Run a test through each of nms's two implementations."""
    if request.param == "grid":
        monkeypatch.setattr(B, "ONNX_NMS_MAX_BOXES", 0)
    return request.param


def test_nms_by_hand(nms_path):
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    # box 1 vs 0: inter 9x10 = 90, union 110 -> 0.82 > 0.45: suppressed; box 2 is far away;
    # box 3 vs 0: inter 50, union 100 -> exactly 0.5: suppressed at 0.45, kept at 0.5 (strictly >)
    kept = B.nms(boxes, scores, iou_threshold=0.45)
    assert kept.tolist() == [0, 2] and kept.dtype == np.int64
    assert B.nms(boxes, scores, iou_threshold=0.5).tolist() == [0, 2, 3]
    assert B.nms(boxes, scores, iou_threshold=0.45, max_detections=1).tolist() == [0]
    assert B.nms(boxes, scores, score_threshold=0.7).tolist() == [0]  # 0.7 is not > 0.7
    # per class, 1 and 3 only meet each other: inter 9x5 = 45, union 100 + 50 - 45 = 105 -> 0.43, both stay
    assert B.nms(boxes, scores, class_ids=[0, 1, 0, 1]).tolist() == [0, 1, 2, 3]
    assert B.nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []


def test_nms_ties_keep_the_lower_index_and_zero_area_boxes_stay(nms_path):
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 9]], np.float32)
    assert B.nms(boxes, [0.5, 0.5, 0.9]).tolist() == [2, 0]  # equal scores: index 0 first; the line is kept


def test_nms_rejects_bad_arguments():
    boxes = [[0, 0, 1, 1]]
    with pytest.raises(ValueError, match=r"iou_threshold must be a number in \[0, 1\], received 1.5"):
        B.nms(boxes, [1.0], iou_threshold=1.5)
    with pytest.raises(ValueError, match="one entry per box: 1 boxes but 2 scores"):
        B.nms(boxes, [1.0, 0.5])
    with pytest.raises(ValueError, match=r"class_ids must have shape \(1,\)"):
        B.nms(boxes, [1.0], class_ids=[0, 1])
    with pytest.raises(ValueError, match="max_detections must be None or an integer >= 0, received -1"):
        B.nms(boxes, [1.0], max_detections=-1)
    with pytest.raises(ValueError, match=r"scores holds NaN or inf"):
        B.nms(boxes, [np.nan])


@settings(max_examples=150, deadline=None)
@given(detections(max_boxes=40, classes=3), st.sampled_from([0.0, 0.1, 0.3, 0.45, 0.5, 0.7, 1.0]))
def test_nms_properties(detection, iou_threshold):
    boxes, scores, class_ids = detection
    for classes in (None, class_ids):
        kept = B.nms(boxes, scores, iou_threshold, class_ids=classes)
        np.testing.assert_array_equal(kept, reference_nms(boxes, scores, iou_threshold, classes))
        assert (np.diff(scores[kept]) <= 0).all()  # descending score order
        same_class = (
            np.ones((len(kept), len(kept)), bool) if classes is None else classes[kept][:, None] == classes[kept]
        )
        overlap = B.box_iou(boxes[kept], boxes[kept]) > np.float32(iou_threshold)
        assert not (overlap & same_class & ~np.eye(len(kept), dtype=bool)).any()
        assert B.nms(boxes, scores, iou_threshold, class_ids=classes, max_detections=2).tolist() == kept[:2].tolist()
    # class-aware NMS never suppresses across classes: it is per-class NMS, merged by score
    members = [np.flatnonzero(class_ids == c) for c in range(3)]
    per_class = np.concatenate([index[B.nms(boxes[index], scores[index], iou_threshold)] for index in members])
    merged = per_class[np.lexsort((per_class, -scores[per_class]))]
    np.testing.assert_array_equal(B.nms(boxes, scores, iou_threshold, class_ids=class_ids), merged)


def test_nms_dense_piles_and_chains_equal_the_reference(monkeypatch, nms_path):
    rng = np.random.default_rng(0)
    # piles of near-identical boxes: with a tiny pair budget every block is solved head first
    centres = rng.uniform(0, 200, (6, 2))[rng.integers(0, 6, 300)] + rng.normal(0, 1, (300, 2))
    piles = np.concatenate([centres, centres + 30], axis=1).astype(np.float32)
    # a chain: each box overlaps the next (IoU 0.8) and outscores it, so decisions alternate
    x = np.arange(300, dtype=np.float32)
    chain = np.stack([x, 0 * x, x + 9, 0 * x + 9], axis=1)
    for boxes, scores in ((piles, rng.random(300).astype(np.float32)), (chain, 1 - x / 300)):
        expected = reference_nms(boxes, scores, 0.45)
        np.testing.assert_array_equal(B.nms(boxes, scores), expected)
        with monkeypatch.context() as patch:
            patch.setattr(B, "_PAIR_BUDGET", 50)
            np.testing.assert_array_equal(B.nms(boxes, scores), expected)


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow", reason="TensorFlow is not importable: the exact-equality check needs it")


def tf_nms(tf, boxes, scores, iou_threshold, max_output_size=None, score_threshold=float("-inf")):
    """TensorFlow's greedy NMS on our xyxy boxes (it takes [y1, x1, y2, x2])."""
    size = len(boxes) if max_output_size is None else max_output_size
    yxyx = tf.constant(boxes[:, [1, 0, 3, 2]])
    return tf.image.non_max_suppression(
        yxyx, tf.constant(scores), size, iou_threshold, score_threshold=score_threshold
    ).numpy()


def random_detections(rng, n):
    """Seeded sets of several kinds: uniform, clustered like detector output, tiny, integer-grid."""
    kind = rng.integers(4)
    if kind == 0:
        xy, wh = rng.uniform(0, 100, (n, 2)), rng.uniform(0, 40, (n, 2))
    elif kind == 1:
        objects = rng.uniform(0, 300, (max(1, n // 8), 2))
        wh = np.exp(rng.normal(3, 0.5, (n, 2)))
        xy = objects[rng.integers(0, len(objects), n)] + rng.normal(0, 4, (n, 2))
    elif kind == 2:
        xy, wh = rng.uniform(0, 1, (n, 2)), np.exp(rng.uniform(-7, -1, (n, 2)))
    else:
        xy, wh = rng.integers(0, 30, (n, 2)).astype(float), rng.integers(0, 12, (n, 2)).astype(float)
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.random(n) if rng.random() < 0.5 else rng.integers(0, 8, n) / 7  # ties half the time
    return boxes, scores.astype(np.float32)


def test_nms_keeps_exactly_what_tensorflow_keeps(tf, nms_path):
    rng = np.random.default_rng(2024)
    for trial in range(150):
        boxes, scores = random_detections(rng, int(rng.integers(0, 400)))
        iou_threshold = float(rng.choice([0.0, 0.2, 0.45, 0.5, 0.6, 0.9]))
        score_threshold = float(rng.choice([float("-inf"), 0.3, 0.5]))
        cap = None if trial % 4 else int(rng.integers(0, 30))
        ours = B.nms(boxes, scores, iou_threshold, score_threshold=score_threshold, max_detections=cap)
        theirs = tf_nms(tf, boxes, scores, iou_threshold, cap, score_threshold)
        np.testing.assert_array_equal(ours, theirs, err_msg=f"trial {trial}")


@settings(max_examples=60, deadline=None)
@given(detections(max_boxes=25, classes=1), st.sampled_from([0.0, 0.3, 0.45, 0.5, 1.0]))
def test_nms_equals_tensorflow_on_hypothesis_sets(tf, detection, iou_threshold):
    boxes, scores, _ = detection
    expected = tf_nms(tf, boxes, scores, iou_threshold)
    np.testing.assert_array_equal(B.nms(boxes, scores, iou_threshold), expected)
    B.ONNX_NMS_MAX_BOXES, saved = 0, B.ONNX_NMS_MAX_BOXES  # and through the grid path
    try:
        np.testing.assert_array_equal(B.nms(boxes, scores, iou_threshold), expected)
    finally:
        B.ONNX_NMS_MAX_BOXES = saved


def test_embedded_nms_graph_is_the_documented_one():
    """The serialised graph in cvapps.core.boxes is exactly what this onnx.helper code builds."""
    import base64

    onnx = pytest.importorskip("onnx", reason="the onnx package (test extra) builds the reference graph")
    from onnx import TensorProto, helper

    names = ["boxes", "scores", "max_output_boxes_per_class", "iou_threshold", "score_threshold"]
    graph = helper.make_graph(
        [helper.make_node("NonMaxSuppression", names, ["selected"], center_point_box=0)],
        "cvapps_nms",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, None, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, None, None]),
            helper.make_tensor_value_info("max_output_boxes_per_class", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("iou_threshold", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("score_threshold", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="cvapps")
    model.ir_version = 7
    onnx.checker.check_model(model)
    assert base64.b64decode(B._NMS_GRAPH) == model.SerializeToString()


def test_nms_keeps_a_score_of_minus_float32_max():
    # The onnxruntime operator drops scores <= its threshold (-FLT_MAX); such a call takes the grid path.
    lowest = np.finfo(np.float32).min
    assert B.nms([[0, 0, 10, 10], [20, 20, 30, 30]], [lowest, 0.5]).tolist() == [1, 0]


def test_soft_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [40, 40, 50, 50]], np.float32)
    scores = np.array([0.9, 0.8, 0.3], np.float32)
    # IoU(0, 1) = 1/3: gaussian 0.8 * exp(-(1/9) / 0.5) = 0.6406; linear (1/3 > 0.3) 0.8 * (1 - 1/3)
    kept, new = B.soft_nms(boxes, scores, method="gaussian", sigma=0.5)
    assert kept.tolist() == [0, 1, 2]
    np.testing.assert_allclose(new, [0.9, 0.8 * math.exp(-2 / 9), 0.3], rtol=1e-6)
    kept, new = B.soft_nms(boxes, scores, method="linear", iou_threshold=0.3)
    np.testing.assert_allclose(new, [0.9, 0.8 * 2 / 3, 0.3], rtol=1e-6)
    kept, _ = B.soft_nms(boxes, scores, method="linear", iou_threshold=0.3, score_threshold=0.55)
    assert kept.tolist() == [0]  # 0.533 fell under the threshold, 0.3 never passed it
    assert B.soft_nms(boxes, scores, class_ids=[0, 1, 0])[1][1] == pytest.approx(0.8)  # other class: no decay
    with pytest.raises(ValueError, match="method must be one of"):
        B.soft_nms(boxes, scores, method="hard")


def test_gaussian_soft_nms_matches_tensorflow(tf):
    rng = np.random.default_rng(7)
    for _ in range(20):
        boxes, _ = random_detections(rng, 60)
        scores = rng.random(60).astype(np.float32)
        kept, new = B.soft_nms(boxes, scores, sigma=0.5, score_threshold=0.05)
        yxyx = tf.constant(boxes[:, [1, 0, 3, 2]])
        tf_kept, tf_scores = tf.image.non_max_suppression_with_scores(yxyx, scores, 60, 1.0, 0.05, soft_nms_sigma=0.25)
        np.testing.assert_array_equal(kept, tf_kept.numpy())
        np.testing.assert_allclose(new, tf_scores.numpy(), rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Anchors
# ----------------------------------------------------------------------------------------------


def test_anchor_grid_centres_and_order():
    anchors = B.anchor_grid((20, 30), stride=8, anchor_sizes=[[8, 16], [32, 32]])
    # ceil(20 / 8) = 3 rows, ceil(30 / 8) = 4 columns, 2 anchors each
    assert anchors.shape == (3 * 4 * 2, 4) and anchors.dtype == np.float32
    # index (row 1 * 4 + column 2) * 2 + anchor 1: centre ((2 + 0.5) * 8, (1 + 0.5) * 8) = (20, 12)
    assert anchors[(1 * 4 + 2) * 2 + 1].tolist() == [20 - 16, 12 - 16, 20 + 16, 12 + 16]
    with pytest.raises(ValueError, match=r"anchor_sizes\[0\] = \[0.0, 16.0\]: widths and heights must be > 0"):
        B.anchor_grid(32, 8, [[0, 16]])


def test_zero_offsets_decode_to_the_anchor_grid():
    anchors = np.array([[8, 16], [32, 32], [20, 10]], np.float32)
    rows, columns = B.feature_size((20, 30), stride=8)
    head = np.zeros((rows, columns, len(anchors), 4), np.float32)  # a head output: t = 0 everywhere
    decoded = B.decode(head, anchors, B.cell_grid(rows, columns), stride=8)
    np.testing.assert_array_equal(decoded.reshape(-1, 4), B.anchor_grid((20, 30), 8, anchors))
    with pytest.raises(ValueError, match=r"image_size must be an int or \(height, width\), received \(1, 2, 3\)"):
        B.feature_size((1, 2, 3), 8)


def test_decode_by_hand_and_encode_errors():
    # zero offsets: centre (2 * 0.5 - 0.5 + g) * stride = (g + 0.5) * stride, size anchor * (2 * 0.5)^2
    box = B.decode(np.zeros(4), anchors=[10, 20], grid=[3, 1], stride=8)
    assert box.tolist() == [28 - 5, 12 - 10, 28 + 5, 12 + 10]
    # centre x (36 + 46) / 2 = 41 = 5.125 cells, 2.125 cells from column 3
    with pytest.raises(
        ValueError, match=r"centre offset from its grid cell \(cells\) is 2.125, expected within \(-0.5, 1.5\)"
    ):
        B.encode([[36, 2, 46, 22]], anchors=[10, 20], grid=[3, 1], stride=8)
    # width 50 against an anchor 10 wide: 5 anchors, beyond (2 * sigmoid)^2 < 4
    with pytest.raises(ValueError, match=r"size / anchor ratio is 5, expected within \(0, 4\)"):
        B.encode([[3, 2, 53, 22]], anchors=[10, 20], grid=[3, 1], stride=8)


@FAST
@given(
    st.lists(st.tuples(*[st.floats(-0.45, 1.45)] * 2, *[st.floats(0.05, 3.9)] * 2), min_size=1, max_size=20),
    st.sampled_from([8, 16, 32]),
)
def test_encode_decode_round_trip(parts, stride):
    parts = np.array(parts)
    rng = np.random.default_rng(len(parts))
    grid = rng.integers(0, 40, (len(parts), 2)).astype(np.float32)
    anchors = rng.uniform(5, 200, (len(parts), 2)).astype(np.float32)
    centre = (grid + parts[:, :2]) * stride  # within (-0.5, 1.5) cells of the grid cell
    size = anchors * parts[:, 2:]  # within (0, 4) anchors
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    round_trip = B.decode(B.encode(boxes, anchors, grid, stride), anchors, grid, stride)
    np.testing.assert_allclose(round_trip, boxes, rtol=1e-5, atol=1e-3)


def test_kmeans_recovers_synthetic_clusters():
    rng = np.random.default_rng(0)
    truth = np.array([[10, 20], [50, 50], [120, 60]], float)
    wh = truth[rng.integers(0, 3, 600)] * np.exp(rng.normal(0, 0.05, (600, 2)))
    anchors, mean_iou = B.kmeans_anchors(wh, k=3, seed=0)
    assert anchors.shape == (3, 2) and anchors.dtype == np.float32
    np.testing.assert_allclose(anchors, truth, rtol=0.05)  # sorted by area, like truth
    assert mean_iou > 0.9
    with pytest.raises(ValueError, match="wh holds 3 distinct sizes, fewer than k=4"):
        B.kmeans_anchors(truth, k=4)


@pytest.mark.realdata
def test_kmeans_on_coco128_labels(real_data):
    from PIL import Image

    folder = real_data / "coco128"
    wh = []
    for label in sorted((folder / "labels" / "train2017").glob("*.txt")):
        image = folder / "images" / "train2017" / f"{label.stem}.jpg"
        if not image.exists():  # coco128 ships two label files without their image
            continue
        width, height = Image.open(image).size
        scale = 640 / max(width, height)  # sizes at a 640 network input, as YOLO training sees them
        boxes, _, _ = B.parse_yolo_labels(label.read_text(), width * scale, height * scale, source=label.name)
        wh.append(boxes[:, 2:] - boxes[:, :2])
    wh = np.concatenate(wh)
    wh = wh[(wh > 0).all(axis=1)]
    anchors, mean_iou = B.kmeans_anchors(wh, k=9, seed=0)
    assert len(wh) > 850
    assert (np.diff(anchors.prod(axis=1)) >= 0).all()
    assert 0.5 < mean_iou < 0.85, f"mean best IoU {mean_iou:.3f} with anchors {anchors.round(1).tolist()}"
