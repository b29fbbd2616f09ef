"""Sinks: outputs go where asked, never replace files silently, and are written atomically."""

import errno
import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from cvapps.core import sinks
from cvapps.core.sinks import (
    ImageSink,
    JsonLinesSink,
    VideoSink,
    atomic_path,
    check_writable,
    remove_unfinished,
    video_codec,
    write_image,
    write_json,
)


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


def test_image_sink_plan_keeps_paths_under_the_common_folder(tmp_path):
    sink = ImageSink(tmp_path / "out", multiple=True)
    sources = ["photos/a/x.jpg", "photos/b/x.jpg", "photos/top.png"]
    planned = sink.plan(sources)
    assert sink.root == Path("photos")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in planned] == ["a/x.jpg", "b/x.jpg", "top.png"]
    assert not (tmp_path / "out").exists()  # planning writes nothing
    for source in sources:
        sink.write(image(), source)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == [
        "a/x.jpg",
        "b/x.jpg",
        "top.png",
    ]
    flat = ImageSink(tmp_path / "flat", multiple=True)
    assert [p.name for p in flat.plan(["photos/a.jpg", "photos/b.jpg"])] == ["a.jpg", "b.jpg"]
    assert {p.parent for p in flat.plan(["photos/a.jpg", "photos/b.jpg"])} == {tmp_path / "flat"}


def test_image_sink_plan_refuses_before_any_write(tmp_path):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "x.jpg").write_bytes(b"keep")
    (out / "b.jpg").write_bytes(b"keep")
    sink = ImageSink(out, multiple=True)
    with pytest.raises(ValueError, match=r"a/x.jpg already exists \(and 1 other outputs\); pass --overwrite"):
        sink.plan(["p/a/x.jpg", "p/b.jpg", "p/c/y.jpg"])
    assert not (out / "c").exists()
    assert ImageSink(out, multiple=True, overwrite=True).plan(["p/a/x.jpg", "p/b.jpg"])
    with pytest.raises(ValueError, match="q.png: both p/q.png and p/q.pdf would be written here"):
        ImageSink(tmp_path / "o2", multiple=True).plan(["p/q.png", "p/q.pdf"])  # q.pdf -> q.png
    (out / "d.jpg").mkdir()
    with pytest.raises(ValueError, match="d.jpg is a folder"):
        ImageSink(out, multiple=True, overwrite=True).plan(["p/d.jpg", "p/e.jpg"])


def test_image_sink_plan_for_video_frames(tmp_path):
    sink = ImageSink(tmp_path / "out", multiple=True)
    assert sink.plan(["clips/fox.mp4"], video=True) == []
    assert sink.write(image(), "clips/fox.mp4", index=2, video=True).name == "fox_000002.jpg"
    with pytest.raises(ValueError, match=r"fox_000002.jpg already exists; pass --overwrite"):
        ImageSink(tmp_path / "out", multiple=True).plan(["clips/fox.mp4"], video=True)
    assert ImageSink(tmp_path / "out", multiple=True).plan(["clips/owl.mp4"], video=True) == []


