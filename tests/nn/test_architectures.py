"""Classic architectures: published parameter counts, pyramid levels, the blocks they introduced."""

import numpy as np
import pytest

from cvapps.nn.architectures import (
    ARCHITECTURES,
    EXACT_STRIDES,
    NATIVE_INPUT,
    PARAMETERS,
    build_architecture,
)
from cvapps.nn.backbone import FAMILIES, Backbone, train_top_levels
from cvapps.nn.layers import LocalResponseNormalization


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_original_head_has_the_published_parameter_count(name):
    model = build_architecture(name)
    assert tuple(model.input_shape[1:]) == NATIVE_INPUT[name]
    assert model.count_params() == PARAMETERS[name]


@pytest.mark.parametrize(
    "name, application", [("vgg16", "VGG16"), ("resnet50", "ResNet50"), ("mobilenet", "MobileNet")]
)
def test_same_count_as_keras_applications(name, application):
    import keras

    reference = getattr(keras.applications, application)(weights=None)
    assert build_architecture(name).count_params() == reference.count_params()


def test_published_figures_within_rounding():
    # The papers' round numbers: LeNet-5 ~60K, AlexNet ~61M, VGG-16 ~138M, ResNet-50 ~25.6M, GoogLeNet ~6.8M.
    published = {
        "lenet5": 60e3,
        "alexnet": 61e6,
        "vgg16": 138e6,
        "resnet50": 25.6e6,
        "googlenet": 6.8e6,
        "mobilenet": 4.2e6,
    }
    for name, figure in published.items():
        assert abs(PARAMETERS[name] - figure) / figure < 0.05, name


def test_alexnet_grouped_convolution_halves_the_weights():
    model = build_architecture("alexnet")
    # conv2: 5x5 over 96 channels in 2 groups of 48: (5*5*48 + 1) * 256 = 307,456 (ungrouped: 614,656)
    assert model.get_layer("conv2").count_params() == (5 * 5 * 48 + 1) * 256 == 307_456
    # conv4: (3*3*192 + 1) * 384 = 663,936
    assert model.get_layer("conv4").count_params() == 663_936


def test_lenet5_layers_follow_the_paper():
    model = build_architecture("lenet5")
    # C1: (5*5*1 + 1) * 6 = 156; C3 (full connections): (5*5*6 + 1) * 16 = 2,416; C5: (400 + 1) * 120 = 48,120;
    # F6: (120 + 1) * 84 = 10,164; output: (84 + 1) * 10 = 850. Sum 61,706.
    counts = [model.get_layer(n).count_params() for n in ("c1", "c3", "c5", "f6", "logits")]
    assert counts == [156, 2416, 48120, 10164, 850] and sum(counts) == 61_706


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in ("compact", "mobilenetv2", "efficientnet_lite0")])
def test_every_classic_family_is_a_backbone(family):
    size = 96 if family == "alexnet" else 64
    backbone = Backbone(family=family, image_size=size)
    shapes = {k: tuple(v.shape[1:3]) for k, v in backbone.pyramid_outputs.items()}
    if family in EXACT_STRIDES:
        assert shapes == {"P2": (16, 16), "P3": (8, 8), "P4": (4, 4), "P5": (2, 2)}
    elif family == "lenet5":
        # 64 -> c1 60 -> s2 30 -> c3 26 (P1) -> s4 13 (P2)
        assert shapes == {"P1": (26, 26), "P2": (13, 13)}
    elif family == "airbench":
        # 64 -> 2x2 valid conv 63 -> pool 31 (P1) -> pool 15 (P2) -> pool 7 (P3)
        assert shapes == {"P1": (31, 31), "P2": (15, 15), "P3": (7, 7)}
    else:
        # AlexNet at 96: conv1 (96 - 11) // 4 + 1 = 22, pool (22 - 3) // 2 + 1 = 10, pool 4, pool 1
        assert shapes == {"P2": (22, 22), "P3": (10, 10), "P4": (4, 4), "P5": (1, 1)}
    features = backbone.predict_on_batch(np.zeros((1, size, size, 3), "float32"))
    assert set(features) == set(shapes)
    clone = Backbone.from_config(backbone.get_config())
    assert clone.count_params() == backbone.count_params()


def test_lenet5_backbone_reads_the_luminance():
    backbone = Backbone(family="lenet5", image_size=32)
    # one gray channel: C1 (5*5*1 + 1) * 6 = 156 plus C3 2,416
    assert backbone.count_params() == 156 + 2416


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="alexnet needs inputs of at least 67x67"):
        Backbone(family="alexnet", image_size=64)


def test_fine_tuning_a_pooling_level_is_refused():
    backbone = Backbone(family="vgg16", image_size=32)
    with pytest.raises(ValueError, match="vgg16 has no layer with weights at P5"):
        train_top_levels(backbone, "P5")
    train_top_levels(backbone, "P4")
    assert sorted(layer.name for layer in backbone.layers if layer.trainable_weights) == [
        "block5_conv1",
        "block5_conv2",
        "block5_conv3",
    ]


def test_local_response_normalisation_matches_the_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 2, 2, 7)).astype("float32") * 30
    out = np.asarray(LocalResponseNormalization()(x))
    # b[c] = a[c] / (2 + 1e-4 * sum_{|c' - c| <= 2} a[c']^2) ** 0.75
    squares = np.pad(x**2, [(0, 0)] * 3 + [(2, 2)])
    window = sum(squares[..., i : i + 7] for i in range(5))
    np.testing.assert_allclose(out, x / (2 + 1e-4 * window) ** 0.75, rtol=1e-5)


