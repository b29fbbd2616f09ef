"""Training a detector: cvapps train detect's recipe, anchors fitted by k-means."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from cvapps.detection import LEVELS
from cvapps.detection.model import SlotGeometry, assign_targets, build_detector, detection_loss

if TYPE_CHECKING:
    from cvapps.detection.data import DetectionData
    from cvapps.nn.training import TrainResult

# --- training ----------------------------------------------------------------------------------


def fit_anchors(
    data: DetectionData, image_size: int, per_level: int = 3, seed: int | None = 0
) -> tuple[np.ndarray, float]:
    """Anchors for :func:`build_detector` fitted to a data set's boxes as the model will see
    them (letterboxed to ``image_size``): k-means with 1 - IoU distance, 3 x ``per_level``
    clusters sorted by area, the smallest to P3. Returns ((3, per_level, 2), mean best IoU)."""
    from cvapps.core.boxes import kmeans_anchors

    sizes = []
    for sample in data.samples:
        scale = image_size / max(sample.width, sample.height)
        if len(sample.boxes):
            sizes.append((sample.boxes[:, 2:] - sample.boxes[:, :2]) * scale)
    sizes = np.concatenate(sizes) if sizes else np.zeros((0, 2))
    count = len(LEVELS) * per_level
    if len(sizes) < count:
        raise ValueError(
            f"fitting {count} anchors needs at least {count} boxes; the data has {len(sizes)}. Pass anchors=."
        )
    anchors, mean_best_iou = kmeans_anchors(np.maximum(sizes, 1.0), count, seed=seed)
    return np.asarray(anchors, np.float32).reshape(len(LEVELS), per_level, 2), float(mean_best_iou)


def train_detector(
    data: DetectionData,
    output: str | Path,
    *,
    validation: DetectionData | None = None,
    image_size: int = 320,
    family: str = "compact",
    size: str = "s",
    alpha: float = 0.35,
    weights: str | Path | None = None,
    anchors: ArrayLike | None = None,
    width: int = 64,
    epochs: int = 50,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    weight_decay: float = 5e-4,
    augment: bool = True,
    mosaic: float = 0.5,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    verbose: int | str = 1,
    split: dict[str, Any] | None = None,
    restart: str = "check",
    overwrite: bool = False,
) -> TrainResult:
    """Train a detector on a :class:`cvapps.detection.data.DetectionData`; save it to ``output``.

    Args:
        data, validation: training and (optional) validation data.
        anchors: (3, A, 2) pixels at ``image_size``; default fitted to ``data`` (:func:`fit_anchors`).
        family, size, alpha, weights: the backbone (see :func:`cvapps.nn.backbone.build_backbone`).
        epochs, batch_size, learning_rate, weight_decay: AdamW with a one-cycle schedule.
        augment, mosaic: flip, scale/translate, HSV and mosaic augmentation (cvapps.detection.augment).
        checkpoint_dir: resumable state; rerunning the same command resumes. Default
            ``runs/<output stem>``.
        split: how ``validation`` was held out of the data (:func:`cvapps.nn.training.split_record`),
            stored in the model so ``eval detect --holdout`` scores the same images; default: a split of
            unknown fraction of ``validation``.
        restart: ``"check"``, ``"resume"`` or ``"fresh"`` (see :func:`cvapps.nn.training.start_run`).
        overwrite: replace an existing ``output`` this run folder did not write (a rerun needs none).

    Returns:
        :class:`cvapps.nn.training.TrainResult` (the model is saved to ``output``).
    """
    from cvapps.nn.training import run_arguments

    arguments = run_arguments(locals(), exclude=("anchors", "split"))  # what defines the run
    from cvapps._keras import import_keras

    keras = import_keras()
    from cvapps.detection.data import DetectionBatches
    from cvapps.models import save_model
    from cvapps.nn.backbone import build_backbone
    from cvapps.nn.layers import OneCycle
    from cvapps.nn.training import (
        TrainResult,
        data_fingerprint,
        fit_resumable,
        record_output,
        run_folder,
        split_record,
        start_run,
    )

    started = time.time()

    if anchors is None:
        anchors, _ = fit_anchors(data, image_size, seed=seed)
    keras.utils.set_random_seed(seed)
    backbone = build_backbone(family=family, size=size, alpha=alpha, image_size=image_size, weights=weights)
    model = build_detector(backbone, len(data.class_names), anchors, data.class_names, width=width)
    model.get_layer("cvapps_metadata").settings["split"] = split or split_record(None, None, validation)
    geometry = SlotGeometry.build(image_size, anchors)

    class AssignedBatches(keras.utils.PyDataset):
        """DetectionBatches with per-slot targets from :func:`assign_targets`."""

        def __init__(self, batches):
            super().__init__(workers=2, use_multiprocessing=False)
            self.batches = batches

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            images, boxes = self.batches[index]
            return images, np.stack([_slot_targets(rows, geometry) for rows in boxes])

        def on_epoch_end(self):
            self.batches.on_epoch_end()

        def set_epoch(self, epoch):
            self.batches.set_epoch(epoch)

    train = AssignedBatches(DetectionBatches(data, image_size, batch_size, augment=augment, mosaic=mosaic, seed=seed))
    val = AssignedBatches(DetectionBatches(validation, image_size, batch_size)) if validation is not None else None
    run_dir = run_folder(checkpoint_dir, output)
    start_run(
        run_dir,
        arguments,
        data_fingerprint(data, validation),
        restart=restart,
        output=output,
        overwrite=overwrite,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(OneCycle(learning_rate, epochs * len(train)), weight_decay=weight_decay),
        loss=detection_loss(geometry, len(data.class_names)),
    )
    done = fit_resumable(model, train, run_dir, epochs=epochs, validation=val, verbose=verbose)
    save_model(model, output)
    record_output(run_dir, output)
    return TrainResult(
        Path(output),
        {"main": done.history},
        time.time() - started,
        list(data.problems),
        ("main",) if done.reused else (),
    )


def _slot_targets(rows, geometry):
    """(max_boxes, 5) [class, x1, y1, x2, y2] rows (class -1 = padding) -> (slots, 6) targets."""
    real = rows[:, 0] >= 0
    return assign_targets(rows[real, 1:5], rows[real, 0], geometry)
