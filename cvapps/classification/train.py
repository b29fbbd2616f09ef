"""Training a classifier: the recipe of ``cvapps train classify``."""

from __future__ import annotations

import time
from pathlib import Path

from cvapps.classification.model import build_classifier, with_flip_averaging
from cvapps.nn.training import TrainResult

# --- training ----------------------------------------------------------------------------------


def train_classifier(
    data: str | Path,
    output: str | Path,
    *,
    validation: str | Path | None = None,
    val_fraction: float = 0.05,
    family: str = "compact",
    size: str = "s",
    alpha: float = 0.35,
    image_size: int = 64,
    weights: str | Path | None = None,
    epochs: int = 20,
    fine_tune_epochs: int = 0,
    fine_tune_from: str = "P4",
    freeze_backbone: bool = False,
    batch_size: int = 128,
    optimizer: str = "sgd",
    learning_rate: float = 0.2,
    fine_tune_learning_rate: float | None = None,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.1,
    flip: bool = True,
    translate: float = 0.125,
    dropout: float = 0.0,
    head: str | None = None,
    tta: bool = False,
    patience: int | None = None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    verbose: int | str = 1,
    restart: str = "check",
    overwrite: bool = False,
) -> TrainResult:
    """Train a classifier on a folder-per-class data set or an ``.npz``; save it to ``output``.

    Args:
        data: folder (``<class>/*`` or ``train/<class>/*``) or keras.datasets-style ``.npz``.
        output: where the final ``.keras`` model is written (atomically).
        validation: a validation folder; default: ``DATA/val`` if present, else ``val_fraction``
            of the training images carved out (stratified).
        family, size, alpha, weights: backbone (see :func:`cvapps.nn.backbone.build_backbone`);
            ``weights="imagenet"`` with ``family="mobilenetv2"`` for transfer learning.
        epochs: epochs of the main phase (head only when ``freeze_backbone``).
        fine_tune_epochs: after the main phase, epochs fine-tuning the backbone's top levels
            (``fine_tune_from`` and deeper; batch norm stays frozen) with the head, at lr / 10.
        checkpoint_dir: where the resumable state lives; rerunning the same command resumes
            from the last finished epoch (and skips finished phases). Default:
            ``runs/<output stem>``.
        optimizer: ``"sgd"`` (Nesterov momentum 0.9; training from scratch) or ``"adam"``
            (AdamW; transfer learning on small data, e.g. learning_rate=1e-3).
        learning_rate: peak of the one-cycle schedule of the main phase.
        fine_tune_learning_rate: peak for the fine-tuning phase; default learning_rate / 10.
        head: ``"pool"`` or ``"original"`` (see :func:`build_classifier`); default ``"original"`` for
            the classic families (``family="lenet5"`` trains LeNet-5 itself), ``"pool"`` otherwise.
        tta: save the model averaged over each photo and its mirror (:func:`with_flip_averaging`);
            rerunning a finished run with ``tta=True`` only re-saves it.
        patience: stop when validation accuracy has not improved for this many epochs.
        restart: what a run folder of another run (other arguments or data) means:
            ``"check"`` refuses it, ``"resume"`` continues it, ``"fresh"`` starts over (see
            :func:`cvapps.nn.training.start_run`). More ``epochs`` than a finished run continue it.

    Returns:
        :class:`TrainResult`.
    """
    from cvapps.nn.training import run_arguments

    arguments = run_arguments(locals(), exclude=("fine_tune_epochs", "tta"))  # what defines the run
    from cvapps._keras import import_keras

    keras = import_keras()
    from cvapps.classification.data import (
        ClassificationBatches,
        load_class_folders,
        load_classification,
        split_off,
    )
    from cvapps.models import keras_output_path, save_model
    from cvapps.nn.backbone import build_backbone, train_top_levels
    from cvapps.nn.layers import OneCycle
    from cvapps.nn.training import (
        data_fingerprint,
        fit_resumable,
        record_output,
        run_folder,
        split_record,
        start_run,
    )

    started = time.time()
    output = keras_output_path(output)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, received {epochs}.")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', received {optimizer!r}.")
    train = load_classification(data, image_size, "train")
    if len(train) == 0:
        raise ValueError(f"{data}: no readable training images.")
    skipped = list(train.skipped)
    val = load_class_folders(validation, image_size) if validation else load_classification(data, image_size, "val")
    carved = val is None
    if carved:
        train, val = split_off(train, val_fraction, seed)
    elif tuple(val.class_names) != tuple(train.class_names):
        raise ValueError(f"validation classes {val.class_names} differ from training classes {train.class_names}.")

    keras.utils.set_random_seed(seed)
    backbone = build_backbone(family=family, size=size, alpha=alpha, image_size=image_size, weights=weights)
    from cvapps.nn.architectures import ARCHITECTURES

    head = head or ("original" if family in ARCHITECTURES else "pool")
    split = split_record(val_fraction if carved else None, seed if carved else None, val)
    model = build_classifier(
        backbone, len(train.class_names), train.class_names, dropout=dropout, head=head, settings={"split": split}
    )
    train_batches = ClassificationBatches(train, batch_size, augment=True, flip=flip, translate=translate, seed=seed)
    val_batches = ClassificationBatches(val, batch_size)

    run_dir = run_folder(checkpoint_dir, output)
    data_print = data_fingerprint(train, val)
    start_run(run_dir, arguments, data_print, restart=restart, output=output, overwrite=overwrite)
    history, reused = {}, []
    phases = [("main", epochs, learning_rate)]
    if fine_tune_epochs:
        phases.append(("fine_tune", fine_tune_epochs, fine_tune_learning_rate or learning_rate / 10))
    for phase, phase_epochs, peak in phases:
        if phase == "fine_tune":
            train_top_levels(backbone, fine_tune_from)
        else:
            backbone.trainable = not freeze_backbone
        steps = phase_epochs * len(train_batches)
        if optimizer == "sgd":
            update = keras.optimizers.SGD(OneCycle(peak, steps), momentum=0.9, nesterov=True, weight_decay=weight_decay)
        else:
            update = keras.optimizers.AdamW(OneCycle(peak, steps), weight_decay=weight_decay)
        update.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
        model.compile(
            optimizer=update,
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        callbacks = []
        if patience:
            callbacks.append(
                keras.callbacks.EarlyStopping("val_accuracy", patience=patience, restore_best_weights=True)
            )
        done = fit_resumable(
            model,
            train_batches,
            run_dir,
            epochs=phase_epochs,
            phase=phase,
            validation=val_batches,
            callbacks=callbacks,
            verbose=verbose,
        )
        history[phase] = done.history
        if done.reused:
            reused.append(phase)
    backbone.trainable = True
    save_model(with_flip_averaging(model) if tta else model, output)
    record_output(run_dir, output)
    return TrainResult(output, history, time.time() - started, skipped, tuple(reused))
