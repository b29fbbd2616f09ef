"""The one resumable fit: finished phases are reused, more epochs continue them, a changed run is refused,
old run folders migrate, bad done files are named; the held-out split a model recorded is the one scored."""

import numpy as np
import pytest


def _tiny(keras):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return model


def _batches(keras):
    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            rng = np.random.default_rng(index)
            x = rng.normal(size=(4, 3)).astype("float32")
            return x, x.sum(1, keepdims=True)

    return Batches()


def test_a_finished_phase_is_reused_not_retrained(tmp_path):
    from cvapps._keras import import_keras
    from cvapps.nn.training import fit_resumable, run_folder

    keras = import_keras()
    run = run_folder(tmp_path / "run", "m.keras")
    model = _tiny(keras)
    first = fit_resumable(model, _batches(keras), run, epochs=2, verbose=0)
    assert not first.reused and len(first.history["loss"]) == 2
    assert sorted(p.name for p in run.iterdir()) == [
        "main_curves.png",
        "main_done.weights.h5",
        "main_log.csv",
    ]  # backup removed at the end; the curves drawn from the log
    again = _tiny(keras)
    second = fit_resumable(again, _batches(keras), run, epochs=2, verbose=0)
    assert second.reused and second.history["loss"] == pytest.approx(first.history["loss"])
    np.testing.assert_array_equal(again.get_weights()[0], model.get_weights()[0])


def test_old_run_folders_are_renamed_and_damaged_done_files_named(tmp_path):
    from cvapps._keras import import_keras
    from cvapps.nn.training import fit_resumable, run_folder

    keras = import_keras()
    old = tmp_path / "old"
    old.mkdir()
    (old / "done.weights.h5").write_bytes(b"not an h5 file")  # the earlier scheme's name, damaged
    (old / "log.csv").write_text("epoch,loss\n0,1.0\n")
    run = run_folder(old, "m.keras")
    assert sorted(p.name for p in run.iterdir()) == ["main_done.weights.h5", "main_log.csv"]
    with pytest.raises(ValueError, match=r"main_done.weights.h5: cannot be loaded.*--fresh to start over"):
        fit_resumable(_tiny(keras), _batches(keras), run, epochs=1, verbose=0)


def test_an_unwritable_run_folder_is_one_line(tmp_path):
    from cvapps.nn.training import run_folder

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot create the run folder .*--checkpoint-dir"):
        run_folder(blocker / "run", "m.keras")


def test_more_epochs_continue_a_finished_run_and_later_phases_are_redone(tmp_path):
    from cvapps._keras import import_keras
    from cvapps.nn.training import fit_resumable, run_folder, start_run

    keras = import_keras()
    run = run_folder(tmp_path / "run", "m.keras")
    start_run(run, {"lr": 0.1}, "data-1")
    model = _tiny(keras)
    fit_resumable(model, _batches(keras), run, epochs=2, verbose=0)
    fit_resumable(model, _batches(keras), run, epochs=1, phase="fine_tune", verbose=0)
    trained = [w.copy() for w in model.get_weights()]
    # the same command again: nothing trained
    start_run(run, {"lr": 0.1}, "data-1")
    again = _tiny(keras)
    assert fit_resumable(again, _batches(keras), run, epochs=2, verbose=0).reused
    # --epochs 4 after a finished 2-epoch run: 2 more epochs from the saved weights, logged after the first 2
    more = fit_resumable(again, _batches(keras), run, epochs=4, verbose=0)
    assert not more.reused and len(more.history["loss"]) == 4
    assert not np.allclose(again.get_weights()[0], trained[0])
    # the fine_tune phase was trained on the old main weights: it is stale now and trained again
    assert not (run / "fine_tune_done.weights.h5").exists()
    assert not fit_resumable(again, _batches(keras), run, epochs=1, phase="fine_tune", verbose=0).reused
    import json

    assert json.loads((run / "run.json").read_text())["phases"] == {"main": {"epochs": 4}, "fine_tune": {"epochs": 1}}


def test_a_changed_run_is_refused_unless_resume_or_fresh(tmp_path):
    from cvapps.nn.training import start_run

    run = tmp_path / "run"
    run.mkdir()
    start_run(run, {"learning_rate": 0.1, "seed": 0}, "data-1")
    (run / "main_log.csv").write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(ValueError, match=r"belongs to another run: learning_rate changed\. Pass --resume .* --fresh"):
        start_run(run, {"learning_rate": 0.2, "seed": 0}, "data-1")
    with pytest.raises(ValueError, match=r"the training data \(files, sizes or dates\) changed"):
        start_run(run, {"learning_rate": 0.1, "seed": 0}, "data-2")
    start_run(run, {"learning_rate": 0.2, "seed": 0}, "data-1", restart="resume")  # deliberately continued
    assert (run / "main_log.csv").exists()
    start_run(run, {"learning_rate": 0.3, "seed": 0}, "data-1", restart="fresh")  # state deleted
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]
    with pytest.raises(ValueError, match="restart must be one of"):
        start_run(run, {}, "data-1", restart="again")


