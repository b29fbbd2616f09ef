"""Cases from the bad-input corpus (issue 18), each reproduced exactly, each a one-line answer."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from cvapps.cli import cli


def test_crops_never_leave_their_folder(tmp_path):
    from cvapps.cli.detect import _safe_name

    # ".." as a class name (from a model or data file) would write one level up
    for name in ("..", ".", "../../etc", "a/b", "..\\x"):
        part = _safe_name(name)
        assert part not in ("", ".", "..") and "/" not in part and (tmp_path / part).resolve().parent == tmp_path


def test_export_refuses_an_output_with_the_wrong_suffix(tiny_classifier, tmp_path):
    run = CliRunner().invoke(
        cli, ["export", str(tiny_classifier), "--format", "onnx", "--output", str(tmp_path / "x.txt")]
    )
    assert run.exit_code == 2 and "must end in .onnx" in run.output
    assert not (tmp_path / "x.txt").exists()


def test_json_to_a_folder_or_under_a_file_is_one_line(tiny_classifier, tmp_path):
    from PIL import Image

    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photo)
    folder = tmp_path / "d"
    folder.mkdir()
    run = CliRunner().invoke(cli, ["classify", str(photo), "--model", str(tiny_classifier), "--json", str(folder)])
    assert run.exit_code == 2 and f"{folder} is a folder" in run.output and ".d." not in run.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = CliRunner().invoke(
        cli, ["classify", str(photo), "--model", str(tiny_classifier), "--json", str(blocker / "r.jsonl")]
    )
    assert run.exit_code == 2 and "cannot write" in run.output and "Traceback" not in run.output


def test_a_truncated_npz_is_one_line(tmp_path):
    from cvapps.classification.data import load_npz

    good = tmp_path / "good.npz"
    np.savez(good, x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.arange(4))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"bad.npz: not a readable .npz"):
        load_npz(bad, 8)
    run = CliRunner().invoke(cli, ["train", "classify", str(bad), "--output", str(tmp_path / "m.keras"), "--quiet"])
    assert run.exit_code == 2 and "not a readable .npz" in run.output


def test_coco_json_without_ids_names_the_entry(tmp_path):
    from cvapps.detection.formats import load_coco

    path = tmp_path / "coco.json"
    path.write_text(
        json.dumps({"images": [{"file_name": "a.jpg", "id": 1}], "annotations": [], "categories": [{"name": "person"}]})
    )
    with pytest.raises(ValueError, match=r"coco.json: category 0 has no 'id'"):
        load_coco(path)


def test_voc_folders_named_annots_are_read(tmp_path):
    from PIL import Image

    from cvapps.detection.formats import load_detection

    (tmp_path / "images").mkdir()
    (tmp_path / "annots").mkdir()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "images" / "k1.jpg")
    (tmp_path / "annots" / "k1.xml").write_text(
        "<annotation><filename>k1.jpg</filename><size><width>60</width><height>40</height></size>"
        "<object><name>kangaroo</name><bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>20</ymax></bndbox>"
        "</object></annotation>"
    )
    data = load_detection(tmp_path)
    assert data.class_names == ("kangaroo",) and len(data) == 1
    # VOC is 1-based and inclusive: (11 - 1, 6 - 1, 30, 20)
    assert data.samples[0].boxes.tolist() == [[10.0, 5.0, 30.0, 20.0]]


def test_a_junk_onnx_beside_a_good_keras_falls_back_with_a_warning(tiny_classifier, tmp_path):
    from cvapps.runtime import KerasModel, open_model

    keras_path = shutil.copy(tiny_classifier, tmp_path / "m.keras")
    (tmp_path / "m.onnx").write_bytes(b"not an onnx file")
    with pytest.warns(UserWarning, match=r"m.onnx: not a loadable ONNX model.*Using the keras runtime"):
        assert isinstance(open_model(keras_path), KerasModel)
    with pytest.raises(ValueError, match="m.onnx: not a loadable ONNX model"):
        open_model(keras_path, runtime="onnx")


def test_explain_refuses_a_huge_input_size_in_one_line():
    from click.testing import CliRunner

    from cvapps.cli import cli

    result = CliRunner().invoke(cli, ["explain", "lenet5", "--input-size", "100000", "100000"])
    assert result.exit_code == 2 and "too large to build" in result.output and "Traceback" not in result.output


def test_junk_weights_and_detector_files_are_one_line(tmp_path):
    import numpy as np
    from click.testing import CliRunner
    from conftest import make_shapes_dataset
    from PIL import Image

    from cvapps.cli import cli

    junk_weights, junk_onnx, face = tmp_path / "junk.weights.h5", tmp_path / "junk.onnx", tmp_path / "face.png"
    junk_weights.write_bytes(b"junk")
    junk_onnx.write_bytes(b"junk")
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(face)
    result = CliRunner().invoke(
        cli, ["verify", str(face), str(face), "--detector", "yunet", "--detector-model", str(junk_onnx)]
    )
    assert result.exit_code == 2 and "not a YuNet face detector" in result.output, result.output
    data = make_shapes_dataset(tmp_path / "data", per_class=4)
    args = ["train", "classify", str(data), "--output", str(tmp_path / "m.keras"), "--family", "mobilenetv2"]
    args += [
        "--weights",
        str(junk_weights),
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--checkpoint-dir",
        str(tmp_path / "r"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "junk.weights.h5' cannot be loaded" in result.output, result.output
