"""Face app end to end: verify, the face database, calibration, a tiny training run, the CLI,
and (with CVAPPS_DATA) the shipped model against its card."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cvapps.cli import cli

PATTERN_SIZE = 32


def pattern(identity, seed):
    """A 32x32 "face" of ``identity``: stripes of an identity-specific period and angle, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:PATTERN_SIZE, :PATTERN_SIZE]
    angle = identity * 0.7
    period = 4 + 2 * (identity % 4)
    wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    gray = np.clip(128 + 90 * wave + rng.normal(0, 12, wave.shape), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def make_identities(root, people=8, per_person=5):
    for person in range(people):
        folder = Path(root) / f"person_{person}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_person):
            Image.fromarray(pattern(person, seed=100 * person + k)).save(folder / f"{k}.png")
    return Path(root)


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory):
    """(model path, data folder, train result) of a compact-xs face model trained a few seconds."""
    from cvapps.faces.train import train_faces

    root = tmp_path_factory.mktemp("faces")
    data = make_identities(root / "data")
    result = train_faces(
        data,
        root / "tiny_faces.keras",
        family="compact",
        size="xs",
        weights=None,
        image_size=PATTERN_SIZE,
        embedding_dim=16,
        epochs=2,
        steps_per_epoch=8,
        identities_per_batch=4,
        images_per_identity=4,
        learning_rate=3e-3,
        val_fraction=0.25,
        checkpoint_dir=root / "run",
        verbose=0,
    )
    return result.model_path, data, result


def test_tiny_training_separates_identities(tiny_faces):
    from cvapps.faces import embed_faces, pair_metrics, sample_pairs
    from cvapps.faces.train import load_faces
    from cvapps.models import load_model, model_info

    path, data, result = tiny_faces
    info = model_info(load_model(path))
    assert info.task == "faces" and info.image_size == PATTERN_SIZE
    assert info.settings["threshold"] == pytest.approx(result.threshold)
    assert info.settings["loss"] == "triplet" and info.settings["colour"] == "gray3"
    faces = load_faces(data, PATTERN_SIZE)
    embeddings = embed_faces(load_model(path), faces.images)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    # Pairs of all 8 identities (6 trained, 2 held out): same-person pairs are closer.
    metrics = pair_metrics(embeddings, sample_pairs(faces.labels, 80), folds=5)
    assert metrics["auc"] > 0.8, metrics


def test_training_resumes_from_the_done_marker(tiny_faces, tmp_path):
    from cvapps.faces.train import train_faces

    path, data, _ = tiny_faces
    started = time.time()
    again = train_faces(
        data,
        tmp_path / "again.keras",
        family="compact",
        size="xs",
        weights=None,
        image_size=PATTERN_SIZE,
        embedding_dim=16,
        epochs=2,
        steps_per_epoch=8,
        identities_per_batch=4,
        images_per_identity=4,
        learning_rate=3e-3,
        val_fraction=0.25,
        checkpoint_dir=path.parent / "run",
        verbose=0,
    )
    assert again.reused == ("main",) and time.time() - started < 30  # nothing retrained
    with pytest.raises(ValueError, match="belongs to another run: .*learning_rate"):
        train_faces(data, tmp_path / "other.keras", learning_rate=1e-2, checkpoint_dir=path.parent / "run")


def test_verify_same_and_missing_face(tiny_faces):
    from cvapps.faces import FaceEncoder, verify

    path, _, _ = tiny_faces
    encoder = FaceEncoder(path, detector="none")
    a, b = pattern(0, 1), pattern(5, 2)
    same = verify(a, a, encoder)
    assert same.verified and same.distance == pytest.approx(0, abs=1e-6) and same.error is None
    assert same.boxes == ((0.0, 0.0, 32.0, 32.0),) * 2
    other = verify(a, b, encoder, threshold=0.0)
    assert not other.verified and other.distance > 0
    # Haar finds no face in a flat image: a result, not an exception.
    import skimage.data

    blank = np.full((64, 64, 3), 128, np.uint8)
    missing = verify(blank, skimage.data.astronaut(), FaceEncoder(path, detector="haar"))
    assert missing.verified is False and missing.error == "no face found in image 1" and missing.distance is None
    with pytest.raises(ValueError, match="compare must be one of"):
        verify(a, a, encoder, compare="best")


