"""The ``cvapps`` command line. One grammar for every app:

    cvapps TASK SOURCE [options]          e.g. cvapps classify photo.jpg --top-k 3
    cvapps train TASK DATA [options]      e.g. cvapps train classify ./my_photos --output mine.keras
    cvapps eval TASK DATA --json FILE     e.g. cvapps eval classify ./test --model mine.keras
    cvapps webcam TASK [options]          e.g. cvapps webcam classify --source 0

Heavy imports (TensorFlow, Keras, OpenCV) happen inside the command bodies, so ``--help`` is
instant. Errors in user input end the command with a one-line message and exit code 2; a
batch in which some inputs failed exits with code 1 after processing the rest.
"""

from __future__ import annotations

import json
import os
import sys

import click

from cvapps.classification import DEFAULT_MODEL as DEFAULT_CLASSIFIER
from cvapps.cli.common import (
    backbone_size_options,
    fail_on_value_error,
    family_option,
    runtime_option,
    warn,
    webcam_options,
    weights_option,
)
from cvapps.detection import DEFAULT_MODEL as DEFAULT_DETECTOR

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cvapps")
def cli():
    """cvapps: computer-vision apps on one Keras backbone.

    Classification, detection, segmentation, face verification and style transfer on the same
    backbone, sources, sinks and command grammar. Start with: cvapps demo --output demo_out
    """
    _log_to_stderr()