def test_a_parent_that_is_a_file_is_refused_by_every_sink(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    reason = r"cannot write \(.*blocker is a file, not a folder\)"
    for make in (
        lambda: ImageSink(blocker / "out", multiple=True),
        lambda: ImageSink(blocker / "out.jpg", multiple=False),
        lambda: VideoSink(blocker / "out.avi"),
        lambda: JsonLinesSink(blocker / "r.jsonl"),
        lambda: write_image(blocker / "sub" / "a.jpg", image()),
        lambda: write_json(blocker / "a.json", {}),
    ):
        with pytest.raises(ValueError, match=reason):
            make()
    assert blocker.read_text() == "x" and not hidden_files(tmp_path)


def test_a_name_too_long_is_one_line(tmp_path):
    long = "n" * 300
    with pytest.raises(ValueError, match=r"cannot write \(File name too long: n+\.\.\. is 305 bytes, at most \d+\)"):
        check_writable(tmp_path / f"{long}.json")
    with pytest.raises(ValueError, match=r"File name too long"):
        JsonLinesSink(tmp_path / f"{long}.jsonl")
    with pytest.raises(ValueError, match=r"File name too long"):
        ImageSink(tmp_path / long / "x", multiple=True)
    # A name that fits still fits once the temporary prefix is added.
    fits = "m" * 250 + ".jpg"
    assert write_image(tmp_path / fits, image()).name == fits and not hidden_files(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_folder_is_refused_before_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for make in (
            lambda: ImageSink(locked / "out", multiple=True),
            lambda: VideoSink(locked / "out.avi"),
            lambda: JsonLinesSink(locked / "r.jsonl"),
        ):
            with pytest.raises(ValueError, match=r"cannot write \(Permission denied in .*locked\)"):
                make()
    finally:
        locked.chmod(0o700)


class FullDisk:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, *args, **kwargs):
        pass

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/somewhere/.x.abcd1234.jpg")

    flush = close = lambda self: None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_full_disk_is_one_line_naming_the_destination(tmp_path, monkeypatch):
    import cvapps.core.sinks as sinks

    monkeypatch.setattr(sinks, "open", FullDisk, raising=False)
    records = JsonLinesSink(tmp_path / "x.jsonl")
    for write in (
        lambda: write_image(tmp_path / "x.jpg", image()),
        lambda: write_json(tmp_path / "x.json", {"a": 1}),
        lambda: records.write({"a": 1}),
    ):
        with pytest.raises(ValueError) as caught:
            write()
        message = str(caught.value)
        assert message.endswith(": cannot write (No space left on device).") and str(tmp_path / "x.") in message
        assert ".abcd1234" not in message and "Errno" not in message
    records.close(keep=False)  # what the CLI does on that error
    assert not list(tmp_path.iterdir())  # no temporary files left


def test_a_failed_rename_never_names_the_temporary_file(tmp_path, monkeypatch):
    def refuse(source, target):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(source))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ValueError, match=r"x.jpg: cannot write \(Permission denied\)\.$"):
        write_image(tmp_path / "x.jpg", image())
    sink = JsonLinesSink(tmp_path / "r.jsonl")
    sink.write({"a": 1})
    with pytest.raises(ValueError, match=r"r.jsonl: cannot write \(Permission denied\)\.$"):
        sink.close()
    monkeypatch.undo()
    assert not list(tmp_path.iterdir())  # no temporary files left


def test_json_lines_temporary_file_only_once_written(tmp_path):
    unused = JsonLinesSink(tmp_path / "unused.jsonl")
    assert not list(tmp_path.iterdir())  # checked, nothing created yet
    unused.close(keep=False)
    assert not list(tmp_path.iterdir())
    with JsonLinesSink(tmp_path / "empty.jsonl") as sink:
        pass
    assert (tmp_path / "empty.jsonl").read_text() == "" and sink.count == 0


