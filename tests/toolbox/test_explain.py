"""cvapps explain: the textbook arithmetic, checked against Keras on every family."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cvapps.cli import cli
from cvapps.cli.common import BACKBONE_FAMILIES
from cvapps.cli.explain import ARCHITECTURE_NAMES
from cvapps.nn.architectures import ARCHITECTURES, PARAMETERS, build_architecture
from cvapps.nn.backbone import Backbone
from cvapps.toolbox.explain import (
    conv_output_size,
    conv_params,
    explain,
    level_geometry,
    same_padding,
)


def test_output_size_formula():
    # 6x6 input, 3x3 filter: (6 + 0 - 3) // 1 + 1 = 4
    assert conv_output_size(6, 3) == 4
    # padding 1: (6 + 2 - 3) // 1 + 1 = 6 ("same": p = (f - 1) / 2 = 1)
    assert conv_output_size(6, 3, padding=1) == conv_output_size(6, 3, padding="same") == 6
    # stride 2: floor((6 + 0 - 3) / 2) + 1 = floor(1.5) + 1 = 2; with padding 1: floor(5 / 2) + 1 = 3
    assert conv_output_size(6, 3, s=2) == 2 and conv_output_size(6, 3, s=2, padding=1) == 3
    # LeNet's C1: (32 - 5) + 1 = 28; AlexNet's conv1: (227 - 11) // 4 + 1 = 55
    assert conv_output_size(32, 5) == 28 and conv_output_size(227, 11, s=4) == 55
    # "same" at stride 2 pads (ceil(7 / 2) - 1) * 2 + 3 - 7 = 2, output ceil(7 / 2) = 4
    assert same_padding(7, 3, 2) == 2 and conv_output_size(7, 3, 2, "same") == 4
    with pytest.raises(ValueError, match="padding must be 'valid', 'same' or a non-negative int"):
        conv_output_size(6, 3, padding="full")


def test_parameter_formula():
    # (5*5*3 + 1) * 6 = 456: the 5x5 convolution with 6 filters on a 32x32x3 input
    assert conv_params(5, 3, 6) == 456
    # AlexNet conv2 in 2 groups: (5*5*96/2 + 1) * 256 = 307,456
    assert conv_params(5, 96, 256, groups=2) == 307_456


def test_pooling_on_the_textbook_example():
    import keras

    image = np.arange(1, 17, dtype="float32").reshape(1, 4, 4, 1)  # rows 1-4, 5-8, 9-12, 13-16
    # max of each 2x2 block: max(1, 2, 5, 6) = 6, max(3, 4, 7, 8) = 8, max(9, 10, 13, 14) = 14, 16
    maximum = keras.layers.MaxPooling2D(2)(image)
    np.testing.assert_array_equal(np.asarray(maximum)[0, ..., 0], [[6, 8], [14, 16]])
    # mean: (1 + 2 + 5 + 6) / 4 = 3.5, (3 + 4 + 7 + 8) / 4 = 5.5, (9 + 10 + 13 + 14) / 4 = 11.5, 13.5
    average = keras.layers.AveragePooling2D(2)(image)
    np.testing.assert_array_equal(np.asarray(average)[0, ..., 0], [[3.5, 5.5], [11.5, 13.5]])


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_explain_agrees_with_keras_on_every_family(name):
    model = build_architecture(name)
    report = explain(model)
    assert report.mismatches == []
    assert report.total_params == report.keras_params == PARAMETERS[name]
    assert report.total_macs > 0


@pytest.mark.parametrize("family", BACKBONE_FAMILIES)
def test_explain_agrees_on_every_backbone_at_a_small_size(family):
    size = 96 if family == "alexnet" else 64
    report = explain(Backbone(family=family, size="xs", alpha=0.35, image_size=size))
    assert report.mismatches == []
    assert report.total_params == report.keras_params
    backbone_levels = set(Backbone(family=family, size="xs", alpha=0.35, image_size=size).pyramid_outputs)
    assert {row.level for row in report.rows if row.level} == backbone_levels


def test_explain_walks_nested_models_and_any_size_inputs():
    from cvapps.classification import build_classifier

    model = build_classifier(Backbone(family="compact", size="xs", image_size=None), 3)
    with pytest.raises(ValueError, match="takes any image size"):
        explain(model)
    report = explain(model, input_shape=(32, 32, 3))
    assert report.mismatches == [] and report.total_params == model.count_params()
    assert report.rows[0].name.startswith("backbone/")
    with pytest.raises(TypeError, match="functional keras.Model"):
        explain("resnet50")


def test_lessons_of_the_textbook():
    # A 5x5 conv with 6 filters on 32x32x3: (5*5*3 + 1) * 6 = 456 parameters; a dense layer to the same
    # 28x28x6 output: (32*32*3 + 1) * (28*28*6) = 3,073 * 4,704 = 14,455,392.
    lenet = " ".join(explain(build_architecture("lenet5", input_shape=(32, 32, 3))).lessons)
    assert "456 parameters" in lenet and "14,455,392" in lenet
    # Inception 3a, 5x5 branch on 28x28x192: direct 28*28*5*5*192*32 = 120,422,400; via a 1x1 to 16:
    # 28*28*192*16 + 28*28*5*5*16*32 = 2,408,448 + 10,035,200 = 12,443,648.
    googlenet = " ".join(explain(build_architecture("googlenet")).lessons)
    assert "inception_3a_5x5" in googlenet and "120,422,400" in googlenet and "12,443,648" in googlenet
    assert "p = (f - 1) / 2: 3x3 -> p = 1, 5x5 -> p = 2" in googlenet
    # MobileNet block 7 (14x14, 512 -> 512): full 14*14*9*512*512 = 462,422,016; separable
    # 14*14*9*512 + 14*14*512*512 = 903,168 + 51,380,224 = 52,283,392.
    mobilenet = " ".join(explain(build_architecture("mobilenet")).lessons)
    assert "462,422,016" in mobilenet and "52,283,392" in mobilenet


def test_receptive_field_by_hand_and_by_perturbation():
    # VGG-16 P2: two 3x3 convs (r 1 -> 3 -> 5), pool 2 (6, jump 2), two convs (10, 14), pool (16, jump 4),
    # three convs (16 + 3 * 2 * 4 = 40). Centres: "same" convs keep them; each 2x2 pool adds half its
    # window: 0 + 0.5 * 1 + 0.5 * 2 = 1.5.
    assert tuple(vars(level_geometry(Backbone(family="vgg16", image_size=64), "P2")).values()) == (40.0, 4.0, 1.5)
    # LeNet-5 P2 (all valid): c1 r 5 start 2; s2 r 6 jump 2 start 2.5; c3 r 14 start 6.5; s4 r 16 jump 4 start 7.5
    backbone = Backbone(family="lenet5", image_size=32)
    g = level_geometry(backbone, "P2")
    assert (g.size, g.jump, g.start) == (16.0, 4.0, 7.5)
    # Output (2, 2) is centred on 7.5 + 2 * 4 = 15.5 and sees pixels 8..23: perturbing row 8 or 23
    # changes it, row 7 or 24 does not.
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    base = backbone.predict_on_batch(image)["P2"][0, 2, 2]
    for row, changes in ((7, False), (8, True), (23, True), (24, False)):
        poked = image.copy()
        poked[0, row, 15] += 100
        moved = not np.allclose(backbone.predict_on_batch(poked)["P2"][0, 2, 2], base)
        assert moved == changes, row


def test_cli_lists_stay_in_step_with_the_library():
    from cvapps.nn.backbone import FAMILIES
    from cvapps.segmentation import FAMILIES as SEGMENTATION_FAMILIES

    assert tuple(BACKBONE_FAMILIES) == tuple(FAMILIES)
    assert tuple(SEGMENTATION_FAMILIES) == ("unet", *FAMILIES)
    assert tuple(ARCHITECTURE_NAMES) == tuple(ARCHITECTURES)


def test_explain_command(tmp_path):
    out = tmp_path / "lenet.json"
    result = CliRunner().invoke(
        cli, ["explain", "lenet5", "--input-size", "32", "32", "--channels", "3", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "total: 62,006 parameters (Keras counts 62,006)" in result.output
    assert "agrees with Keras" in result.output
    report = json.loads(out.read_text())
    assert report["layers"][0]["output_shape"] == [28, 28, 6] and report["layers"][0]["params"] == 456
    result = CliRunner().invoke(cli, ["explain", "alexnet", "--input-size", "32", "32"])
    assert result.exit_code == 2 and "alexnet needs inputs of at least 67x67" in result.output
    result = CliRunner().invoke(cli, ["explain", "resnet5O"])
    assert result.exit_code == 2 and "resnet5O" in result.output


def test_explain_agrees_with_keras_on_every_shipped_model():
    import keras

    from cvapps.models import load_model, shipped_models

    for name in shipped_models():
        model = load_model(name)
        shape = tuple(model.inputs[0].shape[1:])
        if shape[0] is None:  # any-size models (U-Nets, style nets): at 128x128
            shape = (128, 128, shape[-1])
            inputs = keras.Input(shape)
            model = keras.Model(inputs, model(inputs))
        report = explain(model, input_shape=shape)
        assert report.mismatches == [], name
        assert report.total_params == model.count_params(), name


def test_top_level_exports_resolve():
    import cvapps

    for name in cvapps.__all__:
        assert callable(getattr(cvapps, name)), name
