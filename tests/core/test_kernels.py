"""Hand-made kernels (cvapps.core.kernels) and their Keras layer (cvapps.nn.kernel_layers.FixedConv2D)."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from cvapps.core.kernels import (
    KERNELS,
    apply_kernel,
    default_mode,
    filter_image,
    luminance,
    response_image,
)


def reference_correlation(gray, kernel):
    """Plain-loop cross-correlation with zero padding ("same"): the definition, no library."""
    kh, kw = kernel.shape
    padded = np.pad(gray.astype(np.float64), ((kh // 2,) * 2, (kw // 2,) * 2))
    out = np.zeros(gray.shape)
    for y in range(gray.shape[0]):
        for x in range(gray.shape[1]):
            out[y, x] = np.sum(kernel * padded[y : y + kh, x : x + kw])
    return out


def test_sobel_on_the_4x4_ramp_is_8_everywhere():
    image = np.arange(1, 17, dtype=np.float32).reshape(4, 4)  # [[1 2 3 4] [5 6 7 8] [9 .. 12] [13 .. 16]]
    # Top-left window [[1 2 3] [5 6 7] [9 10 11]] with sobel-x [[-1 0 1] [-2 0 2] [-1 0 1]]:
    # 1*(3 - 1) + 2*(7 - 5) + 1*(11 - 9) = 2 + 4 + 2 = 8, and the ramp is the same in every window.
    assert apply_kernel(image, "sobel-x", padding="valid").tolist() == [[8, 8], [8, 8]]
    # sobel-y: bottom row minus top row is 8 in every column, weighted 1 + 2 + 1: 32.
    assert apply_kernel(image, "sobel-y", padding="valid").tolist() == [[32, 32], [32, 32]]


def test_the_course_vertical_edge_example():
    # 6x6: left half 10, right half 0; [[1 0 -1]] * 3 responds 30 on the two middle columns
    # (3 rows * (10 - 0)) and 0 where the window sees one value only.
    image = np.zeros((6, 6), np.float32)
    image[:, :3] = 10
    assert apply_kernel(image, "vertical-edge", padding="valid").tolist() == [[0, 30, 30, 0]] * 4
    # sobel-x has the opposite sign convention (brighter to the RIGHT is positive): -(10 + 20 + 10).
    assert apply_kernel(image, "sobel-x", padding="valid")[0].tolist() == [0, -40, -40, 0]


def test_line_and_laplacian_hand_cases():
    line = np.zeros((5, 5), np.float32)
    line[2] = 1.0  # one bright row
    response = apply_kernel(line, "horizontal-line", padding="valid")  # rows 1..3 of the image
    # Centred on the line: 3 * 2 * 1 = 6; one row off: the line falls on a -1 row: -3.
    assert response[:, 0].tolist() == [-3, 6, -3]
    assert np.all(apply_kernel(line, "vertical-line", padding="valid") == 0)  # a horizontal line: no vertical line
    dot = np.zeros((3, 3), np.float32)
    dot[1, 1] = 1.0
    assert apply_kernel(dot, "laplacian").tolist() == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]


@pytest.mark.parametrize("name", list(KERNELS))
def test_every_kernel_matches_the_definition(name):
    gray = np.random.default_rng(1).integers(0, 256, (7, 9)).astype(np.float32)
    expected = reference_correlation(gray, KERNELS[name].astype(np.float64))
    np.testing.assert_allclose(apply_kernel(gray, name, padding="same"), expected, rtol=1e-5, atol=1e-3)
    valid = apply_kernel(gray, name, padding="valid")
    np.testing.assert_allclose(valid, expected[1:-1, 1:-1], rtol=1e-5, atol=1e-3)


def test_named_kernels_equal_opencv_operators():
    # OpenCV's own operators use BORDER_REFLECT_101, our "reflect" padding.
    gray = np.random.default_rng(2).integers(0, 256, (12, 10)).astype(np.float32)
    cases = {
        "sobel-x": cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3),
        "sobel-y": cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3),
        "scharr-x": cv2.Scharr(gray, cv2.CV_32F, 1, 0),
        "scharr-y": cv2.Scharr(gray, cv2.CV_32F, 0, 1),
        "laplacian": cv2.Laplacian(gray, cv2.CV_32F, ksize=1),
        "box-blur": cv2.blur(gray, (3, 3)),
        "gaussian-blur": cv2.GaussianBlur(gray, (3, 3), 0),
    }
    for name, expected in cases.items():
        np.testing.assert_allclose(
            apply_kernel(gray, name, padding="reflect"), expected, rtol=1e-5, atol=1e-3, err_msg=name
        )


def test_luminance_of_rgb_and_gray():
    # 0.299 * 100 + 0.587 * 50 + 0.114 * 200 = 29.9 + 29.35 + 22.8 = 82.05
    assert luminance(np.array([[[100, 50, 200]]], np.uint8))[0, 0] == pytest.approx(82.05, abs=1e-4)
    assert luminance(np.full((2, 2, 1), 7, np.uint8)).tolist() == [[7, 7], [7, 7]]
    with pytest.raises(
        ValueError, match=r"expected an \(H, W, 3\) RGB or \(H, W\) gray image; received shape \(2, 2, 4\)"
    ):
        luminance(np.zeros((2, 2, 4)))


def test_response_pictures():
    response = np.array([[-2.0, 0.0, 4.0]])
    assert response_image(response, "abs")[0, :, 0].tolist() == [128, 0, 255]  # 255 * |r| / 4
    assert response_image(response, "signed")[0, :, 0].tolist() == [64, 128, 255]  # 128 + 127 * r / 4
    assert response_image(np.array([[-3.0, 100.4, 300.0]]), "clip")[0, :, 0].tolist() == [0, 100, 255]
    assert response_image(np.zeros((2, 2)), "signed").max() == 128  # no response: mid-gray
    picture = filter_image(np.full((5, 6, 3), 90, np.uint8), "sharpen")  # auto -> clip; a flat image stays flat
    assert picture.shape == (5, 6, 3) and picture.dtype == np.uint8 and np.all(picture == 90)
    assert default_mode("laplacian") == "abs" and default_mode("box-blur") == "clip"
    # saturate=25: the peak is the 75th percentile of |r| = [0, 1, 2, 8] -> 3.5, so 8 is clipped to white.
    assert response_image(np.array([[0.0, 1.0, 2.0, 8.0]]), "abs", saturate=25)[0, :, 0].tolist() == [0, 73, 146, 255]


def test_errors_name_what_was_wrong():
    with pytest.raises(ValueError, match=r"unknown kernel 'sobel'; expected one of: sobel-x, sobel-y, scharr-x"):
        apply_kernel(np.zeros((4, 4)), "sobel")
    with pytest.raises(ValueError, match=r"padding must be one of same, valid, reflect; received 'full'"):
        apply_kernel(np.zeros((4, 4)), "sobel-x", padding="full")
    with pytest.raises(ValueError, match=r"image of 2x5 pixels is smaller than the 3x3 kernel"):
        apply_kernel(np.zeros((2, 5)), "sobel-x", padding="valid")
    with pytest.raises(ValueError, match=r"odd sides such as \(3, 3\); received shape \(2, 2\)"):
        apply_kernel(np.zeros((4, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"mode must be one of abs, signed, clip; received 'log'"):
        response_image(np.zeros((2, 2)), "log")


def test_cli_kernel_names_are_the_library_names():
    from cvapps.cli.visualise import KERNEL_NAMES

    assert KERNEL_NAMES == tuple(KERNELS)


def test_fixed_conv2d_equals_apply_kernel_and_does_not_train():
    import keras

    from cvapps.nn.kernel_layers import FixedConv2D

    images = np.random.default_rng(3).integers(0, 256, (2, 9, 11, 3)).astype(np.float32)
    names = list(KERNELS)
    for padding in ("same", "valid"):
        layer = FixedConv2D(names, padding=padding)
        output = np.asarray(layer(images))
        expected = np.stack([np.stack([apply_kernel(image, name, padding) for name in names], -1) for image in images])
        assert output.shape == expected.shape == ((2, 9, 11, 13) if padding == "same" else (2, 7, 9, 13))
        np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-2)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 1
    model = keras.Sequential(
        [keras.Input((9, 11, 3)), layer, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)]
    )
    assert len(model.trainable_weights) == 2  # the Dense kernel and bias only
    gray = FixedConv2D([[[0, 0, 0], [0, 2, 0], [0, 0, 0]]])  # a custom array: doubles a gray image
    assert np.asarray(gray(np.ones((1, 3, 3, 1), np.float32))).ravel().tolist() == [2.0] * 9
    assert gray.names == ["custom"]
    with pytest.raises(ValueError, match=r"all kernels must have one shape"):
        FixedConv2D(["sobel-x", np.ones((5, 5))])
    with pytest.raises(ValueError, match=r"unknown kernel 'edge'"):
        FixedConv2D(["edge"])
    with pytest.raises(
        ValueError, match=r"FixedConv2D takes RGB \(3 channels\) or gray \(1 channel\) images; received 4"
    ):
        FixedConv2D()(np.zeros((1, 4, 4, 4), np.float32))


def test_fixed_conv2d_survives_save_and_safe_load(tmp_path):
    import keras

    from cvapps.models import save_model
    from cvapps.nn.kernel_layers import FixedConv2D
    from cvapps.nn.layers import Metadata

    inputs = keras.Input((None, None, 3), name="images")
    edges = FixedConv2D(["sobel-x", "laplacian", [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], name="edges")(inputs)
    model = keras.Model(inputs, Metadata(task="classify", class_names=[])(edges))
    path = tmp_path / "edges.keras"
    save_model(model, path)
    image = np.random.default_rng(4).integers(0, 256, (1, 6, 5, 3)).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "expected.npy", np.asarray(model.predict_on_batch(image)))
    # A fresh process: cvapps.models.load_model alone must register FixedConv2D (safe_mode=True).
    code = (
        "import numpy as np, sys; from cvapps.models import load_model; "
        f"m = load_model({str(path)!r}); d = {str(tmp_path)!r}; "
        "np.testing.assert_allclose(m.predict_on_batch(np.load(d + '/image.npy')), np.load(d + '/expected.npy'), atol=1e-4); "
        "print(m.get_layer('edges').kernels)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['sobel-x', 'laplacian', [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]"
