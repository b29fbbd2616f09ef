"""One resumable fit for every trainer: checkpoint, resume, CSV log, and the result type.

    >>> from cvapps.nn.training import fit_resumable
    >>> phase = fit_resumable(model, batches, "runs/mine", epochs=20)    # doctest: +SKIP
    >>> phase.reused, phase.history["loss"][-1]                           # doctest: +SKIP
    (False, 0.41)

A run folder holds, per phase (``main``, ``fine_tune``, ...), the same three things for all five apps:

    {phase}_backup/            Keras's BackupAndRestore state while the phase runs: an interrupted
                               run resumes from its last finished epoch when the command is run again
    {phase}_log.csv            one row per epoch (CSVLogger, appended across resumes)
    {phase}_done.weights.h5    the weights at the end of the phase, written atomically; a rerun of a
                               finished phase loads them instead of training again (``reused``)

Run folders of the earlier scheme (``done.weights.h5``, ``log.csv``, ``backup/`` of detection, faces and
style) are renamed to the ``main_`` names on first use, so they resume or reuse as before.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

OLD_NAMES = {"done.weights.h5": "main_done.weights.h5", "log.csv": "main_log.csv", "backup": "main_backup"}


@dataclass(frozen=True)
class PhaseResult:
    """One phase of a run: its per-epoch history and whether a finished phase was reused (nothing trained)."""

    history: dict
    reused: bool


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced, for every app.

    Attributes:
        model_path: the saved ``.keras`` model.
        history: phase -> {metric: per-epoch values}.
        seconds: wall time of the call.
        skipped: messages about training files that could not be used.
        reused: phases taken from a finished earlier run instead of trained (a rerun of the same command).
        metrics: held-out numbers the trainer computed at the end (faces: ``threshold``, ``accuracy``, ``auc``).
    """

    model_path: Path
    history: dict
    seconds: float
    skipped: list = field(default_factory=list)
    reused: tuple = ()
    metrics: dict = field(default_factory=dict)

    @property
    def threshold(self) -> float | None:
        """The face model's chosen distance threshold (faces only), else None."""
        return self.metrics.get("threshold")

    @property
    def val_metrics(self) -> dict:
        """Alias of ``metrics`` (the faces trainer's held-out pair metrics)."""
        return self.metrics


def run_folder(checkpoint_dir: str | Path | None, output: str | Path) -> Path:
    """The run folder: ``checkpoint_dir``, or ``runs/<output stem>``; created, old names migrated."""
    folder = Path(checkpoint_dir or Path("runs") / Path(output).stem)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"cannot create the run folder {folder} ({error.strerror}); pass --checkpoint-dir a writable folder."
        ) from None
    for old, new in OLD_NAMES.items():
        if (folder / old).exists() and not (folder / new).exists():
            os.replace(folder / old, folder / new)
    return folder


def fit_resumable(
    model: keras.Model,
    train: Any,
    run_dir: str | Path,
    *,
    epochs: int,
    phase: str = "main",
    validation: Any = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = 1,
    keep: keras.Model | None = None,
) -> PhaseResult:
    """``model.fit`` that survives interruption and is not repeated once finished.

    Args:
        model: a compiled ``keras.Model``.
        train, validation: what ``fit`` takes (a ``keras.utils.PyDataset``).
        run_dir: the run folder (:func:`run_folder`).
        epochs: epochs of this phase.
        phase: the phase name, the prefix of its files.
        callbacks: extra callbacks (run after the backup, before the CSV log).
        keep: the model whose weights are the phase's result, when ``model`` is a training wrapper
            around it (the faces and style trainers); default ``model``.

    Returns:
        :class:`PhaseResult`; when the phase had finished before, its weights are loaded into ``keep``
        and its logged history returned, with ``reused=True``.
    """
    import warnings

    from cvapps._keras import import_keras

    keras = import_keras()
    run_dir = Path(run_dir)
    keep = keep or model
    finished = run_dir / f"{phase}_done.weights.h5"
    log = run_dir / f"{phase}_log.csv"
    if finished.is_file():
        with warnings.catch_warnings():  # a done file of the earlier scheme also holds optimizer state
            warnings.simplefilter("ignore", UserWarning)
            try:
                keep.load_weights(str(finished))
            except Exception as error:  # h5py and Keras raise many types for a damaged or foreign file
                raise ValueError(
                    f"{finished}: cannot be loaded ({type(error).__name__}: {str(error)[:120]}); the "
                    f"run folder belongs to another model or is damaged. Delete {run_dir} to start over, "
                    "or pass another --checkpoint-dir."
                ) from None
        return PhaseResult(read_history(log) if log.is_file() else {}, True)
    fit = model.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        verbose=verbose,
        callbacks=[
            keras.callbacks.BackupAndRestore(str(run_dir / f"{phase}_backup")),
            *callbacks,
            keras.callbacks.CSVLogger(str(log), append=True),
        ],
    )
    temporary = run_dir / f".{phase}_done.{os.getpid()}.weights.h5"
    try:
        keep.save_weights(str(temporary))
        os.replace(temporary, finished)
    finally:
        if temporary.exists():
            temporary.unlink()
    return PhaseResult({k: [float(v) for v in values] for k, values in fit.history.items()}, False)


def read_history(csv_path: str | Path) -> dict:
    """Per-epoch numbers from a CSVLogger file: {name: [values]}, the epoch column and non-numeric columns
    left out.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = path.write_text("epoch,loss,note\\n0,0.5,a\\n1,0.25,b\\n")
    >>> read_history(path)
    {'loss': [0.5, 0.25]}
    """
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    history = {}
    for key in rows[0] if rows else {}:
        if key == "epoch":
            continue
        try:
            history[key] = [float(row[key]) for row in rows]
        except (TypeError, ValueError):
            continue
    return history
