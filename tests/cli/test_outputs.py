"""Predict outputs (issue 18): every destination checked before the first image, unique names
for a folder tree, one-line errors for unwritable places, and Ctrl-C / SIGTERM keep what is done."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cvapps
from cvapps.cli import cli
from cvapps.cli.commands import Outputs
from cvapps.cli.common import OutputOptions
from cvapps.core.sources import open_source

ROOT_CHMOD_NOOP = hasattr(os, "geteuid") and os.geteuid() == 0


def save(path, value=200, size=(24, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


def files(folder):
    """Every file under ``folder`` (hidden ones too), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def classify(model, *args):
    return CliRunner().invoke(cli, ["classify", *map(str, args), "--model", str(model), "--quiet"])


def test_the_same_name_under_two_sub_folders_keeps_both(tiny_classifier, tmp_path):
    # Before: photos/a/x.jpg and photos/b/x.jpg both went to out/x.jpg, and the second stopped the batch.
    save(tmp_path / "photos" / "a" / "x.jpg", 230)
    save(tmp_path / "photos" / "b" / "x.jpg", 20)
    save(tmp_path / "photos" / "top.png", 230)
    out, records = tmp_path / "out", tmp_path / "r.jsonl"
    run = classify(tiny_classifier, tmp_path / "photos", "--output", out, "--json", records)
    assert run.exit_code == 0, run.output
    assert files(out) == ["a/x.jpg", "b/x.jpg", "top.png"]
    assert len(records.read_text().splitlines()) == 3


def test_one_folder_and_a_glob_keep_flat_names(tmp_path):
    for name in ("a.jpg", "b.png"):
        save(tmp_path / "photos" / name)
    for source in (tmp_path / "photos", str(tmp_path / "photos" / "*.*")):
        outputs = Outputs(open_source(source), OutputOptions(output=str(tmp_path / "out")))
        planned = [outputs.images.path_for(p) for p in outputs.source.items]
        assert [p.name for p in planned] == ["a.jpg", "b.png"] and {p.parent for p in planned} == {tmp_path / "out"}


def test_an_existing_output_at_image_k_is_refused_before_any_file_is_written(tiny_classifier, tmp_path):
    # Before: images 1..k-1 were written, then image k stopped the batch and the records were dropped.
    for i in range(6):
        save(tmp_path / "photos" / f"{i}.png", 40 * i)
    out = tmp_path / "out"
    save(out / "3.png", 1)
    before = (out / "3.png").read_bytes()
    records = tmp_path / "r.jsonl"
    run = classify(tiny_classifier, tmp_path / "photos", "--output", out, "--json", records)
    assert run.exit_code == 2, run.output
    assert f"{out / '3.png'} already exists; pass --overwrite" in run.output and "Traceback" not in run.output
    assert len(run.output.strip().splitlines()) == 1
    assert files(out) == ["3.png"] and (out / "3.png").read_bytes() == before  # nothing written
    assert not records.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    again = classify(tiny_classifier, tmp_path / "photos", "--output", out, "--json", records, "--overwrite")
    assert again.exit_code == 0, again.output
    assert files(out) == [f"{i}.png" for i in range(6)]


def test_a_video_into_a_folder_refuses_existing_frames(tmp_path):
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 24))
    for _ in range(3):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    save(tmp_path / "out" / "clip_000002.jpg")
    with pytest.raises(ValueError, match=r"clip_000002.jpg already exists; pass --overwrite"):
        Outputs(open_source(video), OutputOptions(output=str(tmp_path / "out")))
    Outputs(open_source(video), OutputOptions(output=str(tmp_path / "out"), overwrite=True))


def test_json_and_output_naming_one_file_is_refused(tmp_path):
    photo = save(tmp_path / "p.png")
    with pytest.raises(ValueError, match="--json names a file that --output also writes"):
        Outputs(open_source(photo), OutputOptions(output=str(tmp_path / "o.png"), json_path=str(tmp_path / "o.png")))


def test_a_one_image_output_without_an_image_suffix_is_refused_before_work(tmp_path):
    photo = save(tmp_path / "p.png")
    with pytest.raises(ValueError, match=r"out.txt: output image needs an image suffix"):
        Outputs(open_source(photo), OutputOptions(output=str(tmp_path / "out.txt")))


