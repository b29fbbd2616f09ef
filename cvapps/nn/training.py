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
    {phase}_curves.png         the logged numbers as training curves (train and val_ per quantity)

and one record of the whole run:

    run.json                   what the run is: the trainer's arguments (all but the epochs), a
                               fingerprint of the data, the split, and per phase the epochs it was
                               trained for

A rerun with other arguments or other data refuses (``restart="resume"``, the CLI's ``--resume``,
continues the changed run deliberately; ``restart="fresh"``, ``--fresh``, starts over). A rerun of a
finished phase with more epochs continues it from its saved weights (the learning-rate schedule is
the new length's, entered at the epoch reached), and the phases after it are trained again.

Run folders of the earlier scheme (``done.weights.h5``, ``log.csv``, ``backup/`` of detection, faces and
style) are renamed to the ``main_`` names on first use, so they resume or reuse as before.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

OLD_NAMES = {"done.weights.h5": "main_done.weights.h5", "log.csv": "main_log.csv", "backup": "main_backup"}
RUN_RECORD = "run.json"
RESTARTS = ("check", "resume", "fresh")


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


def fingerprint(*parts: Any) -> str:
    """A short SHA-256 of what a run trains on: arrays by their bytes, shape and dtype; paths of existing
    files by (path, size, modification time); lists and tuples item by item; anything else by ``repr``.

    >>> import numpy as np
    >>> fingerprint(np.zeros(3)) == fingerprint(np.zeros(3)) != fingerprint(np.ones(3))
    True
    """
    digest = hashlib.sha256()

    def feed(part):
        if hasattr(part, "tobytes") and hasattr(part, "dtype"):
            digest.update(f"array{part.shape}{part.dtype}".encode())
            if part.size:  # (an empty array is its shape and dtype alone)
                digest.update(memoryview(part.tobytes() if not part.flags.c_contiguous else part).cast("B"))
        elif isinstance(part, (list, tuple)):
            digest.update(f"seq{len(part)}".encode())
            for item in part:
                feed(item)
        elif isinstance(part, Path) or (isinstance(part, str) and os.path.isfile(part)):
            try:
                stat = os.stat(part)
                digest.update(f"file{part}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            except OSError:
                digest.update(f"missing{part}".encode())
        else:
            digest.update(repr(part).encode())

    for part in parts:
        feed(part)
    return digest.hexdigest()[:16]


def split_record(fraction: float | None, seed: int | None, validation: Any) -> dict[str, Any]:
    """What the model records of its held-out split: the fraction and seed that carved it (None when
    the validation set was given) and the size and fingerprint of the held-out part, so ``eval
    --holdout`` can score the same images and refuse another split."""
    return {
        "fraction": fraction,
        "seed": seed,
        "validation_images": len(validation) if validation is not None else 0,
        "validation_fingerprint": fingerprint(validation_parts(validation)) if validation is not None else None,
    }


def label_parts(data: Any) -> Any:
    """What identifies a data set's labels, for the run's data fingerprint: detection boxes and classes
    (``samples``), segmentation masks (``masks``), else the class labels (``labels``), in the data's order,
    with its class names."""
    if data is None:
        return None
    names = list(getattr(data, "class_names", ()) or ())
    if getattr(data, "samples", None) is not None:
        return [names, [(str(s.path), s.boxes, s.class_ids) for s in data.samples]]
    if getattr(data, "masks", None) is not None:
        return [names, [str(p) for p in data.paths], list(data.masks)]
    return [names, getattr(data, "labels", None)]


def data_fingerprint(train: Any, validation: Any = None) -> str:
    """The fingerprint of a run's data (:func:`start_run`'s ``data``): the training images and their
    labels, and the held-out images."""
    return fingerprint(validation_parts(train), label_parts(train), validation_parts(validation))


def validation_parts(data: Any) -> Any:
    """What identifies a data set's images: its paths (``paths`` or ``samples[i].path``), else its arrays."""
    if data is None:
        return None
    if getattr(data, "paths", None) is not None:
        return sorted(str(p) for p in data.paths)  # the same images in any order are the same set
    if getattr(data, "samples", None) is not None:
        return sorted(str(getattr(s, "path", s)) for s in data.samples)
    return [getattr(data, "images", None), getattr(data, "labels", None)]


NOT_THE_RUN = (
    "data",
    "output",
    "validation",
    "checkpoint_dir",
    "verbose",
    "epochs",
    "restart",
    "overwrite",
    "progress",
)


def run_arguments(arguments: dict[str, Any], exclude: Sequence[str] = ()) -> dict[str, Any]:
    """A trainer's arguments that define its run: ``locals()`` at the top of the trainer, without the
    data (fingerprinted instead), where it is written, how verbose, the epochs (more epochs continue a
    run) and ``exclude``.

    Functions, modules and classes are left out too (``locals()`` may hold the trainer's imports; a
    function's text holds its address, which differs from process to process).

    >>> run_arguments({"data": "x", "epochs": 5, "learning_rate": 0.1, "seed": 0, "f": print})
    {'learning_rate': 0.1, 'seed': 0}
    """
    import types

    kept = {}
    for key, value in arguments.items():
        if key in NOT_THE_RUN or key in exclude:
            continue
        if callable(value) or isinstance(value, types.ModuleType):
            continue
        kept[key] = value
    return kept


def resolve_holdout(
    recorded: dict[str, Any] | None, fraction: float | str | None, seed: int | None
) -> tuple[float, int]:
    """The (fraction, seed) an ``eval --holdout`` scores: the model's recorded split (``recorded``, from
    :func:`split_record`) when ``fraction`` is ``"model"``; a fraction or seed that differs from the
    recorded one is an error, since it would score images the model trained on.

    >>> resolve_holdout({"fraction": 0.2, "seed": 0}, "model", None)
    (0.2, 0)
    >>> resolve_holdout(None, 0.1, None)   # a model that recorded nothing: as asked
    (0.1, 0)
    """
    if recorded is None or recorded.get("fraction") is None:
        if fraction == "model":
            how = "was validated on a separate folder" if recorded else "records no split (trained before splits were"
            raise ValueError(
                f"--holdout without a fraction uses the model's recorded split, but this model {how}"
                + (")" if not recorded else "")
                + "; pass the fraction it was trained with (e.g. --holdout 0.2), or score a folder it never saw."
            )
        return float(fraction), 0 if seed is None else int(seed)
    if fraction != "model" and abs(float(fraction) - recorded["fraction"]) > 1e-9:
        raise ValueError(
            f"--holdout {fraction} differs from the split this model was trained with (--val-fraction "
            f"{recorded['fraction']}): it would score images the model trained on. Pass --holdout alone "
            "to score its own held-out images."
        )
    if seed is not None and int(seed) != recorded.get("seed"):
        raise ValueError(
            f"--seed {seed} differs from the seed of this model's split ({recorded.get('seed')}): it would score "
            "images the model trained on. Leave --seed out."
        )
    return float(recorded["fraction"]), int(recorded.get("seed") or 0)


def check_holdout(recorded: dict[str, Any] | None, held_out: Any) -> None:
    """Refuse a held-out set that is not the one the model was validated on (the data changed since)."""
    if not recorded or not recorded.get("validation_fingerprint") or held_out is None:
        return
    if fingerprint(validation_parts(held_out)) != recorded["validation_fingerprint"]:
        raise ValueError(
            f"the held-out split of DATA ({len(held_out)} images) is not the one this model was validated on "
            f"({recorded.get('validation_images')} images): DATA changed since training (files added, removed "
            "or edited), so some held-out images may have been trained on. Score a folder the model never saw."
        )


def start_run(
    run_dir: str | Path,
    arguments: dict[str, Any],
    data: str,
    *,
    restart: str = "check",
    output: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Check the run folder against this run and record it in ``run.json``.

    Args:
        run_dir: the run folder (:func:`run_folder`).
        arguments: the trainer's arguments that define the run (JSON values; leave out the epochs,
            the output path, the checkpoint folder and verbosity).
        data: :func:`fingerprint` of the training data.
        restart: ``"check"``: a run folder of another run (other arguments or data) is an error;
            ``"resume"``: continue it anyway (the record is updated); ``"fresh"``: delete the folder's
            state and start over.
        output: the model file the run will write: it must be writable, and an existing one is refused
            unless ``overwrite`` or this run folder wrote it (:func:`record_output`), so a rerun needs no flag.

    Returns:
        The record (``{"arguments", "data", "phases"}``).
    """
    if restart not in RESTARTS:
        raise ValueError(f"restart must be one of {RESTARTS}, received {restart!r}.")
    run_dir = Path(run_dir)
    record_path = run_dir / RUN_RECORD
    arguments = json.loads(json.dumps(arguments, default=str))  # JSON values, as they will be read back
    try:
        owned = _owns_output(_read_record(record_path) if record_path.is_file() else None, output)
    except ValueError:  # a damaged record owns nothing (and --fresh deletes it below)
        if restart != "fresh":
            raise
        owned = False
    if output is not None:
        from cvapps.core.sinks import check_writable

        check_writable(output)
        if Path(output).exists() and not (overwrite or owned):
            raise ValueError(
                f"{output} already exists and this run folder did not write it; pass --overwrite "
                "(overwrite=True) to replace it, or choose another --output."
            )
    if restart == "fresh":
        _clear_run(run_dir)
    previous = _read_record(record_path)
    state = [p.name for p in run_dir.iterdir() if p.name != RUN_RECORD and not p.name.startswith(".")]
    if previous is None and state and restart == "check":
        raise ValueError(
            f"{run_dir} holds the state of an earlier run that recorded nothing about itself (made before "
            "runs were recorded); pass --resume to continue it as this run, or --fresh to start over."
        )
    if previous is not None and restart == "check":
        changed = sorted(
            key
            for key in set(arguments) | set(previous.get("arguments", {}))
            if arguments.get(key) != previous.get("arguments", {}).get(key)
        )
        if previous.get("data") != data:
            changed.append("the training data (files, sizes or dates)")
        if changed:
            raise ValueError(
                f"{run_dir} belongs to another run: {', '.join(changed)} changed. Pass --resume to continue "
                "the changed run deliberately, --fresh to start over, or another --checkpoint-dir."
            )
    record = {"arguments": arguments, "data": data, "phases": (previous or {}).get("phases", {})}
    if previous and previous.get("output"):
        record["output"] = previous["output"]
    _write_record(record_path, record)
    return record


def record_output(run_dir: str | Path, output: str | Path) -> None:
    """Note in ``run.json`` the model file this run wrote (path and modification time), so a rerun of
    the same command may replace it without ``--overwrite``."""
    path = Path(run_dir) / RUN_RECORD
    record = _read_record(path)
    if record is None:
        return
    record["output"] = {"path": str(Path(output).resolve()), "mtime_ns": Path(output).stat().st_mtime_ns}
    _write_record(path, record)


def _owns_output(record, output):
    if not record or output is None or not Path(output).exists():
        return False
    written = record.get("output") or {}
    return written.get("path") == str(Path(output).resolve()) and written.get("mtime_ns") == (
        Path(output).stat().st_mtime_ns
    )


def _clear_run(run_dir):
    for path in run_dir.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _read_record(path):
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: damaged run record ({error}); pass --fresh to start the run over.") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: damaged run record (not a JSON object); pass --fresh to start the run over.")
    return record


def _write_record(path, record):
    from cvapps.core.sinks import write_json

    try:
        write_json(path, record, overwrite=True)
    except ValueError as error:
        raise ValueError(f"cannot write the run record: {error}") from None


def _phase_trained(run_dir, phase, epochs):
    """Record that ``phase`` was trained for ``epochs``; phases recorded after it are stale: drop them."""
    path = run_dir / RUN_RECORD
    record = _read_record(path)
    if record is None:
        return
    phases = record.setdefault("phases", {})
    names = list(phases)
    if phase in names:
        for later in names[names.index(phase) + 1 :]:
            phases.pop(later)
            for stale in (f"{later}_done.weights.h5", f"{later}_log.csv"):
                if (run_dir / stale).exists():
                    (run_dir / stale).unlink()
            if (run_dir / f"{later}_backup").is_dir():
                shutil.rmtree(run_dir / f"{later}_backup")
    phases.pop(phase, None)
    phases[phase] = {"epochs": int(epochs)}
    _write_record(path, record)


def _phase_epochs(run_dir, phase):
    record = _read_record(run_dir / RUN_RECORD)
    return (record or {}).get("phases", {}).get(phase, {}).get("epochs")


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
    initial_epoch = 0
    if finished.is_file():
        with warnings.catch_warnings():  # a done file of the earlier scheme also holds optimizer state
            warnings.simplefilter("ignore", UserWarning)
            try:
                keep.load_weights(str(finished))
            except Exception as error:  # h5py and Keras raise many types for a damaged or foreign file
                raise ValueError(
                    f"{finished}: cannot be loaded ({type(error).__name__}: {str(error)[:120]}); the "
                    f"run folder belongs to another model or is damaged. Pass --fresh to start over, "
                    "or another --checkpoint-dir."
                ) from None
        trained = _phase_epochs(run_dir, phase)
        if trained is None or epochs <= trained:
            return PhaseResult(read_history(log) if log.is_file() else {}, True)
        initial_epoch = trained  # more epochs than the finished run: continue from its weights
        if getattr(model, "optimizer", None) is not None and train is not None and hasattr(train, "__len__"):
            model.optimizer.iterations.assign(trained * len(train))  # enter the schedule at that epoch
    _check_backup(run_dir / f"{phase}_backup")
    _check_free_space(run_dir, keep)
    if hasattr(train, "set_epoch"):  # the shuffle of the epoch the run resumes at (or continues from)
        train.set_epoch(initial_epoch or _logged_epochs(log))
    fit = model.fit(
        train,
        validation_data=validation,
        initial_epoch=initial_epoch,
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
    except OSError as error:
        raise ValueError(f"{finished}: cannot write the trained weights ({error.strerror}).") from None
    finally:
        if temporary.exists():
            temporary.unlink()
    _phase_trained(run_dir, phase, epochs)
    history = read_history(log) if initial_epoch and log.is_file() else fit.history
    write_curves(run_dir, phase)
    return PhaseResult({k: [float(v) for v in values] for k, values in history.items()}, False)


def write_curves(run_dir: str | Path, phase: str = "main") -> Path | None:
    """``{phase}_curves.png`` in the run folder: the phase's logged per-epoch numbers as training curves
    (:func:`cvapps.core.plots.training_curves_image`); None when the phase logged nothing."""
    from cvapps.core.plots import training_curves_image
    from cvapps.core.sinks import write_image

    run_dir = Path(run_dir)
    log = run_dir / f"{phase}_log.csv"
    history = read_history(log) if log.is_file() else {}
    if not history:
        return None
    image = training_curves_image(history, title=f"{run_dir.name}: phase {phase}")
    return write_image(run_dir / f"{phase}_curves.png", image, overwrite=True)


def _check_free_space(run_dir: Path, model: keras.Model) -> None:
    """Refuse to start a phase the run folder's disk cannot checkpoint: a checkpoint write that meets a
    full disk can crash the process (h5py), so ask for room for about four copies of the weights (the
    checkpoint, Keras's copy of the one before, the optimizer's state, the finished weights)."""
    needed = 4 * sum(math.prod(w.shape) * 4 for w in model.weights)  # float32 bytes
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise ValueError(
            f"{run_dir}: {free / 1e6:.1f} MB free on its disk, and checkpointing this model needs about "
            f"{needed / 1e6:.1f} MB; free some space or pass --checkpoint-dir on another disk."
        )


def _check_backup(backup: Path) -> None:
    """Before resuming: a damaged checkpoint of an interrupted phase (a write cut short) falls back to
    Keras's copy of the epoch before (``*.bkp``); when that is damaged too, one line says what to do."""
    weights, metadata = backup / "latest.weights.h5", backup / "training_metadata.json"
    if not (weights.exists() or metadata.exists()):
        return

    def readable(weights_path, metadata_path):
        try:
            import h5py

            with h5py.File(weights_path, "r"):
                pass
            json.loads(metadata_path.read_text(encoding="utf-8"))
            return True
        except Exception:  # h5py raises OSError and others for a cut-short file
            return False

    if readable(weights, metadata):
        return
    earlier_weights, earlier_metadata = Path(f"{weights}.bkp"), Path(f"{metadata}.bkp")
    if earlier_weights.exists() and earlier_metadata.exists() and readable(earlier_weights, earlier_metadata):
        os.replace(earlier_weights, weights)  # resume one epoch earlier rather than not at all
        os.replace(earlier_metadata, metadata)
        return
    raise ValueError(
        f"{backup}: the checkpoint of the interrupted run is damaged (cut short?); pass --fresh to start "
        f"over, or delete {backup} to train this phase again from its start."
    )


def _logged_epochs(log):
    """Epochs already in a phase's CSV log (an interrupted run resumes after them)."""
    if not log.is_file():
        return 0
    with open(log, newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


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
