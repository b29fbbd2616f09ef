"""Pictures of what layers learn (cvapps.toolbox.visualise) and the four commands (cvapps.cli.visualise)."""

import math

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cvapps.cli.visualise import register
from cvapps.toolbox.visualise import (
    feature_maps,
    filter_tiles,
    first_conv_layer,
    first_layer_filters,
    top_patches,
)


@pytest.fixture(scope="module")
def classifier():
    """An untrained compact-xs classifier on 32x32 inputs (the filters are its random init)."""
    from cvapps.classification import build_classifier
    from cvapps.nn.backbone import Backbone

    return build_classifier(Backbone(family="compact", size="xs", image_size=32), 3)


@pytest.fixture(scope="module")
def classifier_path(classifier, tmp_path_factory):
    from cvapps.models import save_model

    path = tmp_path_factory.mktemp("vis") / "tiny.keras"
    save_model(classifier, path)
    return path


@pytest.fixture(scope="module")
def cli():
    @click.group()
    def group():
        pass

    register(group, None, None, None)
    return group


def square_image(side, top, left, square, brightness):
    image = np.zeros((side, side, 3), np.uint8)
    image[top : top + square, left : left + square] = brightness
    return image


def square_photos(folder, side, step, left, square):
    """3 photos with a bright square moving down by ``step`` pixels, and one corrupt JPEG."""
    folder.mkdir()
    for k in range(3):
        Image.fromarray(square_image(side, step * k, left, square, 255)).save(folder / f"{k}.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


# --- first-layer filters -----------------------------------------------------------------------


def test_filter_tiles_normalise_each_filter():
    kernel = np.zeros((3, 3, 3, 2), np.float32)
    kernel[0, 0, 0, 0] = 2.0  # filter 0: one red pixel, the rest 0 -> red 255 there, everything else 0
    kernel[:, :, :, 1] = -1.0  # filter 1: constant -> all 0
    kernel[1, 1, 1, 1] = 1.0  # ... except one green value, the max
    red, green = filter_tiles(kernel)
    assert red[0, 0].tolist() == [255, 0, 0] and red.sum() == 255
    assert green[1, 1].tolist() == [0, 255, 0] and green.sum() == 255
    assert len(filter_tiles(np.ones((3, 3, 4, 5)), depthwise=True)) == 20  # 4 channels x multiplier 5, gray


def test_first_layer_filters_of_a_compact_classifier(classifier):
    layer = first_conv_layer(classifier)  # found inside the nested "backbone" model
    assert layer.name == "stem_1_conv" and tuple(layer.kernel.shape) == (3, 3, 3, 8)
    picture = first_layer_filters(classifier, tile=48, title=False)
    # 8 filters of 3x3 upscaled x16 = 48 px, ceil(sqrt(8)) = 3 columns and 3 rows, 2-px gaps: 3 * 48 + 2 * 2 = 148.
    assert picture.shape == (148, 148, 3) and picture.dtype == np.uint8
    kernel = np.asarray(layer.kernel)[:, :, :, 0]
    expected = np.rint((kernel - kernel.min()) * 255 / (kernel.max() - kernel.min()))
    np.testing.assert_array_equal(picture[0:48:16, 0:48:16], expected)  # one sample per 16x16 block
    titled = first_layer_filters(classifier)
    assert titled.shape[0] == 148 + 24 and titled.shape[1] >= 148


def test_first_layer_filters_of_fixed_and_depthwise_layers():
    import keras

    from cvapps.nn.kernel_layers import FixedConv2D

    fixed = keras.Sequential([keras.Input((8, 8, 3)), FixedConv2D(["sobel-x", "laplacian"])])
    picture = first_layer_filters(fixed, tile=3, title=False)  # 2 gray filters, 2 columns, no upscaling
    assert picture.shape == (3, 8, 3)
    # sobel-x: min -2, max 2 -> (w + 2) * 255 / 4: -1 -> 63.75, 0 -> 127.5, 1 -> 191.25 (rounded half to even).
    assert picture[:, :3, 0].tolist() == [[64, 128, 191], [0, 128, 255], [64, 128, 191]]
    depthwise = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.DepthwiseConv2D(3)])
    assert first_layer_filters(depthwise, tile=3, title=False).shape == (3 * 2 + 2, 2 * 3 + 2, 3)  # 3 gray tiles
    with pytest.raises(ValueError, match=r"has no Conv2D, DepthwiseConv2D or FixedConv2D layer"):
        first_layer_filters(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


# --- feature maps ------------------------------------------------------------------------------


def test_feature_maps_draws_the_chosen_levels(classifier):
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)
    result = feature_maps(classifier, image, levels=("P2", "P5"), max_channels=4)
    assert result.levels == ("P2", "P5") and result.input_size == (32, 32)
    assert result.shapes == {"P2": (8, 8, 16), "P5": (1, 1, 128)}  # strides 4 and 32 of 32 pixels
    assert all(len(c) == 4 and list(c) == sorted(c) for c in result.channels.values())
    assert result.image.dtype == np.uint8 and result.image.ndim == 3
    # The 4 most active P2 channels, computed independently through the backbone.
    import keras

    from cvapps.core.sources import resize_square

    backbone = classifier.get_layer("backbone")
    probe = keras.Model(backbone.input, backbone.pyramid_outputs["P2"])
    maps = np.asarray(probe.predict_on_batch(resize_square(image, 32)[None].astype(np.float32)))[0]
    assert result.channels["P2"] == tuple(sorted(np.argsort(-maps.mean(axis=(0, 1)), kind="stable")[:4].tolist()))