def test_database_enroll_identify_and_refresh(tiny_faces, tmp_path):
    from cvapps.faces import FaceEncoder
    from cvapps.faces.database import FaceDatabase

    path, data, _ = tiny_faces
    encoder = FaceEncoder(path, detector="none")
    calls = []
    original = encoder.encode
    encoder.encode = lambda image: calls.append(image) or original(image)
    db = FaceDatabase(tmp_path / "db", encoder)
    enrolled = db.enroll("Ada Lovelace", [data / "person_0" / "0.png"])
    assert enrolled.name == "Ada_Lovelace" and len(calls) == 1
    assert (tmp_path / "db" / ".cache" / "Ada_Lovelace.npz").is_file()
    db.enroll("Alan", [pattern(3, 7)])
    # A fresh database object reads the cache from disk: nothing re-encoded.
    calls.clear()
    fresh = FaceDatabase(tmp_path / "db", encoder)
    names, codes = fresh.embeddings()
    assert names == ["Ada_Lovelace", "Alan"] and codes.shape == (2, 16) and calls == []
    [who] = fresh.identify(data / "person_0" / "0.png", threshold=1e-6, gallery=(names, codes))
    assert who.name == "Ada_Lovelace" and who.distance == pytest.approx(0, abs=1e-6)
    [nobody] = fresh.identify(pattern(6, 9), threshold=0.0, gallery=(names, codes))
    assert nobody.name == "unknown" and nobody.candidate in names
    # A changed photo (new size and mtime) is re-encoded; a new one is added; a removed one drops out.
    photo = tmp_path / "db" / "Ada_Lovelace" / "0.png"
    Image.fromarray(pattern(1, 3)).save(photo)
    os.utime(photo, ns=(time.time_ns(), time.time_ns() + 10**9))
    calls.clear()
    assert fresh.embeddings()[1].shape == (2, 16) and len(calls) == 1
    Image.fromarray(pattern(2, 4)).save(tmp_path / "db" / "Ada_Lovelace" / "extra.png")
    calls.clear()
    assert fresh.embeddings()[0] == ["Ada_Lovelace", "Ada_Lovelace", "Alan"] and len(calls) == 1
    (tmp_path / "db" / "Ada_Lovelace" / "extra.png").unlink()
    calls.clear()
    assert fresh.embeddings()[0] == ["Ada_Lovelace", "Alan"] and calls == []


def test_enroll_without_a_face_is_refused(tiny_faces, tmp_path):
    from cvapps.faces.database import FaceDatabase

    db = FaceDatabase(tmp_path / "db", tiny_faces[0], detector="haar")
    with pytest.raises(ValueError, match="no face found in any photo"):
        db.enroll("Nobody", [np.full((64, 64, 3), 128, np.uint8)])
    assert db.people() == []


def test_calibrate_from_csv(tiny_faces, tmp_path):
    from cvapps.faces import calibrate

    path, data, _ = tiny_faces
    rows = [
        (f"data/person_{p}/{i}.png", f"data/person_{q}/{j}.png", int(p == q))
        for p, q, i, j in [
            (0, 0, 0, 1),
            (1, 1, 0, 2),
            (2, 2, 1, 3),
            (3, 3, 0, 4),
            (0, 1, 0, 0),
            (2, 3, 1, 1),
            (4, 5, 0, 0),
            (6, 7, 2, 2),
        ]
    ]
    csv_path = data.parent / "pairs.csv"
    csv_path.write_text("image1,image2,same\n" + "".join(f"{a},{b},{s}\n" for a, b, s in rows))
    result = calibrate(csv_path, path, detector="none")
    assert result.num_pairs == 8 and result.skipped == ()
    assert 0 <= result.eer <= 1 and result.threshold > 0 and len(result.far) == len(result.tar)
    bad = tmp_path / "bad.csv"
    bad.write_text("a.png,b.png,maybe\nc.png,d.png,2\n")
    with pytest.raises(ValueError, match="same must be 1 or 0"):
        calibrate(bad, path, detector="none")


