"""Face verification: losses and mining, pair metrics, alignment, database, training, CLI."""

import math

import numpy as np
import pytest

from cvapps.faces import best_threshold, roc_curve, sample_pairs, verification_metrics
from cvapps.faces.detector import Face, FaceDetector, alignment_matrix
from cvapps.faces.losses import (
    pair_loss,
    pairwise_squared_distances,
    semihard_negatives,
    triplet_loss,
)
from cvapps.faces.train import FaceData, PKBatches, split_identities


def unit(*rows):
    rows = np.array(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# --- triplet loss and mining -------------------------------------------------------------------


@pytest.mark.parametrize("mining", ["semihard", "hard"])
def test_collapsed_embeddings_cost_the_margin_not_zero(mining):
    # Every embedding equal: all distances 0, so max(0 - 0 + alpha, 0) = alpha for every triplet.
    embeddings = np.tile(unit([0.6, 0.8]), (6, 1))
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert float(triplet_loss(labels, embeddings, margin=0.3, mining=mining)) == pytest.approx(0.3)


def test_well_separated_embeddings_cost_nothing():
    # Identity 0 at (1, 0), identity 1 at (0, 1): d_ap = 0, d_an = 2 > 0 + 0.2 for every triplet.
    embeddings = unit([1, 0], [1, 0], [0, 1], [0, 1])
    assert float(triplet_loss([0, 0, 1, 1], embeddings, 0.2, "semihard")) == pytest.approx(0.0)
    assert float(triplet_loss([0, 0, 1, 1], embeddings, 0.2, "hard")) == pytest.approx(0.0)


def test_triplet_loss_values_by_hand():
    # Points on a line (not normalised; the loss works on any embedding):
    #   a0 = 0, a1 = 1 (identity 0); b0 = 1.5, b1 = 3 (identity 1).
    # Squared distances: d(a0,a1)=1, d(a0,b0)=2.25, d(a0,b1)=9, d(a1,b0)=0.25, d(a1,b1)=4,
    #   d(b0,b1)=2.25.
    x = np.array([[0.0], [1.0], [1.5], [3.0]], np.float32)
    labels = [0, 0, 1, 1]
    # Hard mining, margin 0.5, per anchor: hardest positive - closest negative + 0.5:
    #   a0: 1 - 2.25 + .5 = -0.75 -> 0;  a1: 1 - 0.25 + .5 = 1.25;
    #   b0: 2.25 - 0.25 + .5 = 2.5;      b1: 2.25 - 4 + .5 = -1.25 -> 0.   mean = 3.75 / 4
    assert float(triplet_loss(labels, x, 0.5, "hard")) == pytest.approx(3.75 / 4)
    # Semi-hard, margin 0.5, per positive pair (a, p) -> negative n:
    #   (a0,a1): d_ap=1, negatives 2.25, 9 -> 2.25 (semi-hard): 1 - 2.25 + .5 -> 0
    #   (a1,a0): d_ap=1, negatives 0.25, 4 -> 4 (the only farther one): 1 - 4 + .5 -> 0
    #   (b0,b1): d_ap=2.25, negatives 2.25 (a0, not farther), 0.25 -> none farther: fallback
    #            largest closer one = 2.25: 2.25 - 2.25 + .5 = 0.5
    #   (b1,b0): d_ap=2.25, negatives 9, 4 -> 4: 2.25 - 4 + .5 -> 0.     mean = 0.5 / 4
    assert float(triplet_loss(labels, x, 0.5, "semihard")) == pytest.approx(0.5 / 4)


def test_semihard_picks():
    x = np.array([[0.0], [1.0], [1.5], [3.0]], np.float32)
    d = np.asarray(pairwise_squared_distances(x))
    picks = np.asarray(semihard_negatives(d, np.array([0, 0, 1, 1])))
    assert picks[0, 1] == 2  # a0 with a1 (d=1): b0 at 2.25 is the closest farther negative
    assert picks[1, 0] == 3  # a1 with a0 (d=1): b0 at 0.25 is closer, b1 at 4 is semi-hard
    assert picks[2, 3] == 0  # b0 with b1 (d=2.25): nothing farther; fallback a0 (2.25) over a1 (0.25)
    assert picks[3, 2] == 1  # b1 with b0 (d=2.25): a1 at 4 beats a0 at 9


def test_unknown_mining_is_refused():
    with pytest.raises(ValueError, match="mining must be one of"):
        triplet_loss([0, 1], unit([1, 0], [0, 1]), mining="easy")


def test_pair_loss_by_hand():
    # Two identities, logits z: positives (0,1),(1,0) at z=0 -> softplus(0)=ln 2;
    # negatives at z=0 too -> ln 2. Balanced mean: 0.5 ln2 + 0.5 ln2 = ln 2.
    assert float(pair_loss([0, 0, 1], np.zeros((3, 3), np.float32))) == pytest.approx(math.log(2), rel=1e-5)


# --- pair metrics ------------------------------------------------------------------------------


def test_verification_metrics_perfect_separation():
    # same pairs at 0.1-0.3, different at 1.0-1.2: accuracy 1, auc 1; best threshold between 0.3 and 1.0.
    distances = np.r_[np.linspace(0.1, 0.3, 20), np.linspace(1.0, 1.2, 20)]
    same = np.r_[np.ones(20), np.zeros(20)]
    metrics = verification_metrics(distances, same)
    assert metrics["accuracy"] == 1.0 and metrics["auc"] == pytest.approx(1.0)
    assert metrics["threshold"] == pytest.approx((0.3 + 1.0) / 2)
    assert metrics["tar_at_far_1e-3"] == 1.0 and metrics["eer"] == 0.0


def test_best_threshold_by_hand():
    # distances 0.1(same) 0.35(diff) 0.4(same) 0.8(diff): t in [0.1, 0.35) -> 3/4 right;
    # t in [0.4, 0.8) -> 3/4 right too; the first wins: midpoint of 0.1 and 0.35.
    t, accuracy = best_threshold(np.array([0.1, 0.4, 0.35, 0.8]), np.array([1, 1, 0, 0]))
    assert (t, accuracy) == (pytest.approx(0.225), 0.75)


def test_metrics_need_both_kinds_of_pairs():
    with pytest.raises(ValueError, match="need both same and different pairs"):
        verification_metrics(np.array([0.1, 0.2]), np.array([1, 1]))


def test_roc_ends_at_one_one():
    far, tar, _ = roc_curve(np.random.default_rng(0).random(50), np.arange(50) % 2)
    assert (far[0], tar[0], far[-1], tar[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_sample_pairs_balanced():
    labels = np.repeat(np.arange(10), 3)  # 10 people x 3 photos: 30 same pairs
    pairs = sample_pairs(labels, count=20, seed=1)
    assert (pairs[:, 2] == 1).sum() == 20 and (pairs[:, 2] == 0).sum() == 20
    same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    assert np.array_equal(same, pairs[:, 2] == 1)


# --- data --------------------------------------------------------------------------------------


def tiny_face_data(people=6, per_person=4):
    labels = np.repeat(np.arange(people), per_person)
    images = np.zeros((len(labels), 8, 8), np.uint8)
    return FaceData(images, labels, tuple(f"p{i}" for i in range(people)), tuple(f"f{i}" for i in range(len(labels))))


def test_split_is_by_identity_and_reproducible():
    data = tiny_face_data(people=10)
    train, held = split_identities(data, 0.3, seed=3)
    _, held_again = split_identities(data, 0.3, seed=3)
    assert not set(train.labels) & set(held.labels)
    assert len(set(held.labels)) == 3 and np.array_equal(held.labels, held_again.labels)


def test_pk_batches_hold_p_identities_of_k_images():
    batches = PKBatches(
        tiny_face_data(people=6, per_person=2), identities_per_batch=3, images_per_identity=4, steps=2, augment=False
    )
    images, labels = batches[0]
    assert images.shape == (12, 8, 8, 3) and images.dtype == np.float32
    assert sorted(np.bincount(labels.astype(int))[np.bincount(labels.astype(int)) > 0]) == [4, 4, 4]


# --- detection and alignment -------------------------------------------------------------------


def test_alignment_levels_tilted_eyes():
    # Eyes at (40, 40) and (80, 60): a 26.57 degree tilt. After the warp they share one row
    # and are still 44.7 px * (S / side) apart: side 100, S 100 -> sqrt(40^2 + 20^2) = 44.72.
    face = Face((10, 10, 110, 110), eyes=((40, 40), (80, 60)))
    matrix = alignment_matrix(face, 100, margin=1.0)
    eyes = np.array([[40, 40, 1], [80, 60, 1]], np.float64) @ matrix.T
    assert eyes[0, 1] == pytest.approx(eyes[1, 1])
    assert eyes[1, 0] - eyes[0, 0] == pytest.approx(math.hypot(40, 20))
    # The box centre (60, 60) lands on the crop centre.
    assert np.array([60, 60, 1]) @ matrix.T == pytest.approx([50, 50])


def test_alignment_without_eyes_is_the_box_with_margin():
    # Box 40 px wide, margin 1.25 -> a 50 px window scaled to 100: corners map to +-40 around 50.
    matrix = alignment_matrix(Face((20, 30, 60, 70)), 100, margin=1.25)
    assert np.array([[20, 30, 1], [60, 70, 1]]) @ matrix.T == pytest.approx(np.array([[10, 10], [90, 90]]))


def test_warped_image_has_level_eyes():
    import cv2

    # Draw two bright dots on a tilted line, warp, and find them again.
    image = np.zeros((120, 120, 3), np.uint8)
    cv2.circle(image, (40, 40), 3, (255, 255, 255), -1)
    cv2.circle(image, (80, 60), 3, (255, 255, 255), -1)
    detector = FaceDetector("haar")
    crop = detector.align(image, Face((10, 10, 110, 110), eyes=((40, 40), (80, 60))), 100)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    left, right = ys[xs < 50].mean(), ys[xs >= 50].mean()
    assert abs(left - right) < 1.0


def test_haar_finds_the_astronaut_and_nothing_in_a_blank_image():
    import skimage.data

    detector = FaceDetector("haar")
    faces = detector.detect(skimage.data.astronaut())
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # her face, not the flag or the suit
    assert detector.detect(np.full((100, 100, 3), 127, np.uint8)) == []


def test_yunet_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="YuNet model .* not found"):
        FaceDetector("yunet", tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="detector must be one of"):
        FaceDetector("mtcnn")


def test_yunet_when_available(real_data):
    import skimage.data

    path = real_data / "weights" / "face_detection_yunet_2026may.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    [face] = FaceDetector("yunet", path).detect(skimage.data.astronaut())
    assert face.eyes is not None and face.score > 0.5


# --- thresholds at a false accept rate, and identification (1:N) ---------------------------------


def test_threshold_at_far_is_the_largest_one_within_the_rate():
    from cvapps.faces import threshold_at_far

    # 4 different pairs at 0.3, 0.5, 0.7, 0.9 and 4 same pairs at 0.1, 0.2, 0.4, 0.6.
    distances = np.array([0.1, 0.2, 0.4, 0.6, 0.3, 0.5, 0.7, 0.9])
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    t, far, tar = threshold_at_far(distances, same, 0.25)  # one different pair may be accepted
    assert (t, far, tar) == (pytest.approx(0.45), 0.25, 0.75)
    t, far, tar = threshold_at_far(distances, same, 0.0)
    assert (t, far, tar) == (pytest.approx(0.25), 0.0, 0.5)
    assert np.mean(distances[same == 0] <= t) == 0 and np.mean(distances[same == 1] <= t) == 0.5
    with pytest.raises(ValueError, match=r"far must be a false accept rate in \[0, 1\)"):
        threshold_at_far(distances, same, 1.0)


def gallery_world(people=40, per_person=3, dim=16, noise=0.35, seed=0):
    """Unit embeddings of ``people`` random people, ``per_person`` noisy photos each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    codes = np.repeat(centres, per_person, axis=0) + noise * rng.normal(size=(people * per_person, dim))
    return (codes / np.linalg.norm(codes, axis=1, keepdims=True)).astype(np.float32), np.repeat(
        np.arange(people), per_person
    )


def test_strangers_are_named_more_often_in_bigger_galleries():
    """The defect: one threshold for 1:1 and 1:N. At a fixed threshold a stranger is named more
    often with more people enrolled; the 1:N threshold at a target rate is stricter."""
    from cvapps.faces import simulate_galleries

    codes, labels = gallery_world()
    small = simulate_galleries(codes, labels, gallery_people=2, trials=50, seed=1)
    big = simulate_galleries(codes, labels, gallery_people=20, trials=50, seed=1)
    assert len(small.stranger) == 50 * 38 * 3 and len(small.genuine) == 50 * 2 * 2
    assert big.false_name_rate(1.0) > small.false_name_rate(1.0)
    strict = big.threshold_at(0.01)
    assert big.false_name_rate(strict) <= 0.01 < big.false_name_rate(strict + 0.05)
    assert strict < small.threshold_at(0.01)
    assert 0 < big.correct_name_rate(strict) <= big.correct_name_rate(1.0) <= 1
    with pytest.raises(ValueError, match="needs more people"):
        simulate_galleries(codes, labels, gallery_people=40)


def test_training_stores_an_identification_threshold():
    from cvapps.faces.encoder import identify_threshold_from
    from cvapps.faces.train import identify_settings

    codes, labels = gallery_world(people=30)
    settings = identify_settings(codes, labels, gallery_people=10, false_name_rate=0.01, trials=40)
    assert settings["identify_gallery_people"] == 10 and set(settings["identify_false_name_rates"]) == {"10"}
    assert settings["identify_false_name_rates"]["10"] <= 0.01
    found = identify_threshold_from({"threshold": 1.2, **settings})
    assert found.source == "model" and found.value == settings["identify_threshold"] < 1.2
    assert identify_settings(codes[:6], labels[:6]) == {}  # 2 people: too few to simulate a gallery
    fallback = identify_threshold_from({"threshold": 1.2})
    assert (fallback.source, fallback.value) == ("verification", 1.2)
    assert "verification (1:1) threshold" in fallback.describe(2)


def test_roc_image_has_ticks_auc_and_eer():
    from cvapps.cli.faces import roc_image

    far = np.linspace(0, 1, 30)
    image = roc_image(far, np.sqrt(far), "pairs", size=200)
    assert image.shape == (200 + 96, 200 + 94, 3) and image.dtype == np.uint8
    assert image.min() == 0 and (image == 255).mean() > 0.5  # dark text and lines on white
    assert roc_image(np.array([0.0, 1.0]), np.array([0.0, 1.0]), auc=0.5, eer=0.5).shape == (516, 514, 3)
    with pytest.raises(ValueError, match="equal-length"):
        roc_image(np.zeros(3), np.zeros(2))
