import shutil
import subprocess
import sys

import numpy as np
import pytest

from cvapps.export import export_model, sample_inputs
from cvapps.runtime import KerasModel, OnnxModel, open_model

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tiny_classifier, tmp_path_factory):
    """A copy of the tiny classifier with its verified .onnx beside it."""
    folder = tmp_path_factory.mktemp("exported")
    keras_path = shutil.copy(tiny_classifier, folder / "tiny.keras")
    report = export_model(keras_path, format="onnx")
    return report


def test_export_writes_a_verified_onnx_with_metadata(exported):
    assert exported.path.suffix == ".onnx" and exported.path.is_file()
    assert exported.max_abs_diff <= 1e-4
    model = OnnxModel(exported.path)
    assert model.info.task == "classify" and model.info.class_names == ("bright", "dark")
    assert model.info.image_size == 32


def test_both_runtimes_give_the_same_answers(exported):
    from cvapps import classify

    images = [np.full((20, 30, 3), v, np.uint8) for v in (10, 240)]
    onnx_results = classify(images, model=exported.path.with_suffix(".keras"), top_k=2, runtime="onnx")
    keras_results = classify(images, model=exported.path.with_suffix(".keras"), top_k=2, runtime="keras")
    for a, b in zip(onnx_results, keras_results):
        assert a.class_names == b.class_names
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_auto_prefers_onnx_and_keras_runtime_is_available(exported):
    keras_path = exported.path.with_suffix(".keras")
    assert isinstance(open_model(keras_path), OnnxModel)
    assert isinstance(open_model(keras_path, runtime="keras"), KerasModel)
    with pytest.raises(ValueError, match="runtime must be one of"):
        open_model(keras_path, runtime="tensorrt")


def test_stale_onnx_is_never_used_silently(exported, tmp_path):
    from cvapps.models import load_model, save_model

    keras_path = tmp_path / "tiny.keras"
    onnx_path = shutil.copy(exported.path, tmp_path / "tiny.onnx")
    model = load_model(exported.path.with_suffix(".keras"))
    model.get_layer("logits").set_weights([w * 0.5 for w in model.get_layer("logits").get_weights()])
    save_model(model, keras_path)  # a retrained model beside the old export
    with pytest.warns(UserWarning, match="using the keras runtime"):
        assert isinstance(open_model(keras_path), KerasModel)
    with pytest.raises(ValueError, match="was exported from a different tiny.keras"):
        open_model(keras_path, runtime="onnx")
    assert onnx_path.is_file()


def test_onnx_runtime_without_an_export_says_how_to_make_one(tiny_classifier, tmp_path):
    keras_path = shutil.copy(tiny_classifier, tmp_path / "alone.keras")
    with pytest.raises(ValueError, match="cvapps export .*alone.keras --format onnx"):
        open_model(keras_path, runtime="onnx")


def test_onnx_without_cvapps_metadata_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "plain.onnx")
    with pytest.raises(ValueError, match="has no cvapps metadata"):
        OnnxModel(tmp_path / "plain.onnx")


def test_mismatching_export_fails_loudly_and_leaves_nothing(tiny_classifier, tmp_path, monkeypatch):
    from cvapps import export

    keras_path = shutil.copy(tiny_classifier, tmp_path / "m.keras")
    real = export.RUNNERS["onnx"]
    monkeypatch.setitem(export.RUNNERS, "onnx", lambda path, inputs: real(path, inputs) + 0.01)
    with pytest.raises(ValueError, match=r"does not match the Keras model: largest absolute difference 0.01"):
        export_model(keras_path, format="onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_export_refuses_to_overwrite(exported):
    with pytest.raises(ValueError, match="already exists; pass --overwrite"):
        export_model(exported.path.with_suffix(".keras"), format="onnx")


@pytest.mark.parametrize("format_, suffix", [("saved_model", ""), ("litert", ".tflite")])
def test_other_formats_are_verified_too(tiny_classifier, tmp_path, format_, suffix):
    keras_path = shutil.copy(tiny_classifier, tmp_path / "m.keras")
    report = export_model(keras_path, format=format_, output=tmp_path / f"m_{format_}{suffix}")
    assert report.path.exists() and report.max_abs_diff <= 1e-4


# Style nets output pixels in 0..255 and instance-normalise flat sample images (variance near 0), which
# magnifies float32 rounding: they are exported and checked at one grey level (--tolerance 1).
ONNX_TOLERANCE = {"style": 1.0}


def test_shipped_models_match_their_onnx():
    """Every shipped .keras with an .onnx beside it: same outputs, and the .onnx was made from it."""
    from cvapps.models import shipped_models

    pairs = [p for p in shipped_models().values() if p.with_suffix(".onnx").is_file()]
    if not pairs:
        pytest.skip("no shipped model has an .onnx")
    for keras_path in pairs:
        onnx_model = open_model(keras_path, runtime="onnx")  # raises if exported from another .keras
        keras_model = open_model(keras_path, runtime="keras")
        inputs = sample_inputs(keras_model.info.image_size)
        tolerance = ONNX_TOLERANCE.get(keras_model.info.task, 1e-4)
        np.testing.assert_allclose(
            onnx_model.predict(inputs), keras_model.predict(inputs), atol=tolerance, err_msg=str(keras_path)
        )
        assert onnx_model.info.class_names == keras_model.info.class_names


def test_onnx_predict_path_never_imports_tensorflow(exported, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "p.png")
    code = (
        "import sys; from cvapps import classify; "
        f"r = classify({str(tmp_path / 'p.png')!r}, model={str(exported.path.with_suffix('.keras'))!r}); "
        "from click.testing import CliRunner; from cvapps.cli import cli; "
        f"out = CliRunner().invoke(cli, ['classify', {str(tmp_path / 'p.png')!r}, '--model', "
        f"{str(exported.path.with_suffix('.keras'))!r}, '--quiet']); assert out.exit_code == 0, out.output; "
        "print(r[0].class_names[0], 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["bright", "False", "False"]


def test_detector_exports_and_detects_without_tensorflow(tiny_detector, tmp_path):
    """The detector's ONNX export matches Keras, and detection through it never imports TensorFlow."""
    model_path, root, _ = tiny_detector
    keras_path = shutil.copy(model_path, tmp_path / "squares.keras")
    report = export_model(keras_path, format="onnx")
    assert report.max_abs_diff <= 1e-4
    code = (
        "import sys; from cvapps.detection import detect; "
        f"[found] = detect({str(root / 'images' / '0.png')!r}, {str(keras_path)!r}, confidence_threshold=0.3); "
        "print(sorted(found.class_name), 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['blue', 'red'] False False"


def test_opened_models_are_cached_until_their_files_change(exported, tmp_path):
    from cvapps.runtime import clear_cache

    keras_path = shutil.copy(exported.path.with_suffix(".keras"), tmp_path / "tiny.keras")
    shutil.copy(exported.path, tmp_path / "tiny.onnx")
    clear_cache()
    first = open_model(keras_path)
    assert open_model(str(keras_path)) is first  # same file, same runtime: the opened model
    assert open_model(keras_path, runtime="keras") is not first  # another runtime is another entry
    stamp = first.path.stat().st_mtime_ns + 10**9
    import os

    os.utime(tmp_path / "tiny.onnx", ns=(stamp, stamp))  # re-exported in place: opened again
    assert open_model(keras_path) is not first
