"""Segmentation (issue 4): shapes at odd sizes, padding, losses and metrics on hand-made masks,
loaders and augmentation, a tiny overfit run, the CLI, and the shipped models on held-out data."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cvapps.segmentation import (
    Segmentation,
    blur_background,
    build_unet,
    confusion_matrix,
    cutout,
    overlay,
    pad_to_multiple,
    parse_loss,
    predict_probabilities,
    segment,
    segmentation_metrics,
)
from cvapps.segmentation.data import (
    SegmentationBatches,
    augment_pair,
    border_weights,
    load_segmentation,
    load_segmentation_sets,
    split_segmentation,
)

# --- tiny data -------------------------------------------------------------------------------------


def make_pairs(root, count=6, size=32, seed=0, layout=("image", "label"), binary=True):
    """Grey images with a bright square (class 1) on a dark background; masks 0/255 or 0/1."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, masks = Path(root) / layout[0], Path(root) / layout[1]
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(20, 60, (size, size, 3)).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        y, x = rng.integers(2, size // 2, 2)
        side = int(rng.integers(size // 4, size // 2))
        pixels[y : y + side, x : x + side] = rng.integers(180, 240, 3)
        mask[y : y + side, x : x + side] = 255 if binary else 1
        Image.fromarray(pixels).save(images / f"{i:02d}.png")
        Image.fromarray(mask).save(masks / f"{i:02d}.png")
    return Path(root)


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory):
    """(model path, data folder): a depth-2 U-Net overfitted on 4 squares images."""
    from cvapps.segmentation import train_segmenter

    root = tmp_path_factory.mktemp("seg")
    data_dir = make_pairs(root / "data", count=4)
    data = load_segmentation(data_dir)
    result = train_segmenter(
        data,
        root / "tiny.keras",
        family="unet",
        filters=8,
        depth=2,
        image_size=32,
        epochs=3,
        repeats=10,
        batch_size=4,
        learning_rate=1e-2,
        augment=False,
        checkpoint_dir=root / "run",
        verbose=0,
    )
    return result.model_path, data_dir


# --- model and shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("height,width", [(33, 47), (1, 5), (64, 64), (100, 31)])
def test_any_size_gives_the_original_resolution(height, width):
    model = build_unet(3, family="unet", filters=4, depth=5, tile=64)  # stride 32
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    p = predict_probabilities(model, image)
    assert p.shape == (height, width, 3)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-4)


def test_backbone_encoder_unet_at_odd_size_and_overlap_tiles():
    model = build_unet(2, family="compact", size="xs", decoder_filters=[16, 16, 8, 8, 8], tile=64)
    image = np.random.default_rng(1).integers(0, 255, (70, 150, 3), dtype=np.uint8)
    tiled = predict_probabilities(model, image)  # 150 > tile 64: overlap-tile
    whole = predict_probabilities(model, image, tile=None)
    assert tiled.shape == whole.shape == (70, 150, 2)
    np.testing.assert_allclose(tiled.sum(-1), 1.0, atol=1e-4)
    # Skips from the stem (stride 2) and every pyramid level: 4 concatenations + the full-res step.
    assert len([layer for layer in model.layers if layer.name.endswith("_concat")]) == 4


def test_pad_and_crop_round_trip():
    image = np.arange(33 * 47 * 3, dtype=np.float32).reshape(33, 47, 3)
    padded, (h, w) = pad_to_multiple(image, 32)
    assert padded.shape == (64, 64, 3)  # 33 -> 64, 47 -> 64
    np.testing.assert_array_equal(padded[:h, :w], image)
    same, _ = pad_to_multiple(np.zeros((64, 32, 3)), 32)
    assert same.shape == (64, 32, 3)


def test_build_errors_say_what_was_received():
    with pytest.raises(ValueError, match="num_classes must be an integer of at least 2"):
        build_unet(1)
    with pytest.raises(ValueError, match="family must be one of"):
        build_unet(2, family="resnet")
    with pytest.raises(ValueError, match="decoder_filters needs 2 values"):
        build_unet(2, family="unet", depth=2, decoder_filters=[8])
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        predict_probabilities(build_unet(2, family="unet", filters=2, depth=1), np.zeros((4, 4)))


# --- losses and metrics --------------------------------------------------------------------------


def _loss(terms, truth, probabilities, weights=None):
    from cvapps.segmentation import SegmentationLoss

    y_true = np.asarray(truth, np.float32)[None, ..., None]
    if weights is not None:
        y_true = np.concatenate([y_true, np.asarray(weights, np.float32)[None, ..., None]], -1)
    return float(SegmentationLoss(terms, 2)(y_true, np.asarray(probabilities, np.float32)[None]))


def test_loss_values_on_hand_made_masks():
    truth = np.array([[1, 1], [0, 0]])
    perfect = np.stack([1 - truth, truth], -1).astype(np.float32)
    half = np.full((2, 2, 2), 0.5, np.float32)
    assert _loss("ce", truth, perfect) == pytest.approx(0.0, abs=1e-5)
    assert _loss("dice", truth, perfect) == pytest.approx(0.0, abs=1e-5)
    # ce: -ln 0.5 = 0.6931 at every pixel.
    assert _loss("ce", truth, half) == pytest.approx(np.log(2), rel=1e-5)
    # focal: (1 - 0.5)^2 * ln 2 = 0.1733.
    assert _loss("focal", truth, half) == pytest.approx(0.25 * np.log(2), rel=1e-5)
    # dice (class 1): sum p y = 1, sum p + sum y = 2 + 2 -> 1 - (2 + 1) / (4 + 1) = 0.4.
    assert _loss("dice", truth, half) == pytest.approx(0.4, rel=1e-5)
    assert _loss("ce+dice", truth, half) == pytest.approx(np.log(2) + 0.4, rel=1e-5)
    # border weights: mean of w * ce = (3 + 1 + 1 + 1) / 4 * ln 2.
    assert _loss("ce", truth, half, [[3, 1], [1, 1]]) == pytest.approx(1.5 * np.log(2), rel=1e-5)


def test_parse_loss_errors():
    assert parse_loss("ce + 2*dice") == {"ce": 1.0, "dice": 2.0}
    with pytest.raises(ValueError, match="unknown loss term 'bce'"):
        parse_loss("bce+dice")


def test_metrics_on_hand_made_masks():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    predicted = np.array([[0, 1, 1, 1], [0, 0, 0, 1]])
    confusion = confusion_matrix(truth, predicted, 2)
    assert confusion.tolist() == [[3, 1], [1, 3]]
    m = segmentation_metrics(confusion, ("bg", "fg"))
    # IoU = 3 / (3 + 1 + 1) = 0.6 for both; Dice = 6 / (6 + 2) = 0.75; accuracy 6 / 8.
    assert m["miou"] == pytest.approx(0.6) and m["dice"] == pytest.approx(0.75)
    assert m["pixel_accuracy"] == pytest.approx(0.75)
    assert m["per_class"]["fg"] == {"iou": 0.6, "dice": 0.75, "pixels": 4}
    # A class absent from truth and prediction is left out of the means.
    m3 = segmentation_metrics(confusion_matrix(truth, truth, 3), ("bg", "fg", "other"))
    assert m3["miou"] == 1.0 and m3["per_class"]["other"]["pixels"] == 0


def test_border_weights_peak_between_touching_objects():
    mask = np.zeros((8, 12), np.uint8)
    mask[:, :5], mask[:, 6:] = 1, 1
    w = border_weights(mask, w0=10, sigma=5)
    assert w[4, 5] == pytest.approx(1 + 10 * np.exp(-4 / 50), rel=1e-3)  # d1 = d2 = 1
    assert w[4, 5] > w[4, 0] >= 1.0
    assert np.all(border_weights(np.zeros((4, 4), np.uint8)) == 1.0)


# --- data ------------------------------------------------------------------------------------------


def test_folder_pairs_report_bad_masks_by_file(tmp_path):
    from PIL import Image

    root = make_pairs(tmp_path / "d", count=4)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "label" / "01.png")  # wrong size
    bad = np.zeros((32, 32), np.uint8)
    bad[0, 0] = 7
    Image.fromarray(bad).save(root / "label" / "02.png")  # unknown class 7 in a binary set
    (root / "label" / "03.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "image" / "99.png")  # no mask
    data = load_segmentation(root, class_names=("background", "square"))
    assert len(data) == 1 and data.class_names == ("background", "square")
    text = "\n".join(data.problems)
    assert "01.png: mask is 10x10 but its image 01.png is 32x32" in text
    assert "02.png: unknown class value(s) [7]" in text
    assert "03.png: unreadable mask" in text
    assert "99.png: no mask named 99.png" in text
    assert set(np.unique(data.masks[0])) <= {0, 1}  # 0/255 -> 0/1


def test_layouts_pennfudan_coco_and_images_masks(tmp_path):
    from PIL import Image

    make_pairs(tmp_path / "plain", count=3, layout=("images", "masks"), binary=False)
    assert len(load_segmentation(tmp_path / "plain")) == 3
    penn = tmp_path / "penn"
    (penn / "images").mkdir(parents=True)
    (penn / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(penn / "images" / "P1.jpg")
    Image.fromarray(np.array([[0, 1, 2, 2]] * 8, np.uint8).repeat(2, 1)).save(penn / "masks" / "P1_mask.png")
    data = load_segmentation(penn)
    assert data.class_names == ("background", "person") and data.masks[0].max() == 1
    coco = tmp_path / "coco"
    (coco / "images" / "train2017").mkdir(parents=True)
    (coco / "masks" / "train2017").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(coco / "images" / "train2017" / "a.jpg")
    Image.fromarray(np.array([[0, 1, 3, 1]] * 4, np.uint8)).save(coco / "masks" / "train2017" / "a.png")
    data = load_segmentation(coco)  # person = COCO category 1; car (3) -> background
    assert data.masks[0][0].tolist() == [0, 1, 0, 1]
    merged = load_segmentation_sets([penn, coco], ["person"])
    assert len(merged) == 2
    train, held = split_segmentation(merged, 0.5, seed=0)
    assert len(train) == len(held) == 1
    with pytest.raises(ValueError, match="no segmentation layout found"):
        load_segmentation(tmp_path)


def test_augmentation_moves_image_and_mask_together(tmp_path):
    rng = np.random.default_rng(0)
    mask = np.zeros((64, 80), np.uint8)
    mask[10:40, 20:60] = 1
    image = np.where(mask[..., None] == 1, 200, 30).astype(np.uint8).repeat(3, 2)
    for _ in range(5):
        out_image, out_mask, _ = augment_pair(image, mask, 48, rng, rotate=30, elastic=1.0, colour=False, vflip=True)
        agree = (out_image[..., 0] > 115) == (out_mask == 1)
        assert agree.mean() > 0.97  # only interpolation at edges may differ
    batches = SegmentationBatches(_tiny_data(tmp_path), 32, 2, augment=True, repeats=2, border_weight=10)
    images, targets = batches[0]
    assert images.shape == (2, 32, 32, 3) and targets.shape == (2, 32, 32, 2)


def _tiny_data(folder):
    from PIL import Image

    from cvapps.segmentation.data import SegmentationData

    mask = np.zeros((40, 40), np.uint8)
    mask[5:15, 5:15], mask[5:15, 17:30] = 1, 1
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "a.png")
    return SegmentationData([folder / "a.png"], [mask], ("background", "thing"))


# --- tiny end-to-end ---------------------------------------------------------------------------------


def test_tiny_overfit_reaches_iou_near_one(tiny_segmenter):
    from cvapps.segmentation import evaluate_segmenter

    model_path, data_dir = tiny_segmenter
    metrics, figure = evaluate_segmenter(model_path, load_segmentation(data_dir), samples=2)
    assert metrics["per_class"]["foreground"]["iou"] > 0.9, metrics
    assert metrics["miou"] > 0.9
    assert figure.ndim == 3 and figure.shape[2] == 3


def test_segment_results_and_drawing(tiny_segmenter):
    model_path, _ = tiny_segmenter
    image = np.full((45, 37, 3), 40, np.uint8)
    image[10:30, 5:25] = 220
    [result] = segment(image, model_path)
    assert isinstance(result, Segmentation) and result.labels.shape == (45, 37)
    assert result.probabilities.shape == (45, 37, 2)
    assert result.mask()[20, 15] and not result.mask()[40, 33]
    assert overlay(image, result, 0.5).shape == (45, 37, 3)
    assert cutout(image, result).shape == (45, 37, 4)
    assert blur_background(image, result).shape == (45, 37, 3)
    with pytest.raises(ValueError, match="image is"):
        overlay(image[:10], result)
    with pytest.raises(ValueError, match="labels must be an"):
        Segmentation(np.zeros((2, 2, 2), np.float32), np.zeros((3, 3), np.uint8), ("a", "b"))


# --- CLI ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["segment"], ["train", "segment"], ["eval", "segment"], ["webcam", "segment"]])
def test_help(args):
    from cvapps.cli import cli

    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_cli_segment_and_eval(tiny_segmenter, tmp_path):
    from cvapps.cli import cli

    model_path, data_dir = tiny_segmenter
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("00.png", "01.png"):
        (folder / name).write_bytes((data_dir / "image" / name).read_bytes())
    (folder / "broken.png").write_bytes(b"nope")
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "segment",
            str(folder),
            "--model",
            str(model_path),
            "--output",
            str(tmp_path / "out"),
            "--json",
            str(tmp_path / "r.jsonl"),
            "--quiet",
        ],
    )
    assert result.exit_code == 1, result.output  # the broken file fails, the others are written
    assert len(list((tmp_path / "out").iterdir())) == 2
    assert "broken.png" in result.output
    result = runner.invoke(
        cli,
        [
            "segment",
            str(folder / "00.png"),
            "--model",
            str(model_path),
            "--cutout",
            "--output",
            str(tmp_path / "cut.png"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    # cut-outs into a folder are PNGs: an existing PNG is refused before any work, nothing written
    cuts = tmp_path / "cuts"
    cuts.mkdir()
    (cuts / "00.png").write_bytes(b"mine")
    args = ["segment", str(folder), "--model", str(model_path), "--cutout", "--output", str(cuts), "--quiet"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2 and "00.png already exists" in result.output, result.output
    assert sorted(p.name for p in cuts.iterdir()) == ["00.png"] and (cuts / "00.png").read_bytes() == b"mine"
    report = tmp_path / "eval.json"
    result = runner.invoke(
        cli,
        [
            "eval",
            "segment",
            str(data_dir),
            "--model",
            str(model_path),
            "--holdout",
            "0.5",
            "--json",
            str(report),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["task"] == "segment" and data["num_images"] == 2
    assert 0 <= data["metrics"]["miou"] <= 1 and "per_class" in data["metrics"]
    assert (tmp_path / "eval_samples.png").is_file()
    result = runner.invoke(cli, ["segment", str(folder / "00.png"), "--model", "cifar10", "--quiet"])
    assert result.exit_code == 2 and "segment" in result.output


# --- real data -------------------------------------------------------------------------------------


def _card_check(real_data, name, data, classes, tolerance=0.02):
    from cvapps.models import model_card, shipped_models
    from cvapps.segmentation import evaluate_segmenter

    if name not in shipped_models():
        pytest.skip(f"{name} is not shipped")
    card = model_card(name)
    merged = load_segmentation_sets([real_data / d for d in data], classes)
    _, held = split_segmentation(merged, card["holdout"], card.get("seed", 0))
    metrics, _ = evaluate_segmenter(name, held, samples=0)
    assert metrics["miou"] >= card["metrics"]["miou"] - tolerance, metrics
    assert metrics["dice"] >= card["metrics"]["dice"] - tolerance, metrics


def test_shipped_membrane_reaches_its_card(real_data):
    _card_check(real_data, "membrane", ["membrane"], None)


def test_shipped_person_seg_reaches_its_card(real_data):
    _card_check(real_data, "person_seg", ["pennfudan", "coco128"], ["person"])


def test_webcam_blur_on_a_real_video(real_data, tiny_segmenter, tmp_path):
    from cvapps.cli import cli

    model_path, _ = tiny_segmenter
    output = tmp_path / "x.mp4"
    result = CliRunner().invoke(
        cli,
        [
            "webcam",
            "segment",
            "--model",
            str(model_path),
            "--blur",
            "--source",
            str(real_data / "style" / "videos" / "fox.mp4"),
            "--no-show",
            "--output",
            str(output),
            "--max-frames",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert output.stat().st_size > 0