def test_json_lines_keeps_whole_records_when_a_write_is_cut_short(tmp_path):
    def interrupted(sink, whole):
        """The next write stops with Ctrl-C: after all its bytes went out (``whole``), or half way."""
        write, flush = sink._file.write, sink._file.flush

        def half(data):
            write(data[: len(data) // 2])
            raise KeyboardInterrupt

        def after(*args):
            flush()
            sink._file.flush = flush  # once: close() flushes too
            raise KeyboardInterrupt

        if whole:
            sink._file.flush = after
        else:
            sink._file.write = half

    for whole, kept in ((False, [{"n": 1}]), (True, [{"n": 1}, {"n": 2, "long": "x" * 100}])):
        out = tmp_path / f"r{whole}.jsonl"
        with pytest.raises(KeyboardInterrupt):
            with JsonLinesSink(out) as sink:
                sink.write({"n": 1})
                interrupted(sink, whole)
                sink.write({"n": 2, "long": "x" * 100})
        assert [json.loads(line) for line in out.read_text().splitlines()] == kept
        assert sink.count == len(kept) and not hidden_files(tmp_path)


def test_video_sink_keeps_the_frames_written_before_an_interrupt(tmp_path):
    out = tmp_path / "out.avi"
    with pytest.raises(KeyboardInterrupt):
        with VideoSink(out) as sink:
            sink.write(image())
            raise KeyboardInterrupt
    assert out.is_file() and not hidden_files(tmp_path)


def test_remove_unfinished_removes_temporaries_a_signal_left_behind(tmp_path):
    left = atomic_path(tmp_path / "x.jpg")  # as if a signal struck before the writer's own cleanup
    assert left.name.startswith(".x.") and left.suffix == ".jpg" and left.exists()
    done = write_image(tmp_path / "y.jpg", image())
    assert remove_unfinished() == [left] and not hidden_files(tmp_path) and done.is_file()
    assert remove_unfinished() == []


def read_back(path):
    """(frames, (height, width)) of a video as OpenCV reads it."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    frames, size = 0, None
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames, size = frames + 1, bgr.shape[:2]
    capture.release()
    return frames, size


def moving_square(i, height=48, width=64):
    frame = np.zeros((height, width, 3), np.uint8)
    frame[16:32, 4 * i : 4 * i + 16] = 255
    return frame


# What PyAV (FFmpeg's own decoder names) calls each codec VideoSink names.
AV_NAMES = {"H.264": "h264", "VP8": "vp8", "MPEG-4 part 2": "mpeg4", "Motion JPEG": "mjpeg"}


def test_webm_is_vp8_and_plays_in_browsers(tmp_path, capfd):
    out = tmp_path / "clip.webm"
    with VideoSink(out, fps=10) as sink:
        for i in range(6):
            sink.write(moving_square(i))
    assert (sink.codec, sink.fourcc, sink.browser_playable) == ("VP8", "VP80", True)
    assert read_back(out) == (6, (48, 64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.webm"]  # the temporary file was renamed
    assert "not supported" not in capfd.readouterr().err  # OpenCV's "tag ... is not supported" silenced
    av = pytest.importorskip("av")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "vp8"


def test_mp4_uses_the_codec_the_probe_chose(tmp_path):
    out = tmp_path / "clip.mp4"
    fourcc, name, playable = video_codec(out)
    assert (fourcc, name, playable) in (("avc1", "H.264", True), ("mp4v", "MPEG-4 part 2", False))
    with VideoSink(out, fps=10) as sink:
        for i in range(4):
            sink.write(moving_square(i))
    assert (sink.fourcc, sink.codec, sink.browser_playable) == (fourcc, name, playable)
    assert read_back(out) == (4, (48, 64)) and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    av = pytest.importorskip("av")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == AV_NAMES[sink.codec]


def test_codec_by_suffix():
    assert video_codec("a.webm") == ("VP80", "VP8", True)
    assert video_codec("a.AVI") == ("MJPG", "Motion JPEG", False)
    assert video_codec("a.wmv") == ("MJPG", "Motion JPEG", False)
    assert video_codec("a.mkv")[0] in ("VP80", "MJPG") and not video_codec("a.mkv")[2]  # not a browser container
    assert video_codec("a.mov")[0] == video_codec("a.mp4")[0] and not video_codec("a.mov")[2]
    assert video_codec("a.m4v") == video_codec("a.mp4")
    with pytest.raises(ValueError, match=r"a.gif: a video output needs a video suffix .* \(received .gif\)"):
        video_codec("a.gif")


def test_the_codec_probe_is_silent_and_cached(capfd, monkeypatch):
    monkeypatch.setattr(sinks, "_encodes", {})
    first = video_codec("a.mp4")
    err = capfd.readouterr().err
    assert "h264" not in err and "ERROR" not in err and "VideoWriter" not in err, err
    os.write(2, b"stderr is back\n")  # descriptor 2 restored after the probe
    assert capfd.readouterr().err == "stderr is back\n"
    assert set(sinks._encodes) == {("avc1", ".mp4")}
    calls = []
    monkeypatch.setattr(sinks, "_open_writer", lambda *args: calls.append(args))
    assert video_codec("b.mp4") == first and not calls  # probed once per process


def test_silencing_survives_a_stderr_without_a_descriptor(monkeypatch, tmp_path):
    def no_dup(fd):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(sinks.os, "dup", no_dup)
    monkeypatch.setattr(sinks, "_encodes", {})
    assert video_codec("a.mkv")[0] in ("VP80", "MJPG")  # nothing redirected, nothing broken
    with VideoSink(tmp_path / "a.webm") as sink:
        sink.write(moving_square(0))
    assert (tmp_path / "a.webm").is_file()


def test_a_writer_that_cannot_open_names_the_codec(tmp_path, monkeypatch):
    monkeypatch.setattr(sinks, "_open_writer", lambda *args: None)
    out = tmp_path / "clip.webm"
    sink = VideoSink(out)
    with pytest.raises(
        ValueError, match=r"clip.webm: this OpenCV cannot write VP8 \(VP80\) video at 64x48; write an .avi"
    ):
        sink.write(moving_square(0))
    sink.close()
    assert not list(tmp_path.iterdir())  # no temporary file left
