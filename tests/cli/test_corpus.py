"""The bad-input corpus, bounded for CI: every predict command over generated bad inputs (seconds each).

For each case: the exit code says what happened (1: some inputs failed and the rest were processed;
2: nothing could be done), every failure is one line naming the input, no traceback reaches the user,
the good images of a batch still get their records, and nothing half-written or hidden is left behind.
"""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cvapps.cli import cli


def _png_claiming(width, height):
    """A tiny valid PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def _jpeg(seed=0):
    buffer = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


BAD_FILES = {
    "empty.jpg": b"",
    "text.png": b"this is not an image\n",
    "truncated.jpg": _jpeg(1)[:400],
    "bomb.png": _png_claiming(60000, 60000),
    "junk.mp4": b"\x00\x01 not a video",
}


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "good.jpg").write_bytes(_jpeg())
    for name, data in BAD_FILES.items():
        if not name.endswith(".mp4"):  # a folder holds images; the junk video is a source of its own
            (folder / name).write_bytes(data)
    (tmp_path / "junk.mp4").write_bytes(BAD_FILES["junk.mp4"])
    (tmp_path / "empty_folder").mkdir()
    return tmp_path


def _commands(tiny_classifier, tiny_detector):
    from cvapps.models import shipped_models

    shipped = shipped_models()
    commands = {
        "classify": ["classify", "--model", str(tiny_classifier)],
        "detect": ["detect", "--model", str(tiny_detector[0])],
    }
    if "person_seg" in shipped:
        commands["segment"] = ["segment", "--model", "person_seg"]
    if "starry_night" in shipped:
        commands["stylize"] = ["stylize", "--style", "starry_night"]
    return commands


def _assert_one_line_errors(output, expected_names):
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.lower().startswith("error")]
    for name in expected_names:
        assert sum(name in line for line in lines) == 1, f"{name} not named on exactly one error line:\n{output}"


def _left_behind(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp"))


def test_every_predict_command_survives_the_corpus(corpus, tiny_classifier, tiny_detector):
    for name, command in _commands(tiny_classifier, tiny_detector).items():
        out, records = corpus / f"out_{name}", corpus / f"{name}.jsonl"
        args = [
            command[0],
            str(corpus / "corpus"),
            *command[1:],
            "--output",
            str(out),
            "--json",
            str(records),
            "--quiet",
        ]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, f"{name}: {result.output}"  # 1: some failed, the rest were processed
        bad = [n for n in BAD_FILES if not n.endswith(".mp4")]
        _assert_one_line_errors(result.output, bad)
        lines = [json.loads(line) for line in records.read_text().splitlines()]
        by_source = {line["source"].rsplit("/", 1)[-1]: line for line in lines}
        assert "results" in by_source["good.jpg"] or name == "stylize", name  # the good image was processed
        assert all("error" in by_source[n] for n in bad), name  # each bad one has its error record
        assert [p.name for p in out.iterdir()] and not _left_behind(corpus), name
        for source, code in ((corpus / "junk.mp4", 2), (corpus / "empty_folder", 2), (corpus / "missing.jpg", 2)):
            result = CliRunner().invoke(cli, [command[0], str(source), *command[1:], "--quiet"])
            assert result.exit_code in (1, code), f"{name} {source.name}: {result.output}"
            _assert_one_line_errors(result.output, [source.name])
        assert not _left_behind(corpus), name


def test_bad_model_files_are_one_line(corpus):
    junk = corpus / "junk.keras"
    junk.write_bytes(b"PK\x03\x04 not a zip really")
    text = corpus / "model.txt"
    text.write_text("hello")
    for command in (["classify"], ["detect"], ["segment"], ["stylize", "--style"]):
        for model in (junk, text, corpus / "nowhere.keras"):
            flag = [] if command[0] == "stylize" else ["--model"]
            result = CliRunner().invoke(
                cli, [command[0], str(corpus / "corpus" / "good.jpg"), *command[1:], *flag, str(model)]
            )
            assert result.exit_code == 2, f"{command} {model.name}: {result.output}"
            _assert_one_line_errors(result.output, [model.name])
