"""cvapps label detect: a teacher's boxes become a YOLO folder that train detect reads."""

import json

import pytest
from click.testing import CliRunner

from cvapps.cli import cli


def test_a_cvapps_teacher_labels_a_folder_train_detect_can_read(tiny_detector, tmp_path):
    from cvapps.detection.formats import load_detection_sets
    from cvapps.detection.label import auto_label, open_teacher

    model_path, root, _ = tiny_detector
    teacher = open_teacher(model_path)
    assert teacher.layout == "cvapps" and teacher.class_names == ("red", "blue")
    report = auto_label(root / "images", teacher, tmp_path / "out", confidence_threshold=0.3)
    labels = sorted((tmp_path / "out" / "labels").glob("*.txt"))
    assert report.images == len(labels) == 4 and sum(report.boxes_per_class.values()) > 0
    for line in (line for f in labels for line in f.read_text().splitlines()):
        class_id, *box = line.split()
        assert class_id in ("0", "1") and all(0 <= float(v) <= 1 for v in box)  # normalised cx cy w h
    merged = load_detection_sets([tmp_path / "out"])
    assert merged.class_names == ("red", "blue") and len(merged) == 4 and not merged.problems
    # only blue, renumbered 0; an existing data.yaml needs overwrite
    with pytest.raises(ValueError, match="already holds a data.yaml"):
        auto_label(root / "images", teacher, tmp_path / "out", classes=["blue"])
    blue = auto_label(root / "images", teacher, tmp_path / "out", classes=["blue"], overwrite=True)
    assert blue.class_names == ("blue",) and set(blue.boxes_per_class) == {"blue"}
    with pytest.raises(ValueError, match="has no class 'zebra'"):
        auto_label(root / "images", teacher, tmp_path / "other", classes=["zebra"])


def test_a_teacher_of_another_layout_is_refused_naming_the_layouts(tmp_path):
    from cvapps.detection.label import open_teacher

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="junk.onnx: not an ONNX model.*YOLOX layout.*NanoDet layout"):
        open_teacher(junk)
    with pytest.raises(ValueError, match="missing.onnx: no such teacher file"):
        open_teacher(tmp_path / "missing.onnx")


@pytest.mark.parametrize("teacher", ["yolox_nano/yolox_nano_416.onnx", "nanodet_m/nanodet_m_416.onnx"])
def test_the_onnx_teachers_label_real_photos(real_data, tmp_path, teacher):
    path = real_data / "teachers" / teacher
    if not path.is_file():
        pytest.skip(f"{path} is not in the shared data")
    photos = sorted((real_data / "coco128" / "images").rglob("*.jpg"))[:4]
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos:
        (folder / photo.name).symlink_to(photo.resolve())
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = ["label", "detect", str(folder), "--teacher", str(path), "--output", str(out), "--json", str(report)]
    result = CliRunner().invoke(cli, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    record = json.loads(report.read_text())
    assert record["images"] == 4 and record["class_names"][:3] == ["person", "bicycle", "car"]  # COCO spelling
    # 000000000009.jpg holds bowls and broccoli (coco128's own labels): the teacher finds a bowl
    assert record["boxes_per_class"]["bowl"] >= 1, record["boxes_per_class"]