def _log_to_stderr():
    """The library's notices (e.g. the first-use build of the imagenet model) go to stderr, one line each."""
    import logging

    logger = logging.getLogger("cvapps")
    if not any(getattr(h, "_cvapps", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._cvapps = True
        logger.addHandler(handler)
        logger.propagate = False


# --- classify ----------------------------------------------------------------------------------


MIN_CONFIDENCE_HELP = "Label an image 'unknown' when its top probability is below this (0-1); default never."
GROUP_HELP = "Fold ImageNet's fine classes into parents (English springer -> dog, tabby -> cat; imagenet model only)."


@cli.command()
@click.argument("source")
@click.option(
    "--model",
    default=DEFAULT_CLASSIFIER,
    show_default=True,
    help="Shipped model name or .keras path (imagenet: EfficientNet-Lite0, 1000 classes; built on first use).",
)
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes per image.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.0, help=MIN_CONFIDENCE_HELP)
@click.option("--group", is_flag=True, help=GROUP_HELP)
@click.option("--output", type=click.Path(), help="Annotated image file (one input) or folder (several).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--json", "json_path", help="Write JSON Lines records to this file, or - for stdout.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@runtime_option
@click.option("--quiet", is_flag=True, help="No progress bar or warnings.")
@fail_on_value_error
def classify(source, model, top_k, min_confidence, group, output, overwrite, json_path, batch_size, runtime, quiet):
    """Classify an image, a folder, a glob or a video: top-k classes per image or frame."""
    from cvapps.cli.commands import ClassifyOptions, run_classify

    options = ClassifyOptions(top_k, min_confidence, group)
    failures = run_classify(source, model, options, output, overwrite, json_path, batch_size, quiet, runtime)
    if failures:
        sys.exit(1)


@cli.command()
@click.argument("source")
@click.option("--model", default=DEFAULT_DETECTOR, show_default=True, help="Shipped detector name or .keras path.")
@click.option(
    "--confidence-threshold",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Keep detections scoring at least this (objectness x class).",
)
@click.option(
    "--iou-threshold",
    type=click.FloatRange(0, 1),
    default=0.45,
    show_default=True,
    help="Non-max suppression: overlaps above this IoU (same class) are suppressed.",
)
@click.option("--classes", help="Comma-separated class names to keep (e.g. person,dog); default all.")
@click.option(
    "--class-threshold",
    "class_thresholds",
    multiple=True,
    metavar="NAME=VALUE",
    help="Confidence threshold for one class, overriding --confidence-threshold (repeatable).",
)
@click.option("--max-detections", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--output", type=click.Path(), help="Annotated image file (one input), folder, or video file.")
@click.option("--save-crops", type=click.Path(), help="Save each detection's pixels to DIR/<class>/<image>_<k>.jpg.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--json", "json_path", help="Write JSON Lines records to this file, or - for stdout.")
@runtime_option
@click.option("--quiet", is_flag=True, help="No progress bar or warnings.")
@fail_on_value_error
def detect(
    source,
    model,
    confidence_threshold,
    iou_threshold,
    classes,
    class_thresholds,
    max_detections,
    output,
    save_crops,
    overwrite,
    json_path,
    runtime,
    quiet,
):
    """Detect objects in an image, a folder, a glob or a video: boxes with class and confidence."""
    from cvapps.cli.commands import DetectOptions, run_detect

    options = DetectOptions.from_cli(confidence_threshold, iou_threshold, classes, class_thresholds, max_detections)
    failures = run_detect(source, model, options, output, overwrite, json_path, quiet, runtime, save_crops)
    if failures:
        sys.exit(1)


# --- train -------------------------------------------------------------------------------------


@cli.group()
def train():
    """Train a model on your own data: cvapps train TASK DATA."""


@train.command("classify")
@click.argument("data", type=click.Path())
@click.option("--output", type=click.Path(), required=True, help="Where to write the trained .keras model.")
@click.option("--val", "validation", type=click.Path(), help="Validation folder (default: DATA/val, else carved out).")
@click.option(
    "--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True
)
@family_option("compact")
@backbone_size_options
@weights_option
@click.option("--image-size", type=click.IntRange(min=32), default=64, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--fine-tune-epochs", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--fine-tune-from",
    type=click.Choice(["P2", "P3", "P4", "P5"]),
    default="P4",
    show_default=True,
    help="Backbone levels trained during fine-tuning.",
)
@click.option("--freeze-backbone", is_flag=True, help="Train only the head first (transfer learning).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "adam"]),
    default="sgd",
    show_default=True,
    help="sgd for training from scratch; adam for transfer learning on small data.",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=0.2,
    show_default=True,
    help="Peak of the one-cycle schedule (try 1e-3 with adam).",
)
@click.option(
    "--fine-tune-learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Peak for fine-tuning (default: learning rate / 10).",
)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--no-flip", is_flag=True, help="No horizontal flips (digits, text).")
@click.option("--translate", type=click.FloatRange(0, 0.5), default=0.125, show_default=True)
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True)
@click.option(
    "--head",
    type=click.Choice(["pool", "original"]),
    help="pool: global average pool + dense; original: a classic family's own classifier "
    "(LeNet-5's C5-F6, VGG's 4096-4096). Default: original for classic families, else pool.",
)
@click.option(
    "--tta",
    is_flag=True,
    help="Save the model averaged over each photo and its mirror image "
    "(test-time augmentation: twice the inference cost).",
)
@click.option("--patience", type=click.IntRange(min=1), help="Early stopping on validation accuracy.")
@click.option("--checkpoint-dir", type=click.Path(), help="Resumable state (default runs/<output name>).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def train_classify(
    data,
    output,
    validation,
    val_fraction,
    family,
    size,
    alpha,
    weights,
    image_size,
    epochs,
    fine_tune_epochs,
    fine_tune_from,
    freeze_backbone,
    batch_size,
    optimizer,
    learning_rate,
    fine_tune_learning_rate,
    weight_decay,
    label_smoothing,
    no_flip,
    translate,
    dropout,
    head,
    tta,
    patience,
    checkpoint_dir,
    seed,
    quiet,
):
    """Train a classifier on DATA: a folder per class (root/<class>/*.jpg, or root/train/...)
    or a keras.datasets-style .npz. Rerun the same command to resume an interrupted run."""
    from cvapps.classification import train_classifier

    result = train_classifier(
        data,
        output,
        validation=validation,
        val_fraction=val_fraction,
        family=family,
        size=size,
        alpha=alpha,
        weights=weights,
        image_size=image_size,
        epochs=epochs,
        fine_tune_epochs=fine_tune_epochs,
        fine_tune_from=fine_tune_from,
        freeze_backbone=freeze_backbone,
        batch_size=batch_size,
        optimizer=optimizer,
        learning_rate=learning_rate,
        fine_tune_learning_rate=fine_tune_learning_rate,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        flip=not no_flip,
        translate=translate,
        dropout=dropout,
        head=head,
        tta=tta,
        patience=patience,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),  # a bar on a terminal, a line per epoch in logs
    )
    for message in result.skipped:
        warn(f"skipped {message}", quiet)
    last = {k: v[-1] for k, v in list(result.history.values())[-1].items()}
    from cvapps.cli.common import report_reused

    report_reused(result)
    click.echo(
        f"saved {result.model_path} after {result.seconds:.0f} s; last epoch: "
        + ", ".join(f"{k}={v:.4f}" for k, v in last.items())
    )


@train.command("detect")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--output", type=click.Path(), required=True, help="Where to write the trained .keras model.")
@click.option("--classes", help="Comma-separated class names to keep (e.g. person); default all.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Images held out for validation (same split as 'eval detect --holdout').",
)
@family_option("compact")
@backbone_size_options
@weights_option
@click.option("--image-size", type=click.IntRange(min=64), default=320, show_default=True, help="Multiple of 32.")
@click.option("--width", type=click.IntRange(min=8), default=64, show_default=True, help="Neck channels.")
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--no-augment", is_flag=True, help="No flips, scale/translate, colour or mosaic.")
@click.option("--mosaic", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Probability of a mosaic.")
@click.option("--checkpoint-dir", type=click.Path(), help="Resumable state (default runs/<output name>).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def train_detect(
    data,
    output,
    classes,
    val_fraction,
    family,
    size,
    alpha,
    weights,
    image_size,
    width,
    epochs,
    batch_size,
    learning_rate,
    no_augment,
    mosaic,
    checkpoint_dir,
    seed,
    quiet,
):
    """Train a detector on one or more DATA folders (YOLO, Pascal VOC, COCO JSON or Penn-Fudan
    layout), merged; anchors are fitted to the data. Rerun the same command to resume."""
    from cvapps.cli.commands import run_train_detect

    run_train_detect(
        data,
        output,
        classes,
        val_fraction,
        seed,
        quiet,
        dict(
            image_size=image_size,
            family=family,
            size=size,
            alpha=alpha,
            weights=weights,
            width=width,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            augment=not no_augment,
            mosaic=mosaic,
            checkpoint_dir=checkpoint_dir,
            seed=seed,
        ),
    )


# --- eval --------------------------------------------------------------------------------------


@cli.group("eval")
def evaluate():
    """Score a model with its field's standard metric: cvapps eval TASK DATA --json FILE."""


@evaluate.command("classify")
@click.argument("data", type=click.Path())
@click.option(
    "--model",
    default=DEFAULT_CLASSIFIER,
    show_default=True,
    help="Shipped model name or .keras path. DATA's folders are its class names (or, for imagenet, wnids).",
)
@click.option("--json", "json_path", type=click.Path(), help="Write the report as one JSON object.")
@click.option("--confusion", type=click.Path(), help="Save the confusion matrix as a PNG here.")
@click.option(
    "--holdout",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Score only the validation split that 'train --val-fraction' carved out of DATA.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that split (as in training).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def eval_classify(data, model, json_path, confusion, holdout, seed, batch_size, quiet):
    """Top-1/top-5 accuracy, per-class precision and recall and a confusion matrix on DATA
    (a folder per class, its test/ folder, or an .npz whose test arrays are used)."""
    from cvapps.cli.commands import run_eval_classify

    run_eval_classify(data, model, json_path, confusion, batch_size, quiet, holdout=holdout, seed=seed)


@evaluate.command("detect")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--model", required=True, help="Shipped model name or .keras path.")
@click.option("--classes", help="Comma-separated class names to keep from DATA (as in training).")
@click.option(
    "--holdout",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Score only the split 'train detect --val-fraction' held out of DATA.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that split (as in training).")
@click.option("--json", "json_path", type=click.Path(), help="Write the report as one JSON object.")
@click.option("--pr-curve", type=click.Path(), help="Save the precision-recall curves (IoU 0.5) as a PNG here.")
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def eval_detect(data, model, classes, holdout, seed, json_path, pr_curve, quiet):
    """COCO-style mAP (map50, map50_95), per-class AP, precision and recall on DATA."""
    from cvapps.cli.commands import run_eval_detect

    run_eval_detect(data, model, classes, holdout, seed, json_path, quiet, pr_curve=pr_curve)


# --- webcam ------------------------------------------------------------------------------------


@cli.group()
def webcam():
    """Live demos on a camera or a video file: cvapps webcam TASK [--source 0]."""


@webcam.command("classify")
@click.option("--model", default=DEFAULT_CLASSIFIER, show_default=True, help="Shipped model name or .keras path.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.0, help=MIN_CONFIDENCE_HELP)
@click.option("--group", is_flag=True, help=GROUP_HELP)
@runtime_option
@webcam_options
@fail_on_value_error
def webcam_classify(
    model, top_k, min_confidence, group, runtime, source, no_show, output, overwrite, max_frames, quiet
):
    """Live top-k classes over a camera (q or Esc quits) or a video file."""
    from cvapps.cli.commands import ClassifyOptions, run_webcam_classify

    options = ClassifyOptions(top_k, min_confidence, group)
    run_webcam_classify(source, model, options, not no_show, output, overwrite, max_frames, quiet, runtime)


@webcam.command("detect")
@click.option("--model", default=DEFAULT_DETECTOR, show_default=True, help="Shipped detector name or .keras path.")
@click.option("--confidence-threshold", type=click.FloatRange(0, 1), default=0.25, show_default=True)
@click.option("--iou-threshold", type=click.FloatRange(0, 1), default=0.45, show_default=True)
@click.option("--classes", help="Comma-separated class names to keep; default all.")
@click.option(
    "--class-threshold",
    "class_thresholds",
    multiple=True,
    metavar="NAME=VALUE",
    help="Confidence threshold for one class (repeatable).",
)
@runtime_option
@webcam_options
@fail_on_value_error
def webcam_detect(
    model,
    confidence_threshold,
    iou_threshold,
    classes,
    class_thresholds,
    runtime,
    source,
    no_show,
    output,
    overwrite,
    max_frames,
    quiet,
):
    """Live boxes over a camera (q or Esc quits) or a video file."""
    from cvapps.cli.commands import DetectOptions, run_webcam_detect

    options = DetectOptions.from_cli(confidence_threshold, iou_threshold, classes, class_thresholds)
    run_webcam_detect(source, model, options, not no_show, output, overwrite, max_frames, quiet, runtime)


# --- export ------------------------------------------------------------------------------------


@cli.command()
@click.argument("model")
@click.option(
    "--format", "format_", type=click.Choice(["onnx", "saved_model", "litert"]), default="onnx", show_default=True
)
@click.option("--output", type=click.Path(), help="Destination (default: beside the .keras, e.g. cifar10.onnx).")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=1e-4,
    show_default=True,
    help="Largest allowed |export - keras| on the sample inputs.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing export.")
@fail_on_value_error
def export(model, format_, output, tolerance, overwrite):
    """Export MODEL (shipped name or .keras) and check it against Keras on sample inputs; a
    mismatching export fails loudly and leaves nothing behind."""
    from cvapps.export import export_model

    report = export_model(model, format=format_, output=output, tolerance=tolerance, overwrite=overwrite)
    click.echo(
        f"exported {report.path} ({report.format}) in {report.seconds:.1f} s; "
        f"largest |{report.format} - keras| = {report.max_abs_diff:.3g} (tolerance {report.tolerance:g})"
    )


# --- demo --------------------------------------------------------------------------------------


@cli.command()
@click.option("--output", type=click.Path(), default="cvapps_demo", show_default=True, help="Folder for the results.")
@click.option("--overwrite", is_flag=True, help="Write into a folder that already holds files.")
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def demo(output, overwrite, quiet):
    """Run every finished app on sample photos that ship with scikit-image; write annotated
    results to --output."""
    from cvapps.cli.commands import run_demo

    run_demo(output, overwrite, quiet)


# --- models ------------------------------------------------------------------------------------


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_models(as_json):
    """List the shipped models with the metrics on their cards."""
    from cvapps.models import model_card, shipped_models

    rows = []
    for name, path in shipped_models().items():
        card = model_card(name)
        size = round(path.stat().st_size / 1e6, 2) if path.is_file() else None  # None: built on first use
        rows.append(
            {
                "name": name,
                "task": card.get("task", "?"),
                "file": str(path),
                "size_mb": size,
                "data": card.get("data", ""),
                "metrics": card.get("metrics", {}),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no shipped models found")
    for row in rows:
        metrics = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row["metrics"].items())
        size = f"{row['size_mb']:>5.1f} MB" if row["size_mb"] is not None else "first use"
        click.echo(f"{row['name']:<12} {row['task']:<9} {size:>8}  {metrics}  ({row['data']})")


# --- the other apps ----------------------------------------------------------------------------
# Each app keeps its commands in its own module (click only at import time, so --help stays
# instant) and adds them to the groups here.

APP_COMMAND_MODULES = (
    "cvapps.cli.segment",
    "cvapps.cli.faces",
    "cvapps.cli.style",
    "cvapps.cli.explain",
    "cvapps.cli.visualise",
)


def _register_apps():
    import importlib

    for name in APP_COMMAND_MODULES:
        importlib.import_module(name).register(cli=cli, train=train, evaluate=evaluate, webcam=webcam)


_register_apps()


def main():
    cli(prog_name="cvapps")


if __name__ == "__main__":
    main()
