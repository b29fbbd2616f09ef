"""Training a segmenter: cvapps train segment's recipe."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvapps.segmentation.metrics import parse_loss
from cvapps.segmentation.model import build_unet

if TYPE_CHECKING:
    from cvapps.nn.training import TrainResult
    from cvapps.segmentation.data import SegmentationData

# --- training ----------------------------------------------------------------------------------


def train_segmenter(
    data: SegmentationData | str | Path,
    output: str | Path,
    *,
    validation: SegmentationData | None = None,
    family: str = "unet",
    size: str = "s",
    alpha: float = 0.35,
    weights: str | Path | None = None,
    filters: int = 32,
    depth: int = 4,
    decoder_filters: Sequence[int] | None = None,
    upsample: str = "transpose",
    image_size: int = 256,
    fit: bool = False,
    epochs: int = 20,
    repeats: int = 1,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    loss: str = "ce+dice",
    border_weight: float = 0.0,
    augment: bool = True,
    elastic: float = 0.0,
    rotate: float = 15.0,
    scale: tuple[float, float] = (0.75, 1.25),
    vflip: bool = False,
    max_side: int | None = None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    verbose: int | str = 1,
    split: dict[str, Any] | None = None,
    restart: str = "check",
    overwrite: bool = False,
) -> TrainResult:
    """Train a U-Net on a :class:`cvapps.segmentation.data.SegmentationData`; save it to ``output``.

    Args:
        data: training pairs (a :class:`SegmentationData`, or a folder :func:`load_segmentation` reads).
        validation: held-out pairs scored each epoch (loss, ``miou``), or None.
        family ... upsample: see :func:`build_unet`.
        image_size: the training tile side (a multiple of the stride).
        fit: whole-scene data (photos): each image is scaled so its longer side is the tile
            before the random zoom, and inference does the same (``settings["scale_to"]``).
            False: native resolution crops, overlap-tile inference on larger images.
        epochs, repeats: epochs of ``repeats`` passes over the data (random crops each time).
        loss: terms joined by + (``ce``, ``dice``, ``focal``), see :class:`SegmentationLoss`.
        border_weight: w0 of the paper's border-weight map (0 = off).
        augment, elastic, rotate, scale, vflip: augmentation (flips, rotations up to ``rotate``
            degrees, zoom in ``scale``, colour jitter, elastic deformation with probability
            ``elastic``), identical for image and mask.
        max_side: shrink cached images larger than this once (speed).
        checkpoint_dir: resumable state; rerunning the same command resumes (default runs/<stem>).

        split: how ``validation`` was held out (:func:`cvapps.nn.training.split_record`), stored in the
            model for ``eval segment --holdout``.
        restart: ``"check"``, ``"resume"`` or ``"fresh"`` (see :func:`cvapps.nn.training.start_run`).
        overwrite: replace an existing ``output`` this run folder did not write (a rerun needs none).

    Returns:
        :class:`cvapps.nn.training.TrainResult`.
    """
    from cvapps.nn.training import run_arguments

    arguments = run_arguments(locals(), exclude=("split",))  # what defines the run
    from cvapps._keras import import_keras
    from cvapps.nn.training import (
        TrainResult,
        data_fingerprint,
        fit_resumable,
        record_output,
        run_folder,
        split_record,
        start_run,
    )
    from cvapps.segmentation.losses import MeanIoU, SegmentationLoss

    keras = import_keras()
    from cvapps.models import keras_output_path, save_model
    from cvapps.nn.layers import OneCycle
    from cvapps.segmentation.data import SegmentationBatches, load_segmentation

    started = time.time()
    output = keras_output_path(output)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, received {epochs}.")
    if isinstance(data, (str, Path)):
        data = load_segmentation(data)
    if len(data) == 0:
        raise ValueError("no readable training pairs; see the loader's problems list.")
    stride = 2**depth if family == "unet" else 32
    if image_size % stride:
        raise ValueError(f"image_size {image_size} must be a multiple of the network's stride {stride}.")
    terms = parse_loss(loss)
    keras.utils.set_random_seed(seed)
    num_classes = len(data.class_names)
    model = build_unet(
        num_classes,
        data.class_names,
        family=family,
        size=size,
        alpha=alpha,
        weights=weights,
        filters=filters,
        depth=depth,
        decoder_filters=decoder_filters,
        upsample=upsample,
        tile=image_size,
        scale_to=image_size if fit else None,
    )
    border = "constant" if fit else "reflect"
    train_batches = SegmentationBatches(
        data,
        image_size,
        batch_size,
        augment=augment,
        repeats=repeats,
        border_weight=border_weight,
        fit=fit,
        seed=seed,
        max_side=max_side,
        elastic=elastic,
        rotate=rotate,
        scale=scale,
        vflip=vflip,
        border=border,
    )
    val_batches = None
    if validation is not None and len(validation):
        val_batches = SegmentationBatches(
            validation, image_size, batch_size, border_weight=border_weight, fit=fit, max_side=max_side
        )
    run_dir = run_folder(checkpoint_dir, output)
    model.get_layer("cvapps_metadata").settings["split"] = split or split_record(None, None, validation)
    start_run(
        run_dir,
        arguments,
        data_fingerprint(data, validation),
        restart=restart,
        output=output,
        overwrite=overwrite,
    )
    steps = epochs * len(train_batches)
    optimizer = keras.optimizers.AdamW(OneCycle(learning_rate, steps, warmup=0.1), weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(optimizer=optimizer, loss=SegmentationLoss(terms, num_classes), metrics=[MeanIoU(num_classes)])
    done = fit_resumable(model, train_batches, run_dir, epochs=epochs, validation=val_batches, verbose=verbose)
    save_model(model, output)
    record_output(run_dir, output)
    return TrainResult(
        output,
        {"main": done.history},
        time.time() - started,
        list(data.problems) + train_batches.errors,
        ("main",) if done.reused else (),
    )
