"""The one resumable fit: finished phases are reused, old run folders migrate, bad done files are named."""

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
        "main_done.weights.h5",
        "main_log.csv",
    ]  # backup removed at the end
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
    with pytest.raises(ValueError, match=r"main_done.weights.h5: cannot be loaded.*Delete .* to start over"):
        fit_resumable(_tiny(keras), _batches(keras), run, epochs=1, verbose=0)


def test_an_unwritable_run_folder_is_one_line(tmp_path):
    from cvapps.nn.training import run_folder

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot create the run folder .*--checkpoint-dir"):
        run_folder(blocker / "run", "m.keras")
