"""cvapps eval detect: --by-source, the recall by size, and an ONNX teacher as --model."""

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from cvapps.cli import cli


def linked_copy(root, target):
    """A YOLO folder as 'cvapps label detect' writes it: its images/ are links to the photos in ``root``."""
    shutil.copytree(root / "labels", target / "labels")
    shutil.copy(root / "data.yaml", target / "data.yaml")
    (target / "images").mkdir()
    for image in (root / "images").iterdir():
        os.symlink(image.resolve(), target / "images" / image.name)


def test_by_source_groups_the_images_by_their_data_folder(tiny_detector, tmp_path):
    model_path, root, _ = tiny_detector
    shutil.copytree(root, tmp_path / "real")
    linked_copy(root, tmp_path / "real" / "labelled")  # nested, and its images resolve to neither folder
    sources = [str(tmp_path / "real"), str(tmp_path / "real" / "labelled")]
    report = tmp_path / "r.json"
    arguments = ["eval", "detect", *sources, "--model", str(model_path), "--by-source", "--json", str(report)]
    result = CliRunner().invoke(cli, [*arguments, "--holdout", "0.5", "--seed", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text())["metrics"]
    assert set(metrics["by_source"]) == set(sources)
    counts = [metrics["by_source"][s]["images"] for s in sources]
    assert sum(counts) == json.loads(report.read_text())["num_images"] == 4  # round(0.5 * 8) held out
    assert set(metrics["size_recall"]) == {"small", "medium", "large"}
    lines = result.output.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("source")))
    assert lines[header].split() == ["source", "images", "map50", "map50_95"]
    assert [line.split()[:2] for line in lines[header + 1 : header + 3]] == [
        [s, str(n)] for s, n in zip(sources, counts)
    ]
    # every square is 16..26 px a side: small
    assert lines[header + 3].startswith("recall by size @0.25: small ") and lines[header + 3].endswith(
        "medium - (0), large - (0)"
    )
    # without --holdout: all 4 + 4 images, 4 per source
    result = CliRunner().invoke(cli, [*arguments, "--overwrite", "--quiet"])
    assert result.exit_code == 0, result.output
    by_source = json.loads(report.read_text())["metrics"]["by_source"]
    assert [by_source[s]["images"] for s in sources] == [4, 4] and by_source[sources[1]]["map50"] == 1.0


def test_without_by_source_the_recall_by_size_is_still_reported(tiny_detector, tmp_path):
    model_path, root, _ = tiny_detector
    report = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["eval", "detect", str(root), "--model", str(model_path), "--json", str(report)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text())["metrics"]
    assert "by_source" not in metrics and "source" not in result.output
    # 6 squares, all found at 0.25 (the fixture's detector scores map50 1.0)
    assert metrics["size_recall"]["small"] == {"num_true": 6, "recall": 1.0}
    assert "recall by size @0.25: small 1.00 (6), medium - (0), large - (0)" in result.output


def test_a_teacher_is_scored_on_the_split_it_is_given(real_data, tmp_path):
    teacher = str(real_data / "teachers" / "yolox_nano" / "yolox_nano_416.onnx")
    coco128 = str(real_data / "coco128")
    report = tmp_path / "r.json"
    arguments = ["eval", "detect", coco128, "--model", teacher, "--json", str(report), "--quiet"]
    result = CliRunner().invoke(cli, [*arguments, "--holdout", "0.05", "--seed", "0", "--by-source"])
    assert result.exit_code == 0, result.output
    written = json.loads(report.read_text())
    assert written["num_images"] == 6 and written["metrics"]["by_source"][coco128]["images"] == 6  # round(0.05 * 128)
    assert isinstance(written["metrics"]["map50"], float) and written["metrics"]["map50"] > 0.2
    result = CliRunner().invoke(cli, [*arguments, "--overwrite", "--holdout"])
    assert result.exit_code == 2 and "is a teacher (yolox layout), which records none" in result.output
    assert "--holdout FRACTION --seed N" in result.output


def test_an_image_under_no_data_folder_has_no_source(tmp_path):
    from cvapps.cli.detect import _source_groups
    from cvapps.detection.data import DetectionData, DetectionSample

    (tmp_path / "a").mkdir()
    data = DetectionData(
        [DetectionSample(tmp_path / "a" / "x.png", 8, 8), DetectionSample(tmp_path / "x.png", 8, 8)], ()
    )
    assert _source_groups([str(tmp_path), str(tmp_path / "a")], data) == {str(tmp_path): [1], str(tmp_path / "a"): [0]}
    with pytest.raises(ValueError, match=r"the image .*x.png lies under none of the DATA folders"):
        _source_groups([str(tmp_path / "a")], data)


def test_truth_scores_the_same_photos_against_another_folders_labels(tiny_detector, tmp_path):
    model_path, root, _ = tiny_detector
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    linked_copy(root, labelled)  # the "teacher" folder: links to the same photos
    truth = tmp_path / "truth"
    shutil.copytree(root, truth)
    (truth / "images").mkdir(exist_ok=True)
    for image in (truth / "images").iterdir():  # the same photo files (links), other labels: red boxes only
        image.unlink()
        os.symlink((root / "images" / image.name).resolve(), image)
    for label in (truth / "labels").iterdir():
        label.write_text("".join(line + "\n" for line in label.read_text().splitlines() if line.startswith("0 ")))
    report = tmp_path / "r.json"
    arguments = ["eval", "detect", str(labelled), "--model", str(model_path), "--truth", str(truth)]
    result = CliRunner().invoke(cli, [*arguments, "--json", str(report), "--quiet"])
    assert result.exit_code == 0, result.output
    row = json.loads(report.read_text())["metrics"]["by_truth"][str(truth)]
    assert row["images"] == 4 and set(row["per_class"]) == {"red"}  # blue has no truth boxes there
    assert row["per_class"]["red"]["num_true"] == 3  # images 0, 2 and 3 have one red square each
    assert f"against {truth}'s labels: 4 images" in result.output
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(root, elsewhere)  # copies, not the same files
    refused = CliRunner().invoke(
        cli, ["eval", "detect", str(labelled), "--model", str(model_path), "--truth", str(elsewhere)]
    )
    assert refused.exit_code == 2 and "labels none of the 4 photos scored" in refused.output
