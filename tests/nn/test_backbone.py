import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cvapps.nn.backbone import COMPACT_SIZES, LEVELS, Backbone, build_backbone  # noqa: E402


@pytest.mark.parametrize("block", ["residual", "inverted"])
def test_compact_levels_have_their_strides(block):
    backbone = Backbone(family="compact", size="xs", block=block, image_size=64)
    widths = COMPACT_SIZES["xs"]["widths"]
    # P2..P5 are strides 4, 8, 16, 32: 64 / 4 = 16, ..., 64 / 32 = 2.
    assert {k: tuple(v.shape) for k, v in backbone.pyramid_outputs.items()} == {
        "P2": (None, 16, 16, widths[0]),
        "P3": (None, 8, 8, widths[1]),
        "P4": (None, 4, 4, widths[2]),
        "P5": (None, 2, 2, widths[3]),
    }


def test_any_input_size_when_image_size_is_none():
    backbone = Backbone(family="compact", size="xs", image_size=None)
    features = backbone.predict_on_batch(np.zeros((1, 96, 160, 3), "float32"))
    assert [features[k].shape[1:3] for k in LEVELS] == [(24, 40), (12, 20), (6, 10), (3, 5)]


def test_mobilenetv2_family_levels():
    backbone = Backbone(family="mobilenetv2", alpha=0.35, image_size=96)
    shapes = {k: tuple(v.shape[1:3]) for k, v in backbone.pyramid_outputs.items()}
    assert shapes == {"P2": (24, 24), "P3": (12, 12), "P4": (6, 6), "P5": (3, 3)}


def test_config_round_trip_rebuilds_same_architecture():
    backbone = Backbone(family="compact", size="xs", block="inverted", image_size=64)
    clone = Backbone.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    assert clone.count_params() == backbone.count_params()


def test_saved_model_loads_in_safe_mode_with_same_outputs(tmp_path):
    backbone = Backbone(family="compact", size="xs", image_size=32)
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.GlobalAveragePooling2D()(backbone(inputs)["P5"])
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


def test_preprocessing_is_inside_the_model():
    # Pixels in [0, 255] map to [-1, 1]: 0 -> -1, 127.5 -> 0, 255 -> 1.
    backbone = Backbone(family="compact", size="xs", image_size=32)
    layer = backbone.get_layer("preprocess")
    np.testing.assert_allclose(layer(np.array([[0.0, 127.5, 255.0]])), [[-1.0, 0.0, 1.0]], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"family": "resnet9000"}, "family must be one of"),
        ({"size": "huge"}, "size must be one of"),
        ({"block": "dense"}, "block must be one of"),
        ({"image_size": 16}, "image_size must be an integer of at least 32"),
    ],
)
def test_bad_arguments_say_what_was_expected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Backbone(**kwargs)


def test_weights_for_compact_family_are_refused():
    with pytest.raises(ValueError, match=r"needs a family with ImageNet weights \(mobilenetv2, efficientnet_lite0\)"):
        build_backbone(family="compact", weights="imagenet")


def test_imagenet_weights_offline_fail_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("CVAPPS_DATA", raising=False)
    monkeypatch.delenv("CVAPPS_WEIGHTS", raising=False)
    # alpha=0.5 has no local file anywhere; this machine has no internet, so the download fails.
    with pytest.raises(ValueError, match="mobilenet_v2_0.5_224_no_top_imagenet.weights.h5"):
        build_backbone(family="mobilenetv2", alpha=0.5, image_size=96, weights="imagenet")


def test_imagenet_weights_load_from_the_local_file(real_data, monkeypatch):
    monkeypatch.setenv("CVAPPS_DATA", str(real_data))
    backbone = build_backbone(family="mobilenetv2", alpha=0.35, image_size=96, weights="imagenet")
    reference = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    reference.load_weights(real_data / "weights" / "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5")
    x = np.random.default_rng(1).uniform(0, 255, (1, 96, 96, 3)).astype("float32")
    ours = backbone.predict_on_batch(x)["P5"]
    theirs = reference.predict_on_batch(x / 127.5 - 1.0)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_backbone_builds_and_runs_under_jax():
    code = (
        "import numpy as np; from cvapps.nn.backbone import Backbone; "
        "b = Backbone(family='compact', size='xs', image_size=64); "
        "out = b.predict_on_batch(np.zeros((1, 64, 64, 3), 'float32')); print(out['P5'].shape)"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 2, 2, 128)" in result.stdout
