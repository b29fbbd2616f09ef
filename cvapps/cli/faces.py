"""Commands of face verification (issue 5): added to the ``cvapps`` groups by :func:`register`.

    cvapps verify IMG1 IMG2 [--threshold T] [--json FILE|-]
    cvapps faces enroll NAME IMAGES... [--db DIR]
    cvapps faces identify SOURCE [--db DIR]
    cvapps faces calibrate PAIRS.csv [--far 0.001]
    cvapps train faces DATA... --output faces.keras
    cvapps eval faces DATA... --json FILE [--holdout 0.1]
    cvapps webcam faces [--db DIR]

The click declarations come first, then the bodies they call (one file per app).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from cvapps.cli.commands import Outputs, bar, check_destinations, eval_report, run_webcam_loop
from cvapps.cli.common import (
    OutputOptions,
    ReportOptions,
    SplitOptions,
    TrackingOptions,
    WebcamOptions,
    _collect,
    backbone_size_options,
    fail_on_value_error,
    family_option,
    holdout_options,
    output_options,
    quiet_option,
    report_options,
    restart_options,
    runtime_option,
    tracking_options,
    train_overwrite_option,
    warn_each,
    webcam_options,
)
from cvapps.core.records import SCHEMA_VERSION
from cvapps.core.sinks import write_image, write_json
from cvapps.core.sources import open_source
from cvapps.faces import DEFAULT_MODEL

if TYPE_CHECKING:
    from cvapps.core.webcam import LoopStats
    from cvapps.faces import Calibration, FaceEncoder
    from cvapps.faces.database import Identity

DETECTORS = ["haar", "yunet", "none"]

detector_option = click.option(
    "--detector",
    type=click.Choice(DETECTORS),
    default="haar",
    show_default=True,
    help="haar: OpenCV's Haar cascade (offline); yunet: cv2.FaceDetectorYN (needs --detector-model); "
    "none: the image is already a face crop.",
)
detector_model_option = click.option(
    "--detector-model",
    type=click.Path(),
    help="YuNet .onnx (default: $CVAPPS_DATA/weights/face_detection_yunet_2026may.onnx).",
)
model_option = click.option(
    "--model", default=DEFAULT_MODEL, show_default=True, help="Shipped face model name or .keras path."
)
threshold_option = click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    help="Squared-distance threshold (default: the model's own; for identification its 1:N "
    "identify_threshold, stricter than the 1:1 verification one).",
)


@dataclass(frozen=True)
class FaceModelOptions:
    """``--model``, ``--detector``, ``--detector-model``, ``--runtime`` and (where taken) ``--threshold``."""

    model: str = DEFAULT_MODEL
    detector: str = "haar"
    detector_model: str | None = None
    threshold: float | None = None
    runtime: str = "auto"

    def encoder(self) -> FaceEncoder:
        """The opened face model with its detector."""
        from cvapps.faces import FaceEncoder

        return FaceEncoder(self.model, self.detector, self.detector_model, runtime=self.runtime)


def face_model_options(threshold: bool = True) -> Callable:
    """The face model block (``--model``, ``--threshold``, ``--detector``, ``--detector-model``, ``--runtime``)
    passed as ``faces=FaceModelOptions``; ``threshold=False`` leaves ``--threshold`` out."""

    def decorate(function: Callable) -> Callable:
        options = [model_option] + ([threshold_option] if threshold else []) + [detector_option, detector_model_option]
        options.append(runtime_option)

        def build(kwargs):
            return FaceModelOptions(
                kwargs.pop("model"),
                kwargs.pop("detector"),
                kwargs.pop("detector_model"),
                kwargs.pop("threshold", None),
                kwargs.pop("runtime"),
            )

        return _collect(function, "faces", build, options)

    return decorate


db_option = click.option(
    "--db",
    default="faces_db",
    show_default=True,
    type=click.Path(),
    help="Face database: a folder with one sub-folder of photos per person.",
)


@click.command("verify")
@click.argument("image1", type=click.Path())
@click.argument("image2", type=click.Path())
@face_model_options()
@click.option("--all-faces", is_flag=True, help="Compare every face pair (default: the largest face of each).")
@report_options("Write the result as JSON to this file, or - for stdout.")
@fail_on_value_error
def verify_command(image1: str, image2: str, all_faces: bool, faces: FaceModelOptions, report: ReportOptions) -> None:
    """Are IMAGE1 and IMAGE2 the same person? Exit 0 with the answer; exit 1 if a face is missing."""
    if run_verify(image1, image2, faces, report, all_faces=all_faces):
        sys.exit(1)


@click.group("faces")
def faces_group() -> None:
    """Face database: enroll people from photos, identify faces, calibrate the threshold."""


@faces_group.command("enroll")
@click.argument("name")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@db_option
@face_model_options(threshold=False)
@quiet_option
@fail_on_value_error
def enroll_command(name: str, images: tuple[str, ...], db: str, faces: FaceModelOptions, quiet: bool) -> None:
    """Add IMAGES (files, folders or globs) of person NAME to the database (copied into DB/NAME/).
    A photo whose bytes are already in DB/NAME/ is not added again ("already enrolled")."""
    if run_enroll(name, images, db, faces, quiet):
        sys.exit(1)


@faces_group.command("identify")
@click.argument("source")
@db_option
@face_model_options()
@tracking_options(counting=False)
@output_options("Annotated image file (one input), folder (several) or video file.")
@fail_on_value_error
def identify_command(
    source: str, db: str, faces: FaceModelOptions, outputs: OutputOptions, tracking: TrackingOptions
) -> None:
    """Name every face in SOURCE (image, folder, glob, video or stream) from the database (1:N); faces
    farther than the threshold from everyone are "unknown". The default threshold is the model's
    1:N one (stricter than verify's: with many people enrolled a stranger is close to someone);
    the threshold used is printed once on stderr. With --track a face keeps its id across frames
    and, once identified, its name."""

    if run_identify(source, db, faces, outputs, track=tracking.track):
        sys.exit(1)


@faces_group.command("calibrate")
@click.argument("pairs", type=click.Path())
@face_model_options(threshold=False)
@click.option("--roc", type=click.Path(), help="Save the ROC curve as a PNG here.")
@click.option(
    "--far",
    type=click.FloatRange(0, 1, max_open=True),
    default=1e-3,
    show_default=True,
    help="Also report the largest threshold whose false accept rate on the pairs is at most this, and the "
    "true accept rate there (needs at least 1/FAR different-person pairs to mean anything).",
)
@report_options("Write the report as JSON to this file, or - for stdout.")
@fail_on_value_error
def calibrate_command(pairs: str, roc: str | None, far: float, faces: FaceModelOptions, report: ReportOptions) -> None:
    """ROC, EER, a recommended threshold and the threshold at a false accept rate, from your own
    labelled pairs: a CSV with rows image1,image2,same (same is 1 or 0; a header row is optional;
    relative paths are from the CSV's folder)."""

    run_calibrate(pairs, faces, report, roc_path=roc, far=far)


@click.command("faces")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--output", type=click.Path(), required=True, help="Where to write the trained .keras model.")
@click.option(
    "--loss",
    type=click.Choice(["triplet", "pairs"]),
    default="triplet",
    show_default=True,
    help="triplet: FaceNet triplet loss with online mining; pairs: logistic regression on pair differences.",
)
@click.option("--mining", type=click.Choice(["semihard", "hard"]), default="semihard", show_default=True)
@click.option(
    "--margin",
    type=click.FloatRange(min=0, min_open=True),
    default=0.2,
    show_default=True,
    help="Triplet margin alpha (squared-distance units).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Identities held out (same split as 'eval faces --holdout').",
)
@click.option(
    "--detector",
    type=click.Choice(DETECTORS),
    default="none",
    show_default=True,
    help="none when DATA holds face crops (LFW, ORL); haar/yunet for whole photos (Yale).",
)
@family_option("mobilenetv2")
@backbone_size_options
@click.option(
    "--weights",
    help="'imagenet', a .weights.h5 file, or 'none'. Default: imagenet for mobilenetv2 "
    "(offline from $CVAPPS_DATA/weights), none for the other families.",
)
@click.option("--image-size", type=click.IntRange(min=32), default=96, show_default=True)
@click.option("--embedding-dim", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=24, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--identities-per-batch", type=click.IntRange(min=2), default=16, show_default=True, help="P of a P x K batch."
)
@click.option(
    "--images-per-identity", type=click.IntRange(min=2), default=4, show_default=True, help="K of a P x K batch."
)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--checkpoint-dir", type=click.Path(), help="Resumable state (default runs/<output name>).")
@click.option("--seed", type=int, default=0, show_default=True)
@train_overwrite_option
@restart_options
@quiet_option
@fail_on_value_error
def train_faces_command(
    data: tuple[str, ...],
    output: str,
    loss: str,
    mining: str,
    margin: float,
    val_fraction: float,
    detector: str,
    family: str,
    size: str,
    alpha: float,
    weights: str | None,
    image_size: int,
    embedding_dim: int,
    epochs: int,
    steps_per_epoch: int,
    identities_per_batch: int,
    images_per_identity: int,
    learning_rate: float,
    checkpoint_dir: str | None,
    seed: int,
    quiet: bool,
    restart: str,
    overwrite: bool,
) -> None:
    """Train a face embedding model on one or more DATA folders (one sub-folder per person),
    merged and split by identity. Rerun the same command to resume."""
    from cvapps.faces.train import train_faces

    echo = (lambda message: None) if quiet else (lambda message: click.echo(message))
    result = train_faces(
        list(data),
        output,
        loss=loss,
        mining=mining,
        margin=margin,
        val_fraction=val_fraction,
        detector=detector,
        family=family,
        size=size,
        alpha=alpha,
        weights=_default_weights(weights, family),
        image_size=image_size,
        embedding_dim=embedding_dim,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        identities_per_batch=identities_per_batch,
        images_per_identity=images_per_identity,
        learning_rate=learning_rate,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        restart=restart,
        overwrite=overwrite,
        verbose=0,
        log=echo,
    )
    warn_each(result.skipped, quiet, "skipped ")
    from cvapps.cli.common import report_reused

    report_reused(result)
    click.echo(
        f"saved {result.model_path} after {result.seconds:.0f} s; threshold {result.threshold:.4f}, "
        f"held-out pair accuracy {result.val_metrics['accuracy']:.4f}, auc {result.val_metrics['auc']:.4f}"
    )


@click.command("faces")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@model_option
@report_options()
@click.option("--roc", type=click.Path(), help="Save the ROC curve as a PNG here (default: beside --json).")
@holdout_options("train faces")
@click.option(
    "--pairs",
    "num_pairs",
    type=click.IntRange(min=1),
    default=3000,
    show_default=True,
    help="Same-person pairs (all when fewer) and as many different-person pairs.",
)
@click.option(
    "--detector",
    type=click.Choice(DETECTORS),
    default="none",
    show_default=True,
    help="none when DATA holds face crops; haar/yunet for whole photos.",
)
@fail_on_value_error
def eval_faces_command(
    data: tuple[str, ...],
    model: str,
    roc: str | None,
    holdout: float | str | None,
    seed: int | None,
    num_pairs: int,
    detector: str,
    report: ReportOptions,
) -> None:
    """LFW-style pair verification on DATA: accuracy (10-fold cross-validated threshold), AUC,
    TAR at FAR 1e-3 and the best threshold."""

    split = SplitOptions(None, holdout, seed)
    run_eval_faces(list(data), model, report, split, roc_path=roc, num_pairs=num_pairs, detector=detector)


@click.command("faces")
@db_option
@face_model_options()
@tracking_options(counting=False)
@webcam_options
@fail_on_value_error
def webcam_faces_command(db: str, faces: FaceModelOptions, webcam: WebcamOptions, tracking: TrackingOptions) -> None:
    """Live face boxes with names from the database over a camera (q or Esc quits), a video or a stream;
    with --track a face keeps its id and, once identified, its name."""
    run_webcam_faces(db, faces, webcam, track=tracking.track)


def _default_weights(weights: str | None, family: str) -> str | None:
    if weights is None:
        return "imagenet" if family in ("mobilenetv2", "efficientnet_lite0") else None
    return None if weights == "none" else weights


def register(cli: click.Group, train: click.Group, evaluate: click.Group, webcam: click.Group) -> None:
    """Add this app's commands to the top-level group and the train/eval/webcam groups."""
    cli.add_command(verify_command, "verify")
    cli.add_command(faces_group, "faces")
    train.add_command(train_faces_command, "faces")
    evaluate.add_command(eval_faces_command, "faces")
    webcam.add_command(webcam_faces_command, "faces")


# --- command bodies ----------------------------------------------------------------------------


def _emit_json(report: ReportOptions, record: dict) -> None:
    if report.json_path == "-":
        click.echo(json.dumps(record))
    elif report.json_path:
        write_json(report.json_path, record, overwrite=report.overwrite)


def run_verify(
    image1: str,
    image2: str,
    faces: FaceModelOptions,
    report: ReportOptions,
    *,
    all_faces: bool = False,
) -> int:
    """``cvapps verify``: returns 1 when a face was missing, else 0."""
    from cvapps.faces import verify

    check_destinations(report)
    encoder = faces.encoder()
    compare = "all" if all_faces else "largest"
    result = verify(image1, image2, encoder, threshold=faces.threshold, compare=compare)
    json_path = report.json_path
    _emit_json(report, {"task": "faces", "model": encoder.info.name, "detector": faces.detector, **result.to_dict()})
    if json_path != "-":
        if result.error:
            click.echo(f"error: {result.error} ({result.num_faces[0]} and {result.num_faces[1]} faces found)", err=True)
        else:
            answer = "same person" if result.verified else "different people"
            click.echo(
                f"{answer}: distance {result.distance:.4f} {'<=' if result.verified else '>'} threshold "
                f"{result.threshold:.4f} ({result.seconds * 1000:.0f} ms)"
            )
    return 1 if result.error else 0


def run_enroll(name: str, images: tuple[str, ...], db: str, faces: FaceModelOptions, quiet: bool) -> int:
    """``cvapps faces enroll``: returns the number of photos that could not be used."""
    from cvapps.core.sources import resolve_source
    from cvapps.faces.database import FaceDatabase

    paths = []
    for pattern in images:
        kind, found = resolve_source(pattern)
        if kind != "images":
            raise ValueError(f"{pattern}: enrol from photos (files, folders or globs), not a {kind}.")
        paths += found
    database = FaceDatabase(db, faces.encoder())
    result = database.enroll(name, paths)
    warn_each(result.skipped, quiet, "skipped ")
    if not quiet:
        for message in result.already:
            click.echo(f"note: {message}; not added again", err=True)
    already = f", {len(result.already)} already enrolled" if result.already else ""
    click.echo(
        f"enrolled {result.name}: {len(result.added)} photo(s) added{already} in {Path(db) / result.name} "
        f"({len(database.people())} people in {db})"
    )
    return len(result.skipped)


def run_identify(source: str, db: str, faces: FaceModelOptions, outputs: OutputOptions, *, track: bool = False) -> int:
    """``cvapps faces identify``: returns the number of inputs that failed to read."""
    from cvapps.core.tracking import Tracker
    from cvapps.faces.database import FaceDatabase, track_identities

    database = FaceDatabase(db, faces.encoder())
    if not database.people():
        raise ValueError(f"{db}: no enrolled people; add some with 'cvapps faces enroll NAME PHOTOS --db {db}'.")
    gallery = database.embeddings()
    if not outputs.quiet:
        click.echo(f"note: {threshold_note(database.encoder, faces.threshold, len(database.people()))}", err=True)
    source, settings = open_source(source), outputs
    outputs = Outputs(source, settings, task="faces")
    tracker = Tracker(frame_rate=outputs.fps or 30.0) if track else None
    with outputs:
        for frame in outputs.frames():
            started = time.perf_counter()
            found = database.identify(frame.image, faces.threshold, gallery)
            if tracker is not None:
                found = track_identities(found, tracker)
            milliseconds = (time.perf_counter() - started) * 1000
            if outputs.records:
                outputs.records.write(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "source": frame.source,
                        "frame": frame.index,
                        "task": "faces",
                        "model": database.encoder.info.name,
                        "results": [f.to_dict() for f in found],
                        "milliseconds": round(milliseconds, 3),
                    }
                )
            if settings.json_path != "-":
                label = f"{frame.source}" + (f"[{frame.index}]" if outputs.is_video else "")
                names = ", ".join(
                    (f"#{f.track_id} " if f.track_id is not None and f.track_id >= 0 else "")
                    + (f.name if f.distance is None else f"{f.name} ({f.distance:.3f})")
                    for f in found
                )
                click.echo(f"{label}: {len(found)} face(s)" + (f": {names}" if names else ""))
            if outputs.wants_images:
                outputs.write(draw_identities(frame.image, found), frame)
    return outputs.failures


def threshold_note(encoder: FaceEncoder, threshold: float | None, people: int) -> str:
    """What identification will name faces with: the ``--threshold`` given, else the model's
    1:N threshold and the false-name rates it implies (or why they are unknown)."""
    if threshold is not None:
        return (
            f"identification threshold {threshold:.4f} (given with --threshold; the model's 1:N threshold is "
            f"{encoder.identify_threshold:.4f}, its 1:1 threshold {encoder.threshold:.4f}); this database has "
            f"{people} {'person' if people == 1 else 'people'}"
        )
    return encoder.identify.describe(people)


def draw_identities(image: np.ndarray, identities: list[Identity]) -> np.ndarray:
    """A copy of RGB ``image`` with a box per face labelled "name d=distance" (known people in a
    colour per name, unknown in grey)."""
    import zlib

    import cv2

    from cvapps.core.annotate import class_colour, default_scale

    out = np.ascontiguousarray(image).copy()
    scale = default_scale(out)
    thickness = max(1, round(scale * 3))
    for who in identities:
        known = who.name != "unknown"
        colour = class_colour(zlib.crc32(who.name.encode()) % 97) if known else (160, 160, 160)
        x1, y1, x2, y2 = (round(v) for v in who.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        label = who.name if who.distance is None else f"{who.name} d={who.distance:.2f}"
        if who.track_id is not None and who.track_id >= 0:
            label = f"#{who.track_id} {label}"
        (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y1 - height - baseline - 2)
        cv2.rectangle(out, (x1, top), (x1 + width + 4, top + height + baseline + 2), colour, -1)
        cv2.putText(out, label, (x1 + 2, top + height + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def run_calibrate(
    pairs: str, faces: FaceModelOptions, report: ReportOptions, *, roc_path: str | None = None, far: float = 1e-3
) -> Calibration:
    """``cvapps faces calibrate``."""
    from cvapps.faces import calibrate

    check_destinations(report, roc_path)
    json_path = report.json_path
    result = calibrate(pairs, faces.encoder(), far=far)
    warn_each(result.skipped, report.quiet, "skipped ")
    if not result.far_resolved and not report.quiet:
        click.echo(
            f"warning: only {result.num_different} different-person pairs: a false accept rate of {far:g} needs "
            f"at least {int(np.ceil(1 / far)) if far > 0 else 'infinitely many'} to mean anything",
            err=True,
        )
    record = {"task": "faces", "pairs": str(pairs), **result.to_dict()}
    _emit_json(report, record)
    if json_path != "-":
        click.echo(
            f"{result.num_pairs} pairs: recommended threshold {result.threshold:.4f} (accuracy "
            f"{result.accuracy:.4f}), EER {result.eer:.4f} at {result.eer_threshold:.4f}, AUC {result.auc:.4f}; "
            f"at FAR <= {far:g}: threshold {result.far_threshold:.4f} (FAR {result.far_there:.4f}, "
            f"TAR {result.tar_there:.4f})"
        )
    if roc_path:
        write_image(
            roc_path,
            roc_image(np.array(result.far), np.array(result.tar), "calibration pairs", result.auc, eer=result.eer),
            overwrite=report.overwrite,
        )
        click.echo(f"ROC curve: {roc_path}")
    return result


def run_eval_faces(
    data: list[str],
    model_name: str,
    report_options: ReportOptions,
    split: SplitOptions,
    *,
    roc_path: str | None = None,
    num_pairs: int = 3000,
    detector: str = "none",
) -> dict:
    """``cvapps eval faces``: pair protocol on DATA (or its held-out identities)."""
    from cvapps.faces import embed_faces, pair_metrics, sample_pairs
    from cvapps.faces.train import load_faces
    from cvapps.nn.training import check_holdout, resolve_holdout
    from cvapps.runtime import open_model

    started, quiet, json_path = time.time(), report_options.quiet, report_options.json_path
    holdout, seed = split.holdout, split.seed
    roc_path = roc_path or (str(Path(json_path).with_suffix("")) + "_roc.png" if json_path else None)
    check_destinations(report_options, roc_path)
    model = open_model(model_name, task="faces", runtime="keras")
    settings = model.info.settings
    recorded = settings.get("split")
    if recorded is None and settings.get("val_fraction"):  # models trained before splits were recorded
        recorded = {"fraction": settings["val_fraction"], "seed": settings.get("seed", 0)}
    if holdout is not None:
        holdout, seed = resolve_holdout(recorded, holdout, seed)
    seed = seed or 0
    faces = load_faces(
        data, model.info.image_size, detector, progress=bar(quiet, "reading", "img"), holdout=holdout, seed=seed
    )
    if holdout:
        check_holdout(recorded, faces)
    warn_each(faces.skipped, quiet, "skipped ")
    pairs = sample_pairs(faces.labels, num_pairs, seed)
    embeddings = embed_faces(model, faces.images, batch_size=128)
    metrics = pair_metrics(embeddings, pairs, folds=10)
    roc = metrics.pop("roc")
    metrics["model_threshold"] = model.info.settings.get("threshold")
    if metrics["model_threshold"] is not None:
        distances = np.sum(np.square(embeddings[pairs[:, 0]] - embeddings[pairs[:, 1]]), axis=1)
        metrics["accuracy_at_model_threshold"] = float(
            np.mean((distances <= metrics["model_threshold"]) == (pairs[:, 2] == 1))
        )
    metrics["num_identities"] = len(set(faces.labels.tolist()))
    report = eval_report("faces", model_name, " + ".join(map(str, data)), holdout, seed, len(faces), started, metrics)
    click.echo(
        f"{metrics['num_same_pairs']} same / {metrics['num_different_pairs']} different pairs of "
        f"{metrics['num_identities']} people: accuracy {metrics['accuracy']:.4f} +- {metrics['accuracy_std']:.4f}, "
        f"auc {metrics['auc']:.4f}, tar@far=1e-3 {metrics['tar_at_far_1e-3']:.4f}, "
        f"eer {metrics['eer']:.4f}, best threshold {metrics['threshold']:.4f}"
    )
    if json_path:
        write_json(json_path, report, overwrite=report_options.overwrite)
    if roc_path:
        write_image(
            roc_path,
            roc_image(
                np.array(roc["far"]),
                np.array(roc["tar"]),
                Path(str(model_name)).stem,
                metrics["auc"],
                eer=metrics["eer"],
            ),
            overwrite=report_options.overwrite,
        )
        click.echo(f"ROC curve: {roc_path}")
    return report


ROC_MARGINS = (40, 30, 56, 64)  # top, right, bottom, left pixels around the plot


def roc_image(
    far: np.ndarray,
    tar: np.ndarray,
    title: str = "",
    auc: float | None = None,
    size: int = 420,
    eer: float | None = None,
) -> np.ndarray:
    """The ROC curve (x: false accept rate, y: true accept rate) as an RGB uint8 image of shape
    (size + 96, size + 94, 3): axes ticked 0, 0.2, ... 1, the AUC and EER in the title line
    (computed from the curve when not given) and the EER point marked on the curve.

    Raises:
        ValueError: ``far`` and ``tar`` differ in length or are empty, or ``size`` < 100.
    """
    import cv2

    far, tar = np.asarray(far, np.float64).ravel(), np.asarray(tar, np.float64).ravel()
    if len(far) != len(tar) or not len(far):
        raise ValueError(f"far and tar must be equal-length non-empty curves, received {len(far)} and {len(tar)}.")
    if size < 100:
        raise ValueError(f"size must be at least 100 pixels, received {size}.")
    top, right, bottom, left = ROC_MARGINS
    eer_index = int(np.argmin(np.abs((1 - tar) - far)))
    auc = float(np.trapezoid(tar, far)) if auc is None else auc
    eer = float(((1 - tar[eer_index]) + far[eer_index]) / 2) if eer is None else eer
    image = np.full((size + top + bottom, size + left + right, 3), 255, np.uint8)
    x0, y0 = left, top + size  # origin at the bottom left
    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    for k in range(1, 10):
        t = round(k * size / 10)
        cv2.line(image, (x0 + t, top), (x0 + t, y0), (230, 230, 230), 1)
        cv2.line(image, (x0, y0 - t), (x0 + size, y0 - t), (230, 230, 230), 1)
    cv2.rectangle(image, (x0, top), (x0 + size, y0), black, 1)
    cv2.line(image, (x0, y0), (x0 + size, top), (180, 180, 180), 1)  # chance
    for k in range(6):  # ticks and labels 0, 0.2, ... 1
        t, text = round(k * size / 5), "0" if k == 0 else ("1" if k == 5 else f"0.{2 * k}")
        (width, height), _ = cv2.getTextSize(text, font, 0.4, 1)
        cv2.line(image, (x0 + t, y0), (x0 + t, y0 + 5), black, 1)
        cv2.putText(image, text, (x0 + t - width // 2, y0 + 8 + height), font, 0.4, black, 1, cv2.LINE_AA)
        cv2.line(image, (x0 - 5, y0 - t), (x0, y0 - t), black, 1)
        cv2.putText(image, text, (x0 - 8 - width, y0 - t + height // 2), font, 0.4, black, 1, cv2.LINE_AA)
    points = np.stack([x0 + far * size, y0 - tar * size], 1).round().astype(np.int32)
    cv2.polylines(image, [points], False, (30, 90, 200), 2, cv2.LINE_AA)
    cv2.circle(image, tuple(int(v) for v in points[eer_index]), 5, (200, 40, 40), 2, cv2.LINE_AA)
    label = (f"ROC {title}  " if title else "ROC  ") + f"AUC {auc:.4f}  EER {eer:.4f} (circle)"
    cv2.putText(image, label, (x0, top - 14), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.putText(image, "false accept rate", (x0 + size // 2 - 60, y0 + 45), font, 0.45, black, 1, cv2.LINE_AA)
    strip = np.full((16, 160, 3), 255, np.uint8)
    cv2.putText(strip, "true accept rate", (2, 12), font, 0.45, black, 1, cv2.LINE_AA)
    middle = y0 - size // 2
    image[middle - 80 : middle + 80, 6:22] = np.rot90(strip)
    return image


def run_webcam_faces(
    db: str, faces: FaceModelOptions, webcam: WebcamOptions, *, track: bool = False
) -> tuple[LoopStats, dict[str, int]]:
    """``cvapps webcam faces``: boxes with names from the database, live; ``track``: ids that persist and
    names kept per track."""
    from cvapps.core.tracking import Tracker
    from cvapps.faces.database import FaceDatabase, track_identities

    quiet, threshold = webcam.quiet, faces.threshold
    database = FaceDatabase(db, faces.encoder())
    gallery = database.embeddings()
    if not database.people() and not quiet:
        click.echo(f"warning: {db} has no enrolled people; every face will be 'unknown'", err=True)
    elif not quiet:
        click.echo(f"note: {threshold_note(database.encoder, threshold, len(database.people()))}", err=True)
    counts = {"frames": 0, "faces": 0, "named": 0}
    tracker = Tracker() if track else None

    def process(image):
        found = database.identify(image, threshold, gallery)
        if tracker is not None:
            found = track_identities(found, tracker)
        counts["frames"] += 1
        counts["faces"] += len(found)
        counts["named"] += sum(f.name != "unknown" for f in found)
        return draw_identities(image, found)

    stats = run_webcam_loop(process, webcam)
    if not quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS; {counts['faces']} faces "
            f"seen, {counts['named']} named ({stats.dropped} stale frames dropped)"
        )
    return stats, counts