def test_feature_maps_errors(classifier):
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"unknown level 'P9'; this backbone has: P2, P3, P4, P5"):
        feature_maps(classifier, image, levels=("P9",))
    with pytest.raises(ValueError, match=r"colour map must be 'viridis' or 'gray'; received 'jet'"):
        feature_maps(classifier, image, colours="jet")
    with pytest.raises(ValueError, match=r"no such file"):
        feature_maps(classifier, "missing.jpg")


def test_a_unet_encoder_serves_as_the_backbone():
    """A nested functional model whose output is a dict of levels (a cvapps U-Net's "encoder")."""
    import keras

    inputs = keras.Input((16, 16, 3))
    p1 = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    p2 = keras.layers.Conv2D(6, 3, strides=2, padding="same")(p1)
    encoder = keras.Model(inputs, {"P1": p1, "P2": p2}, name="encoder")
    outer = keras.Input((16, 16, 3))
    levels = encoder(outer)
    model = keras.Model(outer, keras.layers.UpSampling2D(4)(levels["P2"]))
    result = feature_maps(model, np.zeros((16, 16, 3), np.uint8), levels=("P1", "P2"))
    assert result.shapes == {"P1": (8, 8, 4), "P2": (4, 4, 6)}
    with pytest.raises(ValueError, match=r"unknown level 'P5'; this backbone has: P1, P2"):
        feature_maps(model, np.zeros((16, 16, 3), np.uint8), levels=("P5",))


# --- top patches -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blur_model():
    """A one-level "backbone" whose only unit is the 3x3 mean brightness: its strongest position
    is inside the brightest square."""
    import keras

    from cvapps.nn.kernel_layers import FixedConv2D

    inputs = keras.Input((32, 32, 3))
    level = FixedConv2D(["box-blur"])(inputs)
    model = keras.Model(inputs, level)
    model.pyramid_outputs = {"P1": level}
    return model


def test_top_patches_finds_the_brightest_square(blur_model):
    # 64x64 images (halved to the model's 32x32), a 6x6 square each (3x3 in the input, so the 3x3
    # mean peaks at its centre only); brightness ranks them.
    layout = [(8, 40, 100), (40, 16, 250), (24, 24, 200), (48, 48, 150)]  # (top, left, brightness)
    images = [square_image(64, top, left, 6, value) for top, left, value in layout]
    result = top_patches(blur_model, images, level="P1", units=[0], top=3, cell=12, geometry=(3, 1, 0))
    [patches] = result.patches
    assert [p.source for p in patches] == ["array[1]", "array[2]", "array[3]"]  # 250, 200, 150
    best = patches[0]
    # The square at (40, 16), side 6 is at (20, 8), side 3 in the 32x32 input (area averaging of 2x2
    # blocks); the 3x3 mean is 250 only centred on it: input row 21, column 9.
    assert (best.row, best.col, best.value) == (21, 9, pytest.approx(250.0, abs=1e-3))
    # The 3-pixel window centred on input pixel 21 spans [20, 23) in continuous coordinates; x2 back
    # to the 64-pixel original: [40, 46), exactly the square. Columns: [8, 11) -> [16, 22).
    assert best.box == (16, 40, 22, 46)
    assert result.units == (0,) and result.images == 4 and result.skipped == ()
    assert result.geometry == (3.0, 1.0, 0.0)
    # The picture: a label column and 3 cells of 12 px (2-px gaps) under a title bar; the top patch is bright.
    assert result.image.shape[1] >= 3 * 12 + 2 * 2
    assert result.image.shape[0] == 22 + 2 + 12
    assert (result.image == 250).all(axis=2).sum() == 12 * 12  # the top cell is the square, nothing else is