def test_an_unwritable_output_folder_is_one_line_before_any_work(tiny_classifier, tmp_path):
    for i in range(3):
        save(tmp_path / "photos" / f"{i}.png")
    if ROOT_CHMOD_NOOP:  # root writes anywhere: use a parent that is a file instead
        blocker = tmp_path / "blocker"
        blocker.write_text("x")
        out, reason = blocker / "out", f"{blocker} is a file, not a folder"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        out, reason = locked / "out", "Permission denied"
    records = tmp_path / "r.jsonl"
    try:
        run = classify(tiny_classifier, tmp_path / "photos", "--output", out, "--json", records)
    finally:
        if not ROOT_CHMOD_NOOP:
            locked.chmod(0o700)
    assert run.exit_code == 2, run.output
    assert f"{out}: cannot write ({reason}" in run.output and "Traceback" not in run.output
    assert len(run.output.strip().splitlines()) == 1 and "Errno" not in run.output
    assert not records.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_parent_that_is_a_file_and_a_name_too_long_are_one_line(tmp_path):
    photos = [save(tmp_path / "photos" / f"{i}.png") for i in range(2)]
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    source = open_source(tmp_path / "photos")
    with pytest.raises(ValueError, match=r"cannot write \(.*blocker is a file, not a folder\)"):
        Outputs(source, OutputOptions(output=str(blocker / "out")))
    with pytest.raises(ValueError, match=r"cannot write \(.*blocker is a file, not a folder\)"):
        Outputs(source, OutputOptions(json_path=str(blocker / "r.jsonl")))
    long = tmp_path / ("n" * 300 + ".jsonl")
    with pytest.raises(ValueError, match=r"cannot write \(File name too long"):
        Outputs(source, OutputOptions(json_path=str(long)))
    with pytest.raises(ValueError, match=r"cannot write \(File name too long"):
        Outputs(open_source(photos[0]), OutputOptions(output=str(tmp_path / ("n" * 300 + ".jpg"))))


def _start_classify(model, photos, out, records, tmp_path):
    """``cvapps classify`` in a child process, one image per batch; SIGINT acts as Ctrl-C there."""
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); from cvapps.cli import main; main()"
    )
    args = [str(photos), "--model", str(model), "--output", str(out), "--json", str(records), "--batch-size", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(cvapps.__file__).parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-c", code, "classify", *args, "--runtime", "keras"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _records_so_far(folder, name):
    """Lines in the hidden temporary file beside ``folder / name`` (0 before it exists)."""
    stem, suffix = Path(name).stem, Path(name).suffix
    for temporary in folder.glob(f".{stem}.*{suffix}"):
        try:
            return temporary.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0
    return 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_folder_run_keeps_what_is_done(tiny_classifier, tmp_path, signum, code):
    # Before: SIGTERM left a hidden temporary .jsonl beside the output and no records; Ctrl-C dropped them.
    photos = tmp_path / "photos"
    for i in range(30):
        save(photos / f"{i:02d}.png", 8 * i)
    out, records = tmp_path / "out", tmp_path / "r.jsonl"
    child = _start_classify(tiny_classifier, photos, out, records, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while _records_so_far(tmp_path, records.name) < 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert child.poll() is None, "the run ended before it could be interrupted: " + child.stderr.read()
        # Stopped while the signal is sent, so that it lands in the middle of the run.
        child.send_signal(signal.SIGSTOP)
        child.send_signal(signum)
        child.send_signal(signal.SIGCONT)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == code, stderr
    lines = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    done = len(lines)
    assert 2 <= done < 30
    assert [Path(r["source"]).name for r in lines] == [f"{i:02d}.png" for i in range(done)]
    assert stderr.strip().splitlines()[-1].startswith(f"interrupted after {done} of 30 inputs")
    assert "Traceback" not in stderr
    written = files(out)
    assert not [name for name in written if Path(name).name.startswith(".")]  # no temporary image left
    assert done - 1 <= len(written) <= done and written == [f"{i:02d}.png" for i in range(len(written))]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary records left


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("how, code", [("SIGTERM", 143), ("Ctrl-C", 130)])
def test_outputs_finish_the_records_on_an_interrupt_and_restore_the_handler(tmp_path, capsys, how, code):
    for i in range(5):
        save(tmp_path / "photos" / f"{i}.png")
    records = tmp_path / "r.jsonl"
    before = signal.getsignal(signal.SIGTERM)
    outputs = Outputs(open_source(tmp_path / "photos"), OutputOptions(json_path=str(records), quiet=True))
    with pytest.raises(SystemExit) as stopped:
        with outputs:
            assert signal.getsignal(signal.SIGTERM) is not before
            for n, frame in enumerate(outputs.frames()):
                if n == 2:
                    if how == "SIGTERM":
                        os.kill(os.getpid(), signal.SIGTERM)
                    raise KeyboardInterrupt
                outputs.records.write({"source": frame.source})
    assert stopped.value.code == code
    assert signal.getsignal(signal.SIGTERM) is before and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert len(records.read_text().splitlines()) == 2 and files(tmp_path) == sorted(
        ["r.jsonl", *(f"photos/{i}.png" for i in range(5))]
    )
    assert capsys.readouterr().err.strip() == "interrupted after 2 of 5 inputs; the results written so far are kept."
