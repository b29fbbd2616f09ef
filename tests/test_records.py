"""Every predict command's --json records follow the one versioned schema (cvapps/core/records.schema.json),
an unreadable input included (its error record)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cvapps.cli import cli

jsonschema = pytest.importorskip("jsonschema")


def _validator():
    from cvapps.core.records import schema

    jsonschema.Draft202012Validator.check_schema(schema())
    return jsonschema.Draft202012Validator(schema())


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / name)
    (folder / "c.jpg").write_bytes(b"not an image")  # unreadable: an error record, exit 1
    return folder


def _records(tmp_path, args):
    out = tmp_path / f"{args[0]}.jsonl"
    result = CliRunner().invoke(cli, [*args, "--json", str(out), "--quiet"])
    assert result.exit_code == 1, result.output  # 1: one input failed, the others were processed
    return [json.loads(line) for line in out.read_text().splitlines()]


def _check(records, task):
    validator = _validator()
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record}: {errors[0].message}"
    assert {r["task"] for r in records} == {task}
    assert sorted(r["source"].rsplit("/", 1)[-1] for r in records) == ["a.png", "b.jpg", "c.jpg"]
    [error] = [r for r in records if "error" in r]
    assert error["source"].endswith("c.jpg") and "c.jpg" in error["error"]


def test_the_schema_rejects_what_it_should():
    from cvapps.core.records import error_record, record

    validator = _validator()
    assert validator.is_valid(error_record("x.jpg", 0, "detect", "x.jpg: not an image"))
    assert not validator.is_valid(record("x.jpg", 0, "detect"))  # a detect record without results
    bad = record("x.jpg", 0, "classify", model="m", runtime="onnx", top_k=1, label="cat", milliseconds=1.0)
    bad["results"] = [{"class_id": 0, "class_name": "cat", "score": 1.5}]
    assert not validator.is_valid(bad)  # a score above 1
    with pytest.raises(ValueError, match="task must be one of"):
        record("x.jpg", 0, "count")


def test_classify_records(tmp_path, photos, tiny_classifier):
    _check(_records(tmp_path, ["classify", str(photos), "--model", str(tiny_classifier)]), "classify")


def test_detect_records(tmp_path, photos, tiny_detector):
    model, _, _ = tiny_detector
    _check(_records(tmp_path, ["detect", str(photos), "--model", str(model)]), "detect")


def test_segment_style_faces_records(tmp_path, photos):
    from cvapps.models import shipped_models

    shipped = shipped_models()
    if "person_seg" in shipped:
        _check(_records(tmp_path, ["segment", str(photos), "--model", "person_seg"]), "segment")
    if "starry_night" in shipped:
        _check(_records(tmp_path, ["stylize", str(photos), "--style", "starry_night"]), "style")
    if "faces" in shipped:
        db = tmp_path / "db"
        (db / "Ada").mkdir(parents=True)
        Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(db / "Ada" / "ada.png")
        args = ["faces", "identify", str(photos), "--db", str(db), "--detector", "none"]
        _check(_records(tmp_path, args), "faces")