# --- CLI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ["verify"],
        ["faces"],
        ["faces", "enroll"],
        ["faces", "identify"],
        ["faces", "calibrate"],
        ["train", "faces"],
        ["eval", "faces"],
        ["webcam", "faces"],
    ],
)
def test_face_commands_have_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_cli_verify_json_and_missing_face(tiny_faces, tmp_path):
    import skimage.data

    path, data, _ = tiny_faces
    a = str(data / "person_0" / "0.png")
    result = CliRunner().invoke(cli, ["verify", a, a, "--model", str(path), "--detector", "none", "--json", "-"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["verified"] is True and record["distance"] == pytest.approx(0, abs=1e-6)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(blank)
    astronaut = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(astronaut)
    result = CliRunner().invoke(cli, ["verify", str(astronaut), str(blank), "--model", str(path)])
    assert result.exit_code == 1 and "no face found in image 2" in result.output
    result = CliRunner().invoke(cli, ["verify", a, str(tmp_path / "nope.png"), "--model", str(path)])
    assert result.exit_code == 2 and "no such file" in result.output


def test_cli_enroll_identify_webcam(tiny_faces, tmp_path):
    import cv2

    path, data, _ = tiny_faces
    db = str(tmp_path / "db")
    common = ["--db", db, "--model", str(path), "--detector", "none"]
    result = CliRunner().invoke(cli, ["faces", "enroll", "Person Zero", str(data / "person_0" / "0.png"), *common])
    assert result.exit_code == 0 and "enrolled Person_Zero" in result.output, result.output
    result = CliRunner().invoke(
        cli, ["faces", "identify", str(data / "person_0" / "0.png"), *common, "--threshold", "0.001", "--json", "-"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["results"][0]["name"] == "Person_Zero"
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 32))
    for _ in range(3):
        writer.write(pattern(0, 0)[..., ::-1])
    writer.release()
    result = CliRunner().invoke(
        cli,
        ["webcam", "faces", "--source", str(video), "--no-show", "--max-frames", "3", *common, "--threshold", "0.001"],
    )
    assert result.exit_code == 0 and "3 faces seen, 3 named" in result.output, result.output
    tracked = CliRunner().invoke(
        cli,
        ["webcam", "faces", "--source", str(video), "--no-show", *common, "--threshold", "0.001", "--track"],
    )
    assert tracked.exit_code == 0 and "3 faces seen, 3 named" in tracked.output, tracked.output
    result = CliRunner().invoke(
        cli, ["faces", "identify", str(video), *common, "--threshold", "0.001", "--track", "--json", "-"]
    )
    assert result.exit_code == 0, result.output
    # CliRunner mixes stderr (the progress bar) into the output: a record starts at its "{"
    records = [json.loads(line[line.index("{") :]) for line in result.output.splitlines() if "{" in line]
    ids = [face["track_id"] for record in records for face in record["results"]]
    assert len(ids) == 3 and ids[0] == -1 and ids[1] == ids[2] >= 0, result.output  # confirmed on its second frame
    assert all(face["name"] == "Person_Zero" for record in records for face in record["results"])


def test_cli_eval_holdout_and_calibrate(tiny_faces, tmp_path):
    path, data, _ = tiny_faces
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(
        cli,
        ["eval", "faces", str(data), "--model", str(path), "--holdout", "0.25", "--json", str(report_path), "--quiet"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["task"] == "faces" and report["num_images"] == 10  # 2 of 8 people x 5 photos
    assert {"accuracy", "auc", "tar_at_far_1e-3", "threshold"} <= set(report["metrics"])
    assert (tmp_path / "report_roc.png").is_file()


# --- real data ---------------------------------------------------------------------------------


def shipped_faces():
    from cvapps.models import model_card, shipped_models

    if "faces" not in shipped_models() or not model_card("faces"):
        pytest.skip("no shipped faces model with a card")
    return model_card("faces")


def test_shipped_model_reaches_its_card(real_data):
    """The card's held-out LFW accuracy, reproduced (same split, same pairs); about 15-30 s."""
    from cvapps.faces import embed_faces, pair_metrics, sample_pairs
    from cvapps.faces.train import load_faces
    from cvapps.runtime import open_model

    card = shipped_faces()
    model = open_model("faces", task="faces", runtime="keras")
    held = load_faces(real_data / "lfw", model.info.image_size, holdout=card["holdout"], seed=card["seed"])
    assert len(held) == card["eval_images"]
    metrics = pair_metrics(embed_faces(model, held.images, 128), sample_pairs(held.labels, 3000, card["seed"]))
    assert metrics["accuracy"] >= card["metrics"]["accuracy"] - 0.005
    assert metrics["auc"] >= card["metrics"]["auc"] - 0.005


def test_shipped_model_verifies_held_out_people(real_data):
    """Photos of held-out LFW people (never trained on), through the Haar detector: the card's
    6 same-person and 6 different-person pairs; at most one mistake in 12, and the CLI agrees."""
    from cvapps.faces import FaceEncoder, verify

    card = shipped_faces()
    lfw = real_data / "lfw"
    encoder = FaceEncoder("faces", detector="haar")
    pairs = [(a, b, True) for a, b in card["examples"]["same"]] + [
        (a, b, False) for a, b in card["examples"]["different"]
    ]
    right = sum(verify(lfw / a, lfw / b, encoder).verified is expected for a, b, expected in pairs)
    assert right >= len(pairs) - 1, f"{right} of {len(pairs)} right"
    for a, b, expected in (pairs[0], pairs[-1]):
        result = CliRunner().invoke(cli, ["verify", str(lfw / a), str(lfw / b), "--json", "-"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output.strip().splitlines()[-1])["verified"] is expected


# --- identification threshold, enroll dedupe, damaged cache, calibrate --far (issue 18) -------


def test_identify_uses_the_identification_threshold_not_the_verification_one(tiny_faces, tmp_path):
    """The defect: identify named faces within the 1:1 threshold. A stranger within the 1:1
    threshold but beyond the 1:N one is 'unknown'; --threshold still overrides."""
    from cvapps.faces import FaceEncoder
    from cvapps.faces.database import FaceDatabase

    path, _, _ = tiny_faces
    encoder = FaceEncoder(path, detector="none")
    encoder.threshold = 4.0  # every face is within the 1:1 threshold (squared distances are <= 4)
    encoder.identify_threshold = 1e-4
    db = FaceDatabase(tmp_path / "db", encoder)
    db.enroll("Ada", [pattern(0, 1)])
    [stranger] = db.identify(pattern(5, 2))
    assert stranger.name == "unknown" and stranger.candidate == "Ada" and stranger.threshold == 1e-4
    [same] = db.identify(pattern(0, 1))
    assert same.name == "Ada"
    [given] = db.identify(pattern(5, 2), threshold=4.0)
    assert given.name == "Ada" and given.threshold == 4.0
    # The tiny model held out 2 people: too few to choose a 1:N threshold, so it falls back.
    fallback = FaceEncoder(path, detector="none")
    assert fallback.identify.source == "verification" and fallback.identify_threshold == fallback.threshold


def test_shipped_model_identifies_with_its_card_threshold():
    from cvapps.faces import FaceEncoder
    from cvapps.faces.encoder import _card_settings

    card = shipped_faces().get("settings", {})
    if "identify_threshold" not in card:
        pytest.skip("the shipped faces card has no identify_threshold")
    encoder = FaceEncoder("faces", detector="none")
    assert encoder.identify.source == "card" and encoder.identify_threshold == card["identify_threshold"]
    assert encoder.identify_threshold < encoder.threshold
    assert "in 1,000 strangers as someone with 2 people enrolled, 1.0 with 10" in encoder.identify.describe(10)
    assert _card_settings("faces", "0" * 16) == {}  # another model file named faces: not its card


def test_cli_identify_says_which_threshold_once(tiny_faces, tmp_path):
    path, data, _ = tiny_faces
    db = str(tmp_path / "db")
    common = ["--db", db, "--model", str(path), "--detector", "none"]
    assert (
        CliRunner().invoke(cli, ["faces", "enroll", "Zero", str(data / "person_0" / "0.png"), *common]).exit_code == 0
    )
    result = CliRunner().invoke(cli, ["faces", "identify", str(data / "person_0"), *common])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("identification threshold") == 1 and "verification (1:1) threshold" in result.stderr
    result = CliRunner().invoke(cli, ["faces", "identify", str(data / "person_0"), *common, "--threshold", "0.5"])
    assert "identification threshold 0.5000 (given with --threshold" in result.stderr
    result = CliRunner().invoke(cli, ["faces", "identify", str(data / "person_0"), *common, "--quiet"])
    assert result.exit_code == 0 and "threshold" not in result.stderr


def test_enrolling_a_photo_twice_adds_nothing(tiny_faces, tmp_path):
    from cvapps.faces import FaceEncoder
    from cvapps.faces.database import FaceDatabase

    path, data, _ = tiny_faces
    db = FaceDatabase(tmp_path / "db", FaceEncoder(path, detector="none"))
    photo = data / "person_0" / "0.png"
    assert len(db.enroll("Ada", [photo]).added) == 1
    again = db.enroll("Ada", [photo, photo])
    assert again.added == () and len(again.already) == 2 and "already enrolled as" in again.already[0]
    assert db.enroll("Ada", [pattern(3, 3)]).added and db.enroll("Ada", [pattern(3, 3)]).added == ()  # arrays too
    assert sorted(p.name for p in (tmp_path / "db" / "Ada").iterdir()) == ["0.png", "photo_0.png"]
    assert len(db.enroll("Bob", [photo]).added) == 1  # the same photo for another person is that person's
    common = ["--db", str(tmp_path / "db"), "--model", str(path), "--detector", "none"]
    result = CliRunner().invoke(cli, ["faces", "enroll", "Ada", str(photo), *common])
    assert result.exit_code == 0 and "0 photo(s) added, 1 already enrolled" in result.output, result.output


ENROLL_SCRIPT = """
import sys, time
import numpy as np
from cvapps.faces.database import FaceDatabase
from cvapps.faces.detector import FaceDetector
from cvapps.faces.encoder import FaceEncoder
from cvapps.models import ModelInfo


class Stub(FaceEncoder):  # no model: every face embeds to the same vector
    def __init__(self):
        self.detector, self.model_id, self.threshold = FaceDetector("none"), "stub", 1.0
        self.info = ModelInfo("faces", (), 32, "stub", {"embedding_dim": 4})

    def encode(self, image):
        return [object()], np.full((1, 4), 0.5, np.float32)


db, photo, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
database = FaceDatabase(db, Stub())
time.sleep(max(0.0, start - time.time()))  # all processes enroll at the same moment
result = database.enroll("Ada", [photo])
print(len(result.added), len(getattr(result, "already", ())))
"""


def test_concurrent_enrolls_of_one_photo_leave_one_copy(tmp_path):
    """The defect: six simultaneous 'cvapps faces enroll Ada same.png' left six copies."""
    import subprocess
    import sys

    photo = tmp_path / "same.png"
    Image.fromarray(pattern(0, 0)).save(photo)
    script = tmp_path / "enroll.py"
    script.write_text(ENROLL_SCRIPT)
    start = str(time.time() + 4)  # after every process has imported numpy and OpenCV
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "db"), str(photo), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert sorted(p.name for p in (tmp_path / "db" / "Ada").iterdir()) == ["same.png"]
    assert sorted(out.split()[0] for out, _ in outputs) == ["0"] * 5 + ["1"]


@pytest.fixture
def cvapps_log():
    """Messages of the 'cvapps' logger during the test (the CLI prints them on stderr)."""
    import logging

    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("cvapps")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def damage(path, how):
    content = path.read_bytes()
    path.write_bytes(b"" if how == "empty" else content[: len(content) // 2] if how == "truncated" else b"junk")


@pytest.mark.parametrize("how", ["empty", "truncated", "junk"])
def test_damaged_cache_is_rebuilt_with_a_warning(tiny_faces, tmp_path, how, cvapps_log):
    """The defect: an empty cache ended 'cvapps faces identify' with 'Aborted!' (EOFError), a
    truncated one with a traceback (BadZipFile)."""
    from cvapps.faces import FaceEncoder
    from cvapps.faces.database import FaceDatabase

    path, data, _ = tiny_faces
    encoder = FaceEncoder(path, detector="none")
    FaceDatabase(tmp_path / "db", encoder).enroll("Ada", [data / "person_0" / "0.png"])
    cache = tmp_path / "db" / ".cache" / "Ada.npz"
    damage(cache, how)
    names, codes = FaceDatabase(tmp_path / "db", encoder).embeddings()
    assert names == ["Ada"] and codes.shape == (1, 16)
    [warning] = cvapps_log
    assert "damaged face-database cache" in warning and str(cache) in warning
    with np.load(cache) as rebuilt:  # rewritten whole
        assert list(rebuilt["names"]) == ["0.png"]
    damage(cache, how)
    common = ["--db", str(tmp_path / "db"), "--model", str(path), "--detector", "none"]
    cvapps_log.clear()
    result = CliRunner().invoke(cli, ["faces", "identify", str(data / "person_0" / "0.png"), *common])
    assert result.exit_code == 0 and "Aborted" not in result.output and result.exception is None, result.output
    assert "Ada" in result.stdout and len(cvapps_log) == 1 and "rebuilding it from the photos" in cvapps_log[0]


def test_calibrate_reports_the_threshold_at_a_false_accept_rate(tiny_faces, tmp_path):
    from cvapps.faces import calibrate

    path, data, _ = tiny_faces
    rows = [(f"person_{p}/{i}.png", f"person_{q}/{j}.png", int(p == q)) for p, q, i, j in CALIBRATION_PAIRS]
    csv_path = data / "far_pairs.csv"
    csv_path.write_text("".join(f"{a},{b},{s}\n" for a, b, s in rows))
    result = calibrate(csv_path, path, detector="none", far=0.25)
    assert result.target_far == 0.25 and result.far_there <= 0.25 and 0 <= result.tar_there <= 1
    assert result.num_same == 4 and result.num_different == 4 and result.far_resolved
    with pytest.raises(ValueError, match="far must be a false accept rate"):
        calibrate(csv_path, path, detector="none", far=1.5)
    common = ["--model", str(path), "--detector", "none"]
    result = CliRunner().invoke(
        cli, ["faces", "calibrate", str(csv_path), *common, "--far", "0.001", "--roc", str(tmp_path / "roc.png")]
    )
    assert result.exit_code == 0, result.output
    assert "at FAR <= 0.001: threshold" in result.stdout and "TAR" in result.stdout
    assert "only 4 different-person pairs" in result.stderr
    assert np.asarray(Image.open(tmp_path / "roc.png")).shape == (516, 514, 3)
    result = CliRunner().invoke(cli, ["faces", "calibrate", str(csv_path), *common, "--far", "0.25", "--json", "-"])
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["target_far"] == 0.25 and record["far_at_far_threshold"] <= 0.25
    assert {"far_threshold", "tar_at_far_threshold", "num_different"} <= set(record)


CALIBRATION_PAIRS = [
    (0, 0, 0, 1),
    (1, 1, 0, 2),
    (2, 2, 1, 3),
    (3, 3, 0, 4),
    (0, 1, 0, 0),
    (2, 3, 1, 1),
    (4, 5, 0, 0),
    (6, 7, 2, 2),
]


def test_shipped_model_names_few_strangers_with_two_people_enrolled(real_data, tmp_path):
    """The issue's case: two held-out LFW people enrolled from one photo each, 60 photos of 30
    other held-out people. The verification threshold named a fifth of them; the 1:N one about
    none (measured 0.0002 of strangers with 2 people enrolled). About 10 s (Haar + ONNX)."""
    from cvapps.faces import FaceEncoder
    from cvapps.faces.database import FaceDatabase
    from cvapps.faces.train import held_out_identities, list_identity_folders

    if "identify_threshold" not in shipped_faces().get("settings", {}):
        pytest.skip("the shipped faces card has no identify_threshold")
    people = list_identity_folders(real_data / "lfw")
    held = [paths for (_, paths), out in zip(people, held_out_identities(len(people), 0.1, 0)) if out]
    db = FaceDatabase(tmp_path / "db", FaceEncoder("faces", detector="haar"))
    for number, paths in enumerate(held[:2]):
        db.enroll(f"person_{number}", paths[:1])
    gallery = db.embeddings()
    strangers = [p for paths in held[2:32] for p in paths[:2]]
    found = [who for photo in strangers for who in db.identify(photo, gallery=gallery)[:1]]
    assert len(found) >= 55  # Haar misses a few crops
    named_1to1 = sum(who.distance <= db.encoder.threshold for who in found)
    named = sum(who.name != "unknown" for who in found)
    assert named <= 1 < named_1to1, (named, named_1to1)