def test_top_patches_positions_are_the_activation_maxima(classifier):
    import keras

    images = [np.random.default_rng(k).integers(0, 256, (48, 40, 3), np.uint8) for k in range(4)]
    result = top_patches(classifier, images, level="P3", top=2, batch_size=3, geometry=(11, 8, 3.5))
    assert len(result.units) == 8 and len(result.patches) == 8  # None -> the 8 most strongly activated units
    backbone = classifier.get_layer("backbone")
    probe = keras.Model(backbone.input, backbone.pyramid_outputs["P3"])
    from cvapps.core.sources import resize_square

    maps = np.asarray(probe.predict_on_batch(np.stack([resize_square(i, 32) for i in images]).astype(np.float32)))
    strongest = maps.max(axis=(1, 2)).max(axis=0)  # (C,) each unit's maximum over all images
    assert list(result.units) == np.argsort(-strongest, kind="stable")[:8].tolist()
    for unit, patches in zip(result.units, result.patches):
        ranking = np.argsort(-maps[..., unit].reshape(4, -1).max(axis=1), kind="stable")[:2]
        assert [p.source for p in patches] == [f"array[{n}]" for n in ranking]
        for patch in patches:
            n = int(patch.source[6:-1])
            row, col = np.unravel_index(np.argmax(maps[n, :, :, unit]), maps.shape[1:3])
            assert (patch.row, patch.col) == (row, col)
            assert patch.value == pytest.approx(maps[n, row, col, unit], rel=1e-4, abs=1e-5)


def test_top_patches_with_the_receptive_field_of_the_backbone(classifier, tmp_path):
    from cvapps.toolbox.explain import level_geometry

    folder = square_photos(tmp_path / "photos", 32, 4, 8, 10)
    result = top_patches(classifier, folder, level="P4", units=[1, 5], top=4, cell=16)
    g = level_geometry(classifier.get_layer("backbone"), "P4")
    assert result.geometry == (g.size, g.jump, g.start)
    assert result.units == (1, 5) and result.images == 3
    assert [len(p) for p in result.patches] == [3, 3]  # one patch per image, 3 images for top=4
    assert len(result.skipped) == 1 and "corrupt.jpg" in result.skipped[0]


def test_top_patches_errors(classifier, tmp_path):
    images = [np.zeros((32, 32, 3), np.uint8)]
    with pytest.raises(
        ValueError, match=r"units must be channel indices in 0..63 of P4 \(64 channels\); received \[64\]"
    ):
        top_patches(classifier, images, level="P4", units=[64], geometry=(3, 1, 0))
    with pytest.raises(ValueError, match=r"unknown level 'P1'; this backbone has: P2, P3, P4, P5"):
        top_patches(classifier, images, level="P1", geometry=(3, 1, 0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"folder holds no images"):
        top_patches(classifier, tmp_path / "empty", geometry=(3, 1, 0))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"no readable image to search; skipped: .*x.png: not an image"):
        top_patches(classifier, tmp_path / "bad", geometry=(3, 1, 0))
    with pytest.raises(ValueError, match=r"top must be a positive integer; received 0"):
        top_patches(classifier, images, top=0, geometry=(3, 1, 0))


