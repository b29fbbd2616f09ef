"""Commands of face verification (issue 5): added to the ``cvapps`` groups by :func:`register`.

    cvapps verify IMG1 IMG2 [--threshold T] [--json FILE|-]
    cvapps faces enroll NAME IMAGES... [--db DIR]
    cvapps faces identify SOURCE [--db DIR]
    cvapps faces calibrate PAIRS.csv
    cvapps train faces DATA... --output faces.keras
    cvapps eval faces DATA... --json FILE [--holdout 0.1]
    cvapps webcam faces [--db DIR]

Click only at import time; the bodies live in :mod:`cvapps.faces_commands`.
"""

from __future__ import annotations

import sys

import click

from cvapps.cli_common import fail_on_value_error, family_option, renamed, webcam_options

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
    "--model", default="faces", show_default=True, help="Shipped face model name or .keras path."
)
threshold_option = click.option(
    "--threshold", type=click.FloatRange(min=0), help="Squared-distance threshold (default: the model's own)."
)
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
@model_option
@threshold_option
@detector_option
@detector_model_option
@click.option("--all-faces", is_flag=True, help="Compare every face pair (default: the largest face of each).")
@click.option("--json", "json_path", help="Write the result as JSON to this file, or - for stdout.")
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def verify_command(image1, image2, model, threshold, detector, detector_model, all_faces, json_path, quiet):
    """Are IMAGE1 and IMAGE2 the same person? Exit 0 with the answer; exit 1 if a face is missing."""
    from cvapps.faces_commands import run_verify

    if run_verify(image1, image2, model, threshold, detector, detector_model, all_faces, json_path, quiet):
        sys.exit(1)


@click.group("faces")
def faces_group():
    """Face database: enroll people from photos, identify faces, calibrate the threshold."""


@faces_group.command("enroll")
@click.argument("name")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@db_option
@model_option
@detector_option
@detector_model_option
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def enroll_command(name, images, db, model, detector, detector_model, quiet):
    """Add IMAGES (files, folders or globs) of person NAME to the database (copied into DB/NAME/)."""
    from cvapps.faces_commands import run_enroll

    if run_enroll(name, images, db, model, detector, detector_model, quiet):
        sys.exit(1)


@faces_group.command("identify")
@click.argument("source")
@db_option
@model_option
@threshold_option
@detector_option
@detector_model_option
@click.option("--output", type=click.Path(), help="Annotated image file (one input) or folder (several).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--json", "json_path", help="Write JSON Lines records to this file, or - for stdout.")
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def identify_command(source, db, model, threshold, detector, detector_model, output, overwrite, json_path, quiet):
    """Name every face in SOURCE (image, folder, glob or video) from the database (1:N); faces
    farther than the threshold from everyone are "unknown"."""
    from cvapps.faces_commands import run_identify

    if run_identify(source, db, model, threshold, detector, detector_model, output, overwrite, json_path, quiet):
        sys.exit(1)


@faces_group.command("calibrate")
@click.argument("pairs", type=click.Path())
@model_option
@detector_option
@detector_model_option
@click.option("--roc", type=click.Path(), help="Save the ROC curve as a PNG here.")
@click.option("--json", "json_path", help="Write the report as JSON to this file, or - for stdout.")
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def calibrate_command(pairs, model, detector, detector_model, roc, json_path, quiet):
    """ROC, EER and a recommended threshold from your own labelled pairs: a CSV with rows
    image1,image2,same (same is 1 or 0; a header row is optional; relative paths are from the CSV's folder)."""
    from cvapps.faces_commands import run_calibrate

    run_calibrate(pairs, model, detector, detector_model, roc, json_path, quiet)


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
@click.option("--size", default="s", show_default=True, help="Compact backbone size: xs, s, m.")
@click.option(
    "--width-multiplier",
    "alpha",
    type=float,
    default=0.35,
    show_default=True,
    help="MobileNetV2 width multiplier (alpha).",
)
@renamed("--alpha", "--width-multiplier", "alpha", float)
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
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def train_faces_command(
    data,
    output,
    loss,
    mining,
    margin,
    val_fraction,
    detector,
    family,
    size,
    alpha,
    weights,
    image_size,
    embedding_dim,
    epochs,
    steps_per_epoch,
    identities_per_batch,
    images_per_identity,
    learning_rate,
    checkpoint_dir,
    seed,
    quiet,
):
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
        verbose=0,
        log=echo,
    )
    for message in result.skipped:
        click.echo(f"warning: skipped {message}", err=True)
    from cvapps.cli_common import report_reused

    report_reused(result)
    click.echo(
        f"saved {result.model_path} after {result.seconds:.0f} s; threshold {result.threshold:.4f}, "
        f"held-out pair accuracy {result.val_metrics['accuracy']:.4f}, auc {result.val_metrics['auc']:.4f}"
    )


@click.command("faces")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@model_option
@click.option("--json", "json_path", type=click.Path(), help="Write the report as one JSON object.")
@click.option("--roc", type=click.Path(), help="Save the ROC curve as a PNG here (default: beside --json).")
@click.option(
    "--holdout",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Score only the identities 'train faces --val-fraction' held out of DATA.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that split (as in training).")
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
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def eval_faces_command(data, model, json_path, roc, holdout, seed, num_pairs, detector, quiet):
    """LFW-style pair verification on DATA: accuracy (10-fold cross-validated threshold), AUC,
    TAR at FAR 1e-3 and the best threshold."""
    from cvapps.faces_commands import run_eval_faces

    run_eval_faces(list(data), model, json_path, roc, holdout, seed, num_pairs, detector, quiet)


@click.command("faces")
@db_option
@model_option
@threshold_option
@detector_option
@detector_model_option
@webcam_options
@fail_on_value_error
def webcam_faces_command(
    db, model, threshold, detector, detector_model, source, no_show, output, overwrite, max_frames, quiet
):
    """Live face boxes with names from the database over a camera (q or Esc quits) or a video."""
    from cvapps.faces_commands import run_webcam_faces

    run_webcam_faces(
        source, db, model, threshold, detector, detector_model, not no_show, output, overwrite, max_frames, quiet
    )


def _default_weights(weights, family):
    if weights is None:
        return "imagenet" if family in ("mobilenetv2", "efficientnet_lite0") else None
    return None if weights == "none" else weights


def register(cli, train, evaluate, webcam):
    """Add this app's commands to the top-level group and the train/eval/webcam groups."""
    cli.add_command(verify_command, "verify")
    cli.add_command(faces_group, "faces")
    train.add_command(train_faces_command, "faces")
    evaluate.add_command(eval_faces_command, "faces")
    webcam.add_command(webcam_faces_command, "faces")
