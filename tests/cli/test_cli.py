import json
import subprocess
import sys

import click
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_shapes_dataset
from PIL import Image

from cvapps.cli import cli


def all_commands(group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))


@pytest.mark.parametrize("path", [()] + list(all_commands(cli)), ids=lambda p: " ".join(p) or "cvapps")
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner; from cvapps.cli import cli; "
        "r = CliRunner().invoke(cli, ['classify', '--help']); assert r.exit_code == 0; "
        "r = CliRunner().invoke(cli, ['train', 'classify', '--help']); assert r.exit_code == 0; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((30, 40, 3), 235, np.uint8)).save(folder / "a_bright.jpg")
    Image.fromarray(np.full((30, 40, 3), 15, np.uint8)).save(folder / "b_dark.png")
    (folder / "c_corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    return folder


def test_classify_folder_processes_the_rest_after_a_bad_file(tiny_classifier, photos, tmp_path):
    out = tmp_path / "out"
    records = tmp_path / "r.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "classify",
            str(photos),
            "--model",
            str(tiny_classifier),
            "--top-k",
            "1",
            "--output",
            str(out),
            "--json",
            str(records),
            "--quiet",
        ],
    )
    assert result.exit_code == 1  # one input failed
    assert "c_corrupt.jpg" in result.output
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert [r["results"][0]["class_name"] for r in lines if "results" in r] == ["bright", "dark"]
    assert {"source", "frame", "task", "model", "top_k", "results", "milliseconds"} <= set(lines[0])
    [error] = [r for r in lines if "error" in r]  # the corrupt file's error record
    assert error["source"].endswith("c_corrupt.jpg") and error["task"] == "classify"
    assert sorted(p.name for p in out.iterdir()) == ["a_bright.jpg", "b_dark.png"]


