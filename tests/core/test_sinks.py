"""Sinks: outputs go where asked, never replace files silently, and are written atomically."""

import json
import os
import stat

import cv2
import numpy as np
import pytest

from cvapps.core.sinks import ImageSink, JsonLinesSink, VideoSink, write_image, write_json


def image(height=24, width=32, rgb=(200, 40, 10)):
    return np.full((height, width, 3), rgb, np.uint8)


def hidden_files(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def read_rgb(path):
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_image_sink_single_file(tmp_path):
    out = tmp_path / "out.png"
    assert ImageSink(out, multiple=False).write(image(), "photos/cat.jpg") == out
    assert tuple(read_rgb(out)[0, 0]) == (200, 40, 10)  # RGB in, RGB back
    with pytest.raises(ValueError, match="already exists"):
        ImageSink(out, multiple=False)
    ImageSink(out, multiple=False, overwrite=True).write(image(rgb=(0, 0, 255)), "photos/cat.jpg")
    assert tuple(read_rgb(out)[0, 0]) == (0, 0, 255)
    assert not hidden_files(tmp_path)
    with pytest.raises(ValueError, match="is a folder"):
        ImageSink(tmp_path, multiple=False)


def test_image_sink_folder_naming(tmp_path):
    sink = ImageSink(tmp_path / "out", multiple=True)
    assert sink.write(image(), "photos/cat.jpg").name == "cat.jpg"
    assert sink.write(image(), "clips/fox.mp4", index=3, video=True).name == "fox_000003.jpg"
    assert sink.write(image(), "scans/page.pdf").name == "page.png"  # not an image suffix: PNG
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cat.jpg", "fox_000003.jpg", "page.png"]
    with pytest.raises(ValueError, match="same output file"):
        sink.write(image(), "other/cat.jpg")
    with pytest.raises(ValueError, match="need an output folder"):
        ImageSink(tmp_path / "out.jpg", multiple=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        ImageSink(tmp_path / "file", multiple=True)


def test_write_image_atomic_and_refusing(tmp_path):
    path = write_image(tmp_path / "a.jpg", image())
    assert path.is_file() and not hidden_files(tmp_path)
    with pytest.raises(ValueError, match="already exists"):
        write_image(path, image())
    with pytest.raises(ValueError, match="needs an image suffix"):
        write_image(tmp_path / "a.txt", image())
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 RGB image"):
        write_image(tmp_path / "b.jpg", np.zeros((4, 4, 3), np.float64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]  # no temporary files left


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        written = [
            write_image(tmp_path / "a.png", image()),
            write_json(tmp_path / "a.json", {"a": 1}),
        ]
        with VideoSink(tmp_path / "a.avi") as video:
            video.write(image())
        with JsonLinesSink(tmp_path / "a.jsonl") as records:
            records.write({})
    finally:
        os.umask(umask)
    for path in written + [tmp_path / "a.avi", tmp_path / "a.jsonl"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path  # not mkstemp's 0600


def test_json_lines_to_file(tmp_path):
    out = tmp_path / "records.jsonl"
    records = [{"source": "a.jpg", "label": "chat", "score": 0.5}, {"source": "é.png", "results": []}]
    with JsonLinesSink(out) as sink:
        for record in records:
            sink.write(record)
        assert not out.exists()  # only the temporary file exists until close
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records
    assert not hidden_files(tmp_path)
    with pytest.raises(ValueError, match="already exists"):
        JsonLinesSink(out)
    with JsonLinesSink(out, overwrite=True) as sink:
        sink.write({"n": 1})
    assert json.loads(out.read_text()) == {"n": 1}


def test_json_lines_failure_discards_and_interrupt_keeps(tmp_path):
    failed = tmp_path / "failed.jsonl"
    with pytest.raises(RuntimeError):
        with JsonLinesSink(failed) as sink:
            sink.write({"n": 1})
            raise RuntimeError("boom")
    assert not failed.exists() and not hidden_files(tmp_path)
    stopped = tmp_path / "stopped.jsonl"
    with pytest.raises(KeyboardInterrupt):
        with JsonLinesSink(stopped) as sink:
            sink.write({"n": 1})
            raise KeyboardInterrupt
    assert json.loads(stopped.read_text()) == {"n": 1}


def test_json_lines_to_stdout(capsys):
    with JsonLinesSink("-") as sink:
        sink.write({"a": 1})
        sink.write({"b": [1, 2]})
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1}, {"b": [1, 2]}]


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_video_sink_round_trip(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    with VideoSink(out, fps=10) as sink:
        for i in range(5):
            sink.write(image(rgb=(40 * i, 0, 0)))
        assert not out.exists()
    capture = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(bgr)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10, abs=0.5)
    capture.release()
    assert len(frames) == 5 and frames[0].shape == (24, 32, 3)
    assert frames[4][..., 2].mean() > frames[0][..., 2].mean() + 100  # red rises, in the BGR red channel
    assert not hidden_files(tmp_path)
    with pytest.raises(ValueError, match="already exists"):
        VideoSink(out)
    with pytest.raises(ValueError, match="needs a video suffix"):
        VideoSink(tmp_path / "out.gif")


def test_video_sink_failure_and_frame_checks(tmp_path):
    out = tmp_path / "out.avi"
    with pytest.raises(RuntimeError):
        with VideoSink(out) as sink:
            sink.write(image())
            raise RuntimeError("boom")
    assert not out.exists() and not hidden_files(tmp_path)
    with VideoSink(out) as sink:
        sink.write(image())
        with pytest.raises(ValueError, match="frame 1 is 32x20 but the video is 32x24"):
            sink.write(image(height=20))
        with pytest.raises(ValueError, match=r"expected \(H, W, 3\) uint8"):
            sink.write(np.zeros((24, 32), np.uint8))
    assert out.is_file()
    with VideoSink(tmp_path / "empty.avi"):
        pass
    assert not (tmp_path / "empty.avi").exists()  # no frames, no file


def test_write_json(tmp_path):
    path = write_json(tmp_path / "sub" / "meta.json", {"classes": ["cat", "dog"], "size": 32})
    assert json.loads(path.read_text()) == {"classes": ["cat", "dog"], "size": 32}
    write_json(path, {"v": 2}, overwrite=True)
    assert json.loads(path.read_text()) == {"v": 2}
    with pytest.raises(ValueError, match="already exists"):
        write_json(path, {"v": 3}, overwrite=False)
    assert not hidden_files(path.parent)