def test_classic_heads_in_the_apps():
    from cvapps.classification import build_classifier
    from cvapps.detection import build_detector

    lenet = build_classifier(Backbone(family="lenet5", image_size=32), 10, head="original")
    assert lenet.count_params() == PARAMETERS["lenet5"]
    with pytest.raises(ValueError, match="head='original' needs a classic family"):
        build_classifier(Backbone(family="compact", size="xs", image_size=32), 3, head="original")
    anchors = np.ones((3, 3, 2), "float32") * 8
    with pytest.raises(ValueError, match="lenet5 backbone uses 'valid' padding"):
        build_detector(Backbone(family="lenet5", image_size=64), 2, anchors)
    detector = build_detector(Backbone(family="mobilenet", image_size=64), 2, anchors, width=16)
    assert detector.predict_on_batch(np.zeros((1, 64, 64, 3), "float32")).shape[-1] == 7
    from cvapps.faces import build_face_model

    embedder = build_face_model(Backbone(family="lenet5", image_size=32), embedding_dim=8)  # pools P2
    assert embedder.predict_on_batch(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 8)


def test_unet_on_a_classic_encoder():
    from cvapps.segmentation import build_unet

    model = build_unet(2, family="vgg16", image_size=64, decoder_filters=[8, 8, 8, 8, 8])
    assert model.predict_on_batch(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 64, 64, 2)
    with pytest.raises(ValueError, match="alexnet uses 'valid' padding"):
        build_unet(2, family="alexnet", image_size=96)


def test_shipped_lenet5_reaches_its_card_accuracy(real_data):
    """The shipped LeNet-5 on the 10,000 MNIST test digits, as its card states (the paper: ~99%)."""
    from cvapps.classification import evaluate_classifier
    from cvapps.classification.data import load_classification
    from cvapps.models import load_model, model_card, model_info

    model = load_model("mnist_lenet5")
    assert model.count_params() == PARAMETERS["lenet5"]
    data = load_classification(real_data / "mnist" / "mnist.npz", model_info(model).image_size, split="test")
    assert len(data) == 10000
    metrics = evaluate_classifier(model, data)
    assert metrics["top1"] >= model_card("mnist_lenet5")["metrics"]["top1"] - 0.002 >= 0.989


def test_apps_train_on_classic_backbones_from_the_cli(tmp_path):
    """`--backbone NAME` in train classify (LeNet-5 with its own head) and train detect (MobileNet)."""
    from click.testing import CliRunner
    from conftest import make_shapes_dataset

    from cvapps.cli import cli
    from cvapps.models import load_model

    shapes = make_shapes_dataset(tmp_path / "shapes", per_class=4)
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "classify",
            str(shapes),
            "--output",
            str(tmp_path / "lenet.keras"),
            "--backbone",
            "lenet5",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--checkpoint-dir",
            str(tmp_path / "r1"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output (84 + 1) * 2 = 170: 61,026
    assert load_model(tmp_path / "lenet.keras").count_params() == 61_026
    squares = _random_squares(tmp_path / "squares", images=12)
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "detect",
            str(squares),
            "--output",
            str(tmp_path / "det.keras"),
            "--backbone",
            "mobilenet",
            "--image-size",
            "64",
            "--width",
            "8",
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--no-augment",
            "--checkpoint-dir",
            str(tmp_path / "r2"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        cli,
        ["detect", str(squares / "images"), "--model", str(tmp_path / "det.keras"), "--runtime", "keras", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "detect",
            str(squares),
            "--output",
            str(tmp_path / "bad.keras"),
            "--backbone",
            "alexnet",
            "--image-size",
            "96",
            "--epochs",
            "1",
            "--checkpoint-dir",
            str(tmp_path / "r3"),
            "--quiet",
        ],
    )
    assert result.exit_code == 2 and "alexnet backbone uses 'valid' padding" in result.output


def _random_squares(root, images):
    """YOLO-format images of 64x64 with 2 red squares of random sizes each (anchors need varied boxes)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(images):
        pixels = np.full((64, 64, 3), 128, np.uint8)
        lines = []
        for _ in range(2):
            side = int(rng.integers(8, 30))
            x, y = rng.integers(0, 64 - side, 2)
            pixels[y : y + side, x : x + side] = (230, 30, 30)
            lines.append(f"0 {(x + side / 2) / 64} {(y + side / 2) / 64} {side / 64} {side / 64}")
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        (root / "labels" / f"{i}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_grouped_conv_equals_keras_grouped_conv():
    """GroupedConv2D (g separate convolutions, exportable) computes what Conv2D(groups=g) does."""
    import keras

    from cvapps.nn.layers import GroupedConv2D

    x = np.random.default_rng(0).normal(size=(2, 9, 9, 8)).astype("float32")
    ours = GroupedConv2D(6, 3, groups=2, strides=2, padding="same")
    reference = keras.layers.Conv2D(6, 3, groups=2, strides=2, padding="same")
    ours.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(ours.get_weights())
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(reference(x)), atol=1e-5)
    # (3*3*8/2 + 1) * 6 = 222
    assert ours.count_params() == reference.count_params() == 222


def test_faces_train_takes_imagenet_weights_only_for_mobilenetv2():
    from cvapps.cli.faces import _default_weights

    assert _default_weights(None, "mobilenetv2") == "imagenet"
    assert _default_weights(None, "resnet50") is None
    assert _default_weights("none", "mobilenetv2") is None