def test_classify_json_to_stdout(tiny_classifier, photos):
    result = CliRunner().invoke(
        cli,
        [
            "classify",
            str(photos / "a_bright.jpg"),
            "--model",
            str(tiny_classifier),
            "--json",
            "-",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["task"] == "classify" and record["results"][0]["class_name"] == "bright"


def test_classify_refuses_to_overwrite(tiny_classifier, photos, tmp_path):
    target = tmp_path / "exists.jpg"
    target.write_bytes(b"keep me")
    args = ["classify", str(photos / "a_bright.jpg"), "--model", str(tiny_classifier), "--output", str(target)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "already exists; pass --overwrite" in result.output
    assert target.read_bytes() == b"keep me"
    assert CliRunner().invoke(cli, [*args, "--overwrite", "--quiet"]).exit_code == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["classify", "no_such_photo.jpg"], "no_such_photo.jpg: no such file or folder"),
        (["classify", "{photos}", "--model", "no_such_model"], "unknown model 'no_such_model'"),
        (["classify", "{photos}", "--model", "missing.keras"], "missing.keras: no such model file"),
        (["classify", "{photos}", "--top-k", "0"], "0 is not in the range x>=1"),
        (["eval", "classify", "{empty}", "--model", "{model}"], "found 0 class folder"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(args, message, photos, tmp_path, tiny_classifier):
    (tmp_path / "empty").mkdir()
    fill = {"photos": str(photos), "empty": str(tmp_path / "empty"), "model": str(tiny_classifier)}
    result = CliRunner().invoke(cli, [a.format(**fill) for a in args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_model_file_that_is_not_a_cvapps_model(tmp_path, photos):
    import keras

    inputs = keras.Input((8,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(tmp_path / "plain.keras")
    result = CliRunner().invoke(
        cli, ["classify", str(photos / "a_bright.jpg"), "--model", str(tmp_path / "plain.keras")]
    )
    assert result.exit_code == 2
    assert "not a cvapps model" in result.output


def test_eval_writes_the_report_contract(tiny_classifier, tmp_path):
    data = make_shapes_dataset(tmp_path / "test", per_class=4, seed=5)
    report_path = tmp_path / "r.json"
    result = CliRunner().invoke(
        cli, ["eval", "classify", str(data), "--model", str(tiny_classifier), "--json", str(report_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert set(report) == {"task", "model", "data", "num_images", "seconds", "metrics"}
    assert report["task"] == "classify" and report["num_images"] == 8
    assert 0.0 <= report["metrics"]["top1"] <= 1.0 and report["metrics"]["top5"] == 1.0
    assert (tmp_path / "r_confusion.png").is_file()


def test_train_classify_command(tmp_path):
    data = make_shapes_dataset(tmp_path / "data", per_class=6)
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "classify",
            str(data),
            "--output",
            str(tmp_path / "m.keras"),
            "--size",
            "xs",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--checkpoint-dir",
            str(tmp_path / "run"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.keras").is_file()
    assert "saved" in result.output


def test_models_lists_shipped_models():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0


def test_eval_holdout_scores_only_the_carved_out_split(tiny_classifier, tmp_path):
    data = tiny_classifier.parent / "data"  # what the fixture trained on, with --val-fraction 0.25
    report_path = tmp_path / "r.json"
    args = ["eval", "classify", str(data), "--model", str(tiny_classifier), "--json", str(report_path)]
    result = CliRunner().invoke(cli, [*args, "--holdout"])  # alone: the split the model recorded
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["num_images"] == 8  # 25% of 16 per class, 2 classes
    assert "holdout 0.25" in report["data"]
    result = CliRunner().invoke(cli, [*args, "--holdout", "0.25", "--overwrite"])  # the same fraction, given
    assert result.exit_code == 0, result.output
    # another fraction or another seed would score training images: refused, before anything is written
    for extra in (["--holdout", "0.05"], ["--holdout", "--seed", "1"]):
        result = CliRunner().invoke(cli, [*args, *extra, "--overwrite"])
        assert result.exit_code == 2 and "differs" in result.output, result.output
    # the same fraction of other data is not the model's held-out set
    other = make_shapes_dataset(tmp_path / "other", per_class=8, seed=3)
    result = CliRunner().invoke(cli, ["eval", "classify", str(other), "--model", str(tiny_classifier), "--holdout"])
    assert result.exit_code == 2 and "DATA changed since training" in result.output, result.output
    # an existing report is refused without --overwrite
    result = CliRunner().invoke(cli, [*args, "--holdout"])
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output, result.output


def test_train_reruns_continue_refuse_or_start_over(tmp_path):
    data = make_shapes_dataset(tmp_path / "data", per_class=6)
    base = ["train", "classify", str(data), "--output", str(tmp_path / "m.keras"), "--size", "xs"]
    base += ["--image-size", "32", "--batch-size", "4", "--checkpoint-dir", str(tmp_path / "run"), "--quiet"]
    assert CliRunner().invoke(cli, [*base, "--epochs", "1"]).exit_code == 0
    again = CliRunner().invoke(cli, [*base, "--epochs", "1"])  # the same command: reused, said so
    assert again.exit_code == 0 and "nothing was trained" in again.output
    more = CliRunner().invoke(cli, [*base, "--epochs", "2"])  # more epochs: continued, not reused
    assert more.exit_code == 0 and "nothing was trained" not in more.output, more.output
    log = (tmp_path / "run" / "main_log.csv").read_text().splitlines()
    assert len(log) == 1 + 2  # header + epochs 1 and 2
    changed = CliRunner().invoke(cli, [*base, "--epochs", "2", "--learning-rate", "0.01"])
    assert changed.exit_code == 2 and "learning_rate changed" in changed.output and "--fresh" in changed.output
    assert CliRunner().invoke(cli, [*base, "--epochs", "1", "--learning-rate", "0.01", "--fresh"]).exit_code == 0
    both = CliRunner().invoke(cli, [*base, "--resume", "--fresh"])
    assert both.exit_code == 2 and "exclude each other" in both.output
    # another run (another run folder) writing onto the model: refused unless --overwrite
    other = [a if a != str(tmp_path / "run") else str(tmp_path / "run2") for a in base]
    refused = CliRunner().invoke(cli, [*other, "--epochs", "1"])
    assert refused.exit_code == 2 and "already exists and this run folder did not write it" in refused.output
    assert CliRunner().invoke(cli, [*other, "--epochs", "1", "--overwrite"]).exit_code == 0


def test_demo_writes_annotated_photos(tmp_path):
    from cvapps.models import shipped_models

    if "imagenet" not in shipped_models():
        pytest.skip("the imagenet classifier's weights package is not installed")
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--output", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / "classify_chelsea.jpg").is_file()
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    labels = {r["source"].split(".")[-1]: r["label"] for r in records if r["task"] == "classify"}
    assert len(labels) == 4
    # ImageNet answers: chelsea is a cat class, the coffee a cup or espresso, the astronaut no vehicle.
    assert labels["chelsea"] in ("tabby", "tiger cat", "Egyptian cat"), labels
    assert labels["coffee"] in ("espresso", "cup", "coffee mug"), labels
    assert labels["astronaut"] not in ("go-kart", "bobsled", "racer", "sports car", "truck", "airliner"), labels
    if "person" in shipped_models():
        assert sum(r["task"] == "detect" for r in records) == 4 and (out / "detect_astronaut.jpg").is_file()
    if "person_seg" in shipped_models():
        assert (out / "segment_astronaut.jpg").is_file() and (out / "segment_astronaut_blur.jpg").is_file()
    if "faces" in shipped_models():  # the astronaut's face, verified against her mirror image
        [face] = [r for r in records if r["task"] == "faces"]
        assert face["results"]["verified"] is True
    if "starry_night" in shipped_models():
        assert sum(r["task"] == "style" for r in records) == 4
    # A second run into the same folder is refused rather than silently mixing results.
    again = CliRunner().invoke(cli, ["demo", "--output", str(out)])
    assert again.exit_code == 2 and "already holds files" in again.output


def test_detect_draws_boxes_and_writes_records(tiny_detector, tmp_path):
    model_path, root, _ = tiny_detector
    records = tmp_path / "d.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "detect",
            str(root / "images"),
            "--model",
            str(model_path),
            "--confidence-threshold",
            "0.3",
            "--output",
            str(tmp_path / "out"),
            "--json",
            str(records),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert [len(r["results"]) for r in lines] == [2, 1, 2, 1]  # the squares of each image
    assert lines[1]["results"][0]["class_name"] == "blue"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png", "3.png"]


def test_detect_keeps_asked_classes_and_saves_crops(tiny_detector, tmp_path):
    model_path, root, _ = tiny_detector
    records = tmp_path / "d.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "detect",
            str(root / "images"),
            "--model",
            str(model_path),
            "--classes",
            "blue",
            "--class-threshold",
            "blue=0.3",
            "--save-crops",
            str(tmp_path / "crops"),
            "--json",
            str(records),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert {d["class_name"] for r in lines for d in r["results"]} == {"blue"}
    assert sorted(p.parent.name for p in (tmp_path / "crops").rglob("*.jpg")) == ["blue"] * sum(
        len(r["results"]) for r in lines
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--classes", "zebra"], "the model has no class 'zebra'; its classes are red, blue"),
        (["--class-threshold", "red"], "--class-threshold takes NAME=VALUE"),
        (["--class-threshold", "red=2"], r"class_thresholds\['red'\] must be a number in \[0, 1\]"),
    ],
)
def test_detect_refuses_unknown_classes_and_bad_thresholds(tiny_detector, tmp_path, option, message):
    import re

    model_path, root, _ = tiny_detector
    result = CliRunner().invoke(cli, ["detect", str(root / "images"), "--model", str(model_path), "--quiet", *option])
    assert result.exit_code == 2 and re.search(message, result.output), result.output


def test_eval_detect_reports_map(tiny_detector, tmp_path):
    model_path, root, _ = tiny_detector
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "detect",
            str(root),
            "--model",
            str(model_path),
            "--json",
            str(tmp_path / "r.json"),
            "--pr-curve",
            str(tmp_path / "pr.png"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["task"] == "detect" and report["num_images"] == 4
    assert report["metrics"]["map50"] == 1.0 and set(report["metrics"]["per_class"]) == {"red", "blue"}
    assert (tmp_path / "pr.png").stat().st_size > 1000


def test_detect_with_a_classifier_is_refused(tiny_classifier, photos):
    result = CliRunner().invoke(cli, ["detect", str(photos / "a_bright.jpg"), "--model", str(tiny_classifier)])
    assert result.exit_code == 2 and "a 'detect' model is needed" in result.output


def test_webcam_detect_headless_over_a_video(tiny_detector, tmp_path):
    import cv2

    model_path, root, _ = tiny_detector
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    frame = cv2.imread(str(root / "images" / "0.png"))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    result = CliRunner().invoke(
        cli,
        [
            "webcam",
            "detect",
            "--source",
            str(video),
            "--model",
            str(model_path),
            "--no-show",
            "--output",
            str(tmp_path / "out.avi"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "5 frames" in result.output and (tmp_path / "out.avi").is_file()


@pytest.mark.parametrize(
    "command, new, old, value",
    [
        (["segment", "--help"], "--opacity", "--alpha", None),
        (["webcam", "segment", "--help"], "--blur-kernel", "--strength", None),
        (["train", "classify", "--help"], "--width-multiplier", "--alpha", None),
        (["stylize", "--help"], "--side", "--size", None),
    ],
)
def test_renamed_flags_show_the_new_spelling_only(command, new, old, value):
    text = CliRunner().invoke(cli, command).output
    assert new in text and f"{old} " not in text.replace(f"{old}-", "")


def test_an_old_flag_spelling_still_works_with_a_warning(tmp_path):
    from PIL import Image

    from cvapps.models import shipped_models

    if "person_seg" not in shipped_models():
        pytest.skip("no shipped person_seg")
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photo)
    old = CliRunner().invoke(cli, ["segment", str(photo), "--alpha", "0.3", "--runtime", "onnx", "--quiet"])
    assert old.exit_code == 0 and "--alpha is deprecated" in old.output and "use --opacity" in old.output
    both = CliRunner().invoke(cli, ["segment", str(photo), "--alpha", "0.3", "--opacity", "0.2"])
    assert both.exit_code == 2 and "pass only --opacity" in both.output


def test_crops_of_same_named_images_in_two_folders_do_not_clash(tiny_detector, tmp_path):
    import shutil

    model_path, root, _ = tiny_detector
    first = sorted((root / "images").iterdir())[0]
    for sub in ("a", "b"):  # photos/a/0.png and photos/b/0.png: the same name in two folders
        (tmp_path / "photos" / sub).mkdir(parents=True)
        shutil.copy(first, tmp_path / "photos" / sub / first.name)
    crops = tmp_path / "crops"
    args = ["detect", str(tmp_path / "photos"), "--model", str(model_path), "--save-crops", str(crops), "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(crops).parts[1] for p in crops.rglob("*.jpg"))  # CLASS/SUB/0_k.jpg
    assert written and set(written) == {"a", "b"} and written.count("a") == written.count("b")


def _moving_video(path, image, frames=8):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for _ in range(frames):
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_detect_track_counts_and_zones_in_records_and_a_webm(tiny_detector, tmp_path):
    import json

    jsonschema = pytest.importorskip("jsonschema")
    from cvapps.core.records import schema
    from cvapps.core.sources import read_image

    model_path, root, _ = tiny_detector
    video = _moving_video(tmp_path / "clip.avi", read_image(root / "images" / "0.png"))
    result = CliRunner().invoke(
        cli,
        [
            "detect",
            str(video),
            "--model",
            str(model_path),
            "--track",
            "--count-line",
            "0.5,0,0.5,1",
            "--zone",
            "0,0,32,0,32,64,0,64",
            "--json",
            str(tmp_path / "t.jsonl"),
            "--output",
            str(tmp_path / "out.webm"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "line 1: in 0" in result.output and "VP8" in result.output
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(schema())
    for record in records:
        validator.validate(record)
    assert len(records) == 8 and all("track_id" in box for r in records for box in r["results"])
    assert records[-1]["count_lines"][0]["line"] == [[32.0, 0.0], [32.0, 64.0]]  # fractions of the 64x64 frame
    assert records[-1]["zones"][0]["total"] >= 1
    assert {box["track_id"] for box in records[-1]["results"]} - {-1}, "confirmed tracks by the last frame"
    assert (tmp_path / "out.webm").stat().st_size > 0


def test_webcam_detect_track_over_a_video(tiny_detector, tmp_path):
    from cvapps.core.sources import read_image

    model_path, root, _ = tiny_detector
    video = _moving_video(tmp_path / "clip.avi", read_image(root / "images" / "0.png"), frames=4)
    result = CliRunner().invoke(
        cli,
        ["webcam", "detect", "--source", str(video), "--model", str(model_path), "--no-show", "--track-per-class"]
        + ["--count-line", "0,32,64,32"],
    )
    assert result.exit_code == 0, result.output
    assert "4 frames" in result.output and "line 1: in" in result.output


@pytest.mark.parametrize(
    "option, message",
    [
        (["--count-line", "1,2,3"], "--count-line takes x1,y1,x2,y2"),
        (["--zone", "0,0,1,1"], "--zone"),
    ],
)
def test_bad_count_line_and_zone_are_one_line_errors(tiny_detector, tmp_path, option, message):
    from cvapps.core.sources import read_image

    model_path, root, _ = tiny_detector
    video = _moving_video(tmp_path / "clip.avi", read_image(root / "images" / "0.png"), frames=2)
    result = CliRunner().invoke(cli, ["detect", str(video), "--model", str(model_path), *option])
    assert result.exit_code == 2 and message in result.output, result.output
