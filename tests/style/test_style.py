"""Style transfer (issue 6): costs on hand-made activations, the optimisation, the fast net, controls, CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cvapps.cli import cli
from cvapps.style import (
    Stylized,
    blend,
    content_cost,
    gram_matrix,
    pad_to_multiple,
    preserve_colors,
    style_cost,
    total_variation,
)


def test_gram_matrix_hand_computed():
    # One image, 2x1 positions, 2 channels: a = [[1, 2], [3, 0]] (rows: positions, columns: channels).
    # G_kk' = 1/(H W) sum_ij a_ijk a_ijk' with H W = 2:
    # G_00 = (1*1 + 3*3) / 2 = 5, G_01 = G_10 = (1*2 + 3*0) / 2 = 1, G_11 = (2*2 + 0*0) / 2 = 2.
    a = np.array([[1.0, 2.0], [3.0, 0.0]], np.float32).reshape(1, 2, 1, 2)
    np.testing.assert_allclose(np.asarray(gram_matrix(a))[0], [[5, 1], [1, 2]])
    # A batch keeps one Gram per image.
    assert np.asarray(gram_matrix(np.concatenate([a, 2 * a]))).shape == (2, 2, 2)


def test_content_cost_hand_computed():
    # a_C = [1, 2, 3, 4], a_G = [1, 0, 3, 0]: differences 0, 2, 0, 4, squares 0, 4, 0, 16,
    # mean 20 / 4 = 5, J = 1/2 * 5 = 2.5.
    c = np.array([1, 2, 3, 4], np.float32).reshape(1, 2, 1, 2)
    g = np.array([1, 0, 3, 0], np.float32).reshape(1, 2, 1, 2)
    assert float(np.asarray(content_cost(c, g))[0]) == pytest.approx(2.5)
    assert float(np.asarray(content_cost(c, c))[0]) == 0.0


def test_style_cost_hand_computed():
    # G_S = [[5, 1], [1, 2]], G_G = [[3, 1], [1, 0]]: differences [[2, 0], [0, 2]], squares sum 8,
    # J = 1/(4 n_C^2) * 8 = 8 / 16 = 0.5 (n_C = 2), the same as 1/4 of the mean 8/4 = 2.
    gs = np.array([[5, 1], [1, 2]], np.float32)
    gg = np.array([[[3, 1], [1, 0]]], np.float32)
    assert float(np.asarray(style_cost(gs, gg))[0]) == pytest.approx(0.5)


def test_total_variation_hand_computed():
    # Columns 0 and 255 in a 2x2 image: vertical differences 0, horizontal differences 255/255 = 1.
    # TV = mean(0^2) + mean(1^2) = 1.
    image = np.zeros((1, 2, 2, 3), np.float32)
    image[:, :, 1] = 255
    assert float(np.asarray(total_variation(image))[0]) == pytest.approx(1.0)


def _tiny_network():
    from cvapps.nn.backbone import Backbone
    from cvapps.style import LossNetwork

    return LossNetwork(Backbone(family="compact", size="xs"), "random_compact_xs", "P3", {"P2": 1, "P3": 1})


def test_loss_network_levels_by_pyramid_key():
    from cvapps.nn.backbone import Backbone
    from cvapps.style import LossNetwork

    network = _tiny_network()
    assert network.style_levels == {"P2": 0.5, "P3": 0.5}  # weights normalised to sum to 1
    with pytest.raises(ValueError, match="not a pyramid key"):
        LossNetwork(Backbone(family="compact", size="xs"), "x", "block_2_add")
    with pytest.raises(ValueError, match="loss network must be one of"):
        from cvapps.style import build_loss_network

        build_loss_network("vgg19")


def test_a_few_optimisation_steps_lower_the_total_cost():
    from cvapps.style import optimize_image

    rng = np.random.default_rng(0)
    content = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    painting = np.zeros((32, 32, 3), np.uint8)
    painting[::4] = (255, 200, 0)  # stripes
    image, history = optimize_image(content, painting, steps=8, learning_rate=8.0, loss_network=_tiny_network())
    assert image.shape == content.shape and image.dtype == np.uint8
    assert history["loss"][-1] < history["loss"][0]
    assert history["content_loss"][0] == pytest.approx(0.0, abs=1e-6)  # G starts as the content


def test_pad_to_multiple_and_fast_net_keeps_odd_sizes():
    from cvapps.style import build_transformer, stylize_array

    assert pad_to_multiple(np.zeros((8, 4, 3)), 4)[0].shape == (8, 4, 3)
    net = build_transformer(width=4, residual_blocks=1)
    for h, w in ((37, 51), (5, 3), (64, 17)):
        out = stylize_array(net, np.full((h, w, 3), 120, np.uint8))
        assert out.shape == (h, w, 3) and out.dtype == np.uint8


def test_controls_strength_colour_and_result_checks():
    content = np.full((2, 2, 3), 100, np.uint8)
    stylized = np.zeros((2, 2, 3), np.uint8)
    assert blend(content, stylized, 0) is content
    # 0.25 * 100 + 0.75 * 0 = 25.
    assert blend(content, stylized, 0.75).tolist() == np.full((2, 2, 3), 25).tolist()
    # Grey content keeps grey whatever the stylised colours; Y of (0, 255, 0) = 0.587 * 255 = 149.7.
    assert preserve_colors(np.array([[[0, 255, 0]]], np.uint8), content[:1, :1]).tolist() == [[[150, 150, 150]]]
    with pytest.raises(ValueError, match="method must be one of"):
        Stylized(content, "x", "slow", 1.0, False, 0.1)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        Stylized(np.zeros((2, 2)), "x", "fast", 1.0, False, 0.1)


@pytest.fixture(scope="session")
def tiny_style(tmp_path_factory):
    """A fast style net trained for a few steps on random photos (with the tiny loss network)."""
    from PIL import Image

    from cvapps.style import train_style

    root = tmp_path_factory.mktemp("style")
    rng = np.random.default_rng(0)
    (root / "photos").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "photos" / f"{i}.png")
    Image.fromarray(np.tile(np.array([[[255, 200, 0]], [[0, 0, 128]]], np.uint8), (16, 32, 1))).save(root / "paint.png")
    result = train_style(
        root / "paint.png",
        [root / "photos"],
        root / "tiny.keras",
        image_size=32,
        batch_size=2,
        epochs=2,
        steps_per_epoch=2,
        style_size=32,
        loss_network=_tiny_network(),
        width=4,
        residual_blocks=1,
        checkpoint_dir=root / "run",
        verbose=0,
    )
    return result, root


def test_train_style_saves_a_loadable_model_with_samples(tiny_style):
    from cvapps.models import load_model, model_info

    result, root = tiny_style
    info = model_info(load_model(result.model_path, task="style"))
    assert info.image_size is None and info.settings["stride"] == 4
    assert info.settings["style_image"] == "paint.png" and info.settings["loss_network"] == "random_compact_xs"
    history = result.history["main"]
    assert set(history) >= {"loss", "content_loss", "style_loss"} and len(history["loss"]) == 2
    assert sorted(p.name for p in (root / "run" / "samples").iterdir()) == ["epoch_001.jpg", "epoch_002.jpg"]


def test_stylize_strength_zero_returns_the_content_and_sizes_follow(tiny_style):
    from cvapps.style import StyleOptions, stylize

    result, root = tiny_style
    content = np.random.default_rng(1).integers(0, 255, (21, 30, 3), dtype=np.uint8)
    [same] = stylize(content, style=str(result.model_path), strength=0)
    assert np.array_equal(same.image, content) and same.method == "fast"
    [out] = stylize(content, style=str(result.model_path), size=15, preserve_color=True, runtime="keras")
    assert out.image.shape == (10, 15, 3) and out.style == "tiny"  # 21 * 15 / 30 = 10.5, rounded to even
    blended = StyleOptions(blend_style=str(result.model_path), blend_weight=0.3)
    [mixed] = stylize(content, style=str(result.model_path), options=blended)
    assert mixed.style == "tiny+tiny" and mixed.image.shape == content.shape
    # a batch and a list give one result per image, in order, with their sources
    batch = stylize(np.stack([content, content[::-1]]), style=str(result.model_path))
    assert [r.image.shape for r in batch] == [content.shape] * 2 and batch[1].source == "array"
    with pytest.raises(ValueError, match=r"blend_weight must be in \[0, 1\], received 2"):
        StyleOptions(blend_weight=2)
    with pytest.raises(TypeError, match="options must be a StyleOptions, received dict"):
        stylize(content, style=str(result.model_path), options={"steps": 3})
    with pytest.raises(ValueError, match="strength must be between 0 and 1"):
        stylize(content, style=str(result.model_path), strength=1.5)
    with pytest.raises(ValueError, match="for any painting use method 'optimize'"):
        stylize(content, style=str(root / "paint.png"), method="fast")


def test_onnx_export_takes_any_height_and_width(tiny_style, tmp_path):
    pytest.importorskip("tf2onnx")
    from cvapps.export import export_model
    from cvapps.runtime import open_model
    from cvapps.style import stylize_array

    result, _ = tiny_style
    # Outputs are pixels in [0, 255]; on the flat black and white sample images instance norm
    # divides float noise by sqrt(epsilon), so the two runtimes may differ by a fraction of a level.
    report = export_model(result.model_path, output=tmp_path / "tiny.onnx", tolerance=1.0)
    assert report.max_abs_diff <= 1.0
    onnx = open_model(tmp_path / "tiny.onnx", task="style", runtime="onnx")
    keras_model = open_model(result.model_path, task="style", runtime="keras")
    image = np.random.default_rng(2).integers(0, 255, (23, 41, 3), dtype=np.uint8)
    a, b = stylize_array(onnx, image), stylize_array(keras_model, image)
    assert a.shape == (23, 41, 3) and np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize("path", [["stylize"], ["styles"], ["train", "style"], ["eval", "style"], ["webcam", "style"]])
def test_style_commands_have_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_cli_stylize_and_eval_on_a_folder(tiny_style, tmp_path):
    from PIL import Image

    result, root = tiny_style
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(folder / "a.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    run = CliRunner().invoke(
        cli,
        [
            "stylize",
            str(folder),
            "--style",
            str(result.model_path),
            "--output",
            str(tmp_path / "out"),
            "--strength",
            "0.5",
            "--quiet",
        ],
    )
    assert run.exit_code == 1 and "broken.jpg" in run.output  # the bad file named, the rest written
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]
    bad = CliRunner().invoke(
        cli, ["stylize", str(folder / "a.png"), "--style", str(root / "paint.png"), "--method", "fast"]
    )
    assert bad.exit_code == 2 and "method 'optimize'" in bad.output


def test_webcam_style_headless_on_a_video(tiny_style, tmp_path):
    import cv2

    result, _ = tiny_style
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (40, 30))
    for i in range(5):
        writer.write(np.full((30, 40, 3), 40 * i, np.uint8))
    writer.release()
    run = CliRunner().invoke(
        cli,
        [
            "webcam",
            "style",
            "--style",
            str(result.model_path),
            "--source",
            str(video),
            "--no-show",
            "--output",
            str(tmp_path / "out.avi"),
            "--max-frames",
            "3",
            "--size",
            "32",
        ],
    )
    assert run.exit_code == 0, run.output
    assert "3 frames" in run.output and (tmp_path / "out.avi").is_file()


def test_eval_style_report_on_a_folder(tiny_style, tmp_path):
    from PIL import Image

    result, _ = tiny_style
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((24, 32, 3), 60 + 100 * i, np.uint8)).save(folder / f"{i}.png")
    report = tmp_path / "eval.json"
    run = CliRunner().invoke(
        cli,
        [
            "eval",
            "style",
            str(folder),
            "--style",
            str(result.model_path),
            "--size",
            "32",
            "--loss-network",
            "cifar10",
            "--json",
            str(report),
            "--quiet",
        ],
    )
    assert run.exit_code == 0, run.output
    data = json.loads(report.read_text())
    assert data["task"] == "style" and data["num_images"] == 2
    assert data["metrics"]["loss_network"] == "cifar10_compact_s" and data["metrics"]["method"] == "fast"
    assert data["metrics"]["content_loss"] > 0 and data["metrics"]["style_loss"] > 0


def test_optimize_with_a_real_painting(real_data):
    from cvapps.style import stylize

    painting = real_data / "style" / "paintings" / "starry_night.jpg"
    from cvapps.style import StyleOptions

    photo = real_data / "style" / "photos" / "tubingen.jpg"
    [out] = stylize(photo, style=str(painting), size=48, options=StyleOptions(steps=3))
    assert out.method == "optimize" and max(out.image.shape[:2]) == 48 and out.style == "starry_night"


def test_shipped_styles_stylise_a_photo(real_data):
    from cvapps.style import shipped_styles, stylize

    styles = shipped_styles()
    if not styles:
        pytest.skip("no shipped styles")
    photo = real_data / "style" / "photos" / "chicago.jpg"
    for name in styles:
        [out] = stylize(photo, style=name, size=200)
        assert out.method == "fast" and max(out.image.shape[:2]) == 200
        [unchanged] = stylize(photo, style=name, size=200, strength=0)
        content = unchanged.image
        assert np.abs(out.image.astype(int) - content.astype(int)).mean() > 10  # visibly changed