# --- CLI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["filter", "filters", "features", "patches"])
def test_help(cli, command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_cli_filter(cli, tmp_path):
    photo = tmp_path / "photo.png"
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, 15:] = 200  # one vertical edge
    Image.fromarray(image).save(photo)
    out = tmp_path / "edges.png"
    result = CliRunner().invoke(cli, ["filter", str(photo), "--kernel", "sobel-x", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    edges = np.asarray(Image.open(out))
    assert edges.shape == (20, 30, 3)
    assert edges[:, 14:16, 0].min() == 255 and edges[:, :13].max() == 0  # white on the edge, black elsewhere
    again = CliRunner().invoke(cli, ["filter", str(photo), "--kernel", "sobel-x", "--output", str(out)])
    assert again.exit_code == 2 and "already exists; pass --overwrite" in again.output
    bad = CliRunner().invoke(cli, ["filter", str(photo), "--kernel", "sobel", "--output", str(out)])
    assert bad.exit_code == 2 and "'sobel' is not one of 'sobel-x'" in bad.output


def test_cli_filter_folder_reports_a_corrupt_file(cli, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(folder / "a.png")
    (folder / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    result = CliRunner().invoke(
        cli, ["filter", str(folder), "--kernel", "laplacian", "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert "b.jpg" in result.output and (tmp_path / "out" / "a.png").is_file()


def test_cli_filters_and_features(cli, classifier_path, tmp_path):
    out = tmp_path / "filters.png"
    result = CliRunner().invoke(cli, ["filters", str(classifier_path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    height, width = np.asarray(Image.open(out)).shape[:2]
    assert height == 22 + 2 + 148 and width >= 148  # title bar, gap, the 148-px grid (the title may be wider)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 36, 3), np.uint8)).save(photo)
    maps = tmp_path / "maps.png"
    result = CliRunner().invoke(
        cli, ["features", str(classifier_path), str(photo), "--level", "P2", "--level", "P3", "--output", str(maps)]
    )
    assert result.exit_code == 0, result.output
    assert "P2: 8x8x16, 16 channels drawn" in result.output and maps.is_file()
    bad = CliRunner().invoke(
        cli, ["features", str(classifier_path), str(photo), "--level", "P7", "--output", str(tmp_path / "x.png")]
    )
    assert bad.exit_code == 2 and "unknown level 'P7'; this backbone has: P2, P3, P4, P5" in bad.output
    assert not (tmp_path / "x.png").exists()


def test_cli_patches(cli, classifier_path, tmp_path):
    folder = square_photos(tmp_path / "photos", 40, 5, 10, 12)
    out = tmp_path / "patches.png"
    result = CliRunner().invoke(
        cli,
        [
            "patches",
            str(classifier_path),
            str(folder),
            "--level",
            "P3",
            "--units",
            "0,3",
            "--top",
            "2",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 1  # one file could not be read: reported, the rest processed
    assert "corrupt.jpg" in result.output and "units 0, 3" in result.output and out.is_file()
    bad = CliRunner().invoke(
        cli, ["patches", str(classifier_path), str(folder), "--units", "a,b", "--output", str(tmp_path / "y.png")]
    )
    assert bad.exit_code == 2 and "--units must be comma-separated channel numbers" in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    none = CliRunner().invoke(cli, ["patches", str(classifier_path), str(empty), "--output", str(tmp_path / "z.png")])
    assert none.exit_code == 2 and "folder holds no images" in none.output


def test_cli_help_imports_nothing_heavy():
    import subprocess
    import sys

    # The CLI package's command bodies use NumPy (cheap); OpenCV, Keras and TensorFlow stay out of --help.
    code = "import sys, cvapps.cli.visualise; print([m for m in ('cv2', 'keras', 'tensorflow') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_real_photo_pictures(real_data, tmp_path):
    """The shipped ImageNet-initialised hymenoptera model on real photos (skips without CVAPPS_DATA)."""
    from cvapps.models import shipped_models

    if "hymenoptera" not in shipped_models():
        pytest.skip("the hymenoptera model is not shipped in this checkout")
    photos = sorted((real_data / "hymenoptera" / "train" / "ants").glob("*.jpg"))[:6]
    picture = first_layer_filters("hymenoptera")
    assert picture.shape[1] >= 4 * 48  # 32 RGB 3x3 filters of EfficientNet-Lite0's stem in a grid
    maps = feature_maps("hymenoptera", photos[0], levels=("P2", "P4"))
    assert maps.shapes["P2"][:2] == (56, 56) and maps.shapes["P4"][:2] == (14, 14)  # 224 px / 4 and / 16
    found = top_patches("hymenoptera", photos, level="P3", top=3)
    assert len(found.units) == 8 and found.images == 6
    assert all(math.isfinite(p.value) for row in found.patches for p in row)