def test_a_run_folder_from_before_records_asks_what_to_do(tmp_path):
    from cvapps.nn.training import start_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "main_done.weights.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="recorded nothing about itself.*--resume.*--fresh"):
        start_run(run, {"seed": 0}, "d")
    (run / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="damaged run record.*--fresh"):
        start_run(run, {"seed": 0}, "d")
    start_run(run, {"seed": 0}, "d", restart="fresh", output=tmp_path / "m.keras")  # --fresh gets past it
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]


def test_the_holdout_is_the_models_recorded_split():
    from cvapps.classification.data import ClassificationData, split_off
    from cvapps.nn.training import check_holdout, resolve_holdout, split_record

    images = np.arange(20 * 2 * 2 * 3, dtype=np.uint8).reshape(20, 2, 2, 3)
    data = ClassificationData(images, np.arange(20) % 2, ("a", "b"))
    _, val = split_off(data, 0.2, 0)
    recorded = split_record(0.2, 0, val)
    assert recorded["validation_images"] == 4  # 2 per class: round(10 * 0.2)
    assert resolve_holdout(recorded, "model", None) == (0.2, 0)
    with pytest.raises(ValueError, match=r"--holdout 0.05 differs from the split this model was trained with"):
        resolve_holdout(recorded, 0.05, None)  # 0.05 of DATA would mostly be training images
    with pytest.raises(ValueError, match=r"--seed 1 differs"):
        resolve_holdout(recorded, "model", 1)
    with pytest.raises(ValueError, match="records no split"):
        resolve_holdout(None, "model", None)
    with pytest.raises(ValueError, match="validated on a separate folder"):
        resolve_holdout(split_record(None, None, val), "model", None)
    check_holdout(recorded, split_off(data, 0.2, 0)[1])  # the same images: fine
    changed = ClassificationData(images[::-1].copy(), np.arange(20) % 2, ("a", "b"))
    with pytest.raises(ValueError, match="DATA changed since training"):
        check_holdout(recorded, split_off(changed, 0.2, 0)[1])


def test_a_damaged_checkpoint_falls_back_or_is_one_line(tmp_path):
    from cvapps._keras import import_keras
    from cvapps.nn.training import fit_resumable, run_folder

    keras = import_keras()
    run = run_folder(tmp_path / "run", "m.keras")
    backup = run / "main_backup"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"\x89HDF cut short")  # a checkpoint write cut short
    (backup / "training_metadata.json").write_text('{"epoch": 0')
    with pytest.raises(ValueError, match=r"main_backup: the checkpoint of the interrupted run is damaged.*--fresh"):
        fit_resumable(_tiny(keras), _batches(keras), run, epochs=1, verbose=0)
    # with Keras's copy of the epoch before intact, the run resumes from that one
    good = _tiny(keras)
    good.save_weights(str(tmp_path / "good.weights.h5"))
    (tmp_path / "good.weights.h5").rename(backup / "latest.weights.h5.bkp")
    (backup / "training_metadata.json.bkp").write_text('{"epoch": 0, "batch": -1}')
    result = fit_resumable(_tiny(keras), _batches(keras), run, epochs=2, verbose=0)
    assert not result.reused and (run / "main_done.weights.h5").is_file()


def test_a_full_disk_is_refused_before_the_phase_starts(tmp_path, monkeypatch):
    import shutil

    from cvapps._keras import import_keras
    from cvapps.nn.training import fit_resumable, run_folder

    keras = import_keras()
    run = run_folder(tmp_path / "run", "m.keras")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=10))  # 10 bytes left
    with pytest.raises(ValueError, match=r"MB free on its disk, and checkpointing this model needs about"):
        fit_resumable(_tiny(keras), _batches(keras), run, epochs=1, verbose=0)


def test_the_data_fingerprint_sees_labels_change_not_only_images():
    from types import SimpleNamespace

    from cvapps.nn.training import fingerprint, label_parts

    def data(box):
        sample = SimpleNamespace(path="a.jpg", boxes=np.array([box], np.float32), class_ids=np.array([0]))
        return SimpleNamespace(samples=[sample], class_names=("person",))

    same, moved = data([0, 0, 10, 10]), data([0, 0, 12, 10])
    assert fingerprint(label_parts(same)) == fingerprint(label_parts(data([0, 0, 10, 10])))
    assert fingerprint(label_parts(same)) != fingerprint(label_parts(moved))  # a relabelled box is other data
    empty = SimpleNamespace(path="b.jpg", boxes=np.zeros((0, 4), np.float32), class_ids=np.zeros(0, np.int64))
    negatives = SimpleNamespace(samples=[empty], class_names=("person",))  # a photo with no box
    assert fingerprint(label_parts(negatives)) != fingerprint(label_parts(same))
