"""Commands of classification: added to the ``cvapps`` groups by :func:`register`.

    cvapps classify SOURCE [--model imagenet] [--top-k 5] [--min-confidence P] [--group] [--output OUT] [--json FILE]
    cvapps train classify DATA --output model.keras [--family ...] [--weights imagenet] ...
    cvapps eval classify DATA --model NAME [--holdout 0.05] --json report.json
    cvapps webcam classify [--model imagenet] [--source 0]

The click declarations come first, then the bodies they call (one file per app).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click
import numpy as np

from cvapps.classification import DEFAULT_MODEL as DEFAULT_CLASSIFIER
from cvapps.cli.commands import (
    Outputs,
    bar,
    batched,
    check_destinations,
    confusion_beside,
    eval_report,
    run_webcam_loop,
)
from cvapps.cli.common import (
    OutputOptions,
    ReportOptions,
    WebcamOptions,
    backbone_size_options,
    fail_on_value_error,
    family_option,
    holdout_options,
    output_options,
    quiet_option,
    report_options,
    report_reused,
    restart_options,
    runtime_option,
    train_overwrite_option,
    warn,
    warn_each,
    webcam_options,
    weights_option,
)
from cvapps.core.records import SCHEMA_VERSION
from cvapps.core.sinks import write_image, write_json
from cvapps.core.sources import open_source

if TYPE_CHECKING:
    from cvapps.classification import Classification
    from cvapps.core.webcam import LoopStats
    from cvapps.runtime import OpenedModel

MIN_CONFIDENCE_HELP = "Label an image 'unknown' when its top probability is below this (0-1); default never."


GROUP_HELP = "Fold ImageNet's fine classes into parents (English springer -> dog, tabby -> cat; imagenet model only)."


@click.command("classify")
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
@output_options("Annotated image file (one input) or folder (several).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@runtime_option
@fail_on_value_error
def classify(
    source: str,
    model: str,
    top_k: int,
    min_confidence: float,
    group: bool,
    batch_size: int,
    runtime: str,
    outputs: OutputOptions,
) -> None:
    """Classify an image, a folder, a glob or a video: top-k classes per image or frame."""
    options = ClassifyOptions(top_k, min_confidence, group)
    failures = run_classify(source, model, options, outputs, batch_size=batch_size, runtime=runtime)
    if failures:
        sys.exit(1)


@click.command("classify")
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
@train_overwrite_option
@restart_options
@quiet_option
@fail_on_value_error
def train_classify(
    data: str,
    output: str,
    validation: str | None,
    val_fraction: float,
    family: str,
    size: str,
    alpha: float,
    weights: str | None,
    image_size: int,
    epochs: int,
    fine_tune_epochs: int,
    fine_tune_from: str,
    freeze_backbone: bool,
    batch_size: int,
    optimizer: str,
    learning_rate: float,
    fine_tune_learning_rate: float | None,
    weight_decay: float,
    label_smoothing: float,
    no_flip: bool,
    translate: float,
    dropout: float,
    head: str | None,
    tta: bool,
    patience: int | None,
    checkpoint_dir: str | None,
    seed: int,
    quiet: bool,
    restart: str,
    overwrite: bool,
) -> None:
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
        restart=restart,
        overwrite=overwrite,
        verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),  # a bar on a terminal, a line per epoch in logs
    )
    for message in result.skipped:
        warn(f"skipped {message}", quiet)
    last = {k: v[-1] for k, v in list(result.history.values())[-1].items()}
    report_reused(result)
    click.echo(
        f"saved {result.model_path} after {result.seconds:.0f} s; last epoch: "
        + ", ".join(f"{k}={v:.4f}" for k, v in last.items())
    )


@click.command("classify")
@click.argument("data", type=click.Path())
@click.option(
    "--model",
    default=DEFAULT_CLASSIFIER,
    show_default=True,
    help="Shipped model name or .keras path. DATA's folders are its class names (or, for imagenet, wnids).",
)
@report_options()
@click.option("--confusion", type=click.Path(), help="Save the confusion matrix as a PNG here.")
@holdout_options("train classify")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@fail_on_value_error
def eval_classify(
    data: str,
    model: str,
    confusion: str | None,
    holdout: float | str | None,
    seed: int | None,
    batch_size: int,
    report: ReportOptions,
) -> None:
    """Top-1/top-5 accuracy, per-class precision and recall and a confusion matrix on DATA
    (a folder per class, its test/ folder, or an .npz whose test arrays are used)."""
    run_eval_classify(data, model, report, confusion, batch_size=batch_size, holdout=holdout, seed=seed)


@click.command("classify")
@click.option("--model", default=DEFAULT_CLASSIFIER, show_default=True, help="Shipped model name or .keras path.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.0, help=MIN_CONFIDENCE_HELP)
@click.option("--group", is_flag=True, help=GROUP_HELP)
@runtime_option
@webcam_options
@fail_on_value_error
def webcam_classify(
    model: str, top_k: int, min_confidence: float, group: bool, runtime: str, webcam: WebcamOptions
) -> None:
    """Live top-k classes over a camera (q or Esc quits) or a video file."""
    run_webcam_classify(model, ClassifyOptions(top_k, min_confidence, group), webcam, runtime=runtime)


def register(cli: click.Group, train: click.Group, evaluate: click.Group, webcam: click.Group) -> None:
    """Add this app's commands to the top-level group and the train/eval/webcam groups."""
    cli.add_command(classify, "classify")
    train.add_command(train_classify, "classify")
    evaluate.add_command(eval_classify, "classify")
    webcam.add_command(webcam_classify, "classify")


# --- command bodies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifyOptions:
    """What ``cvapps classify`` and ``cvapps webcam classify`` pass to the classifier's post-processing."""

    top_k: int = 5
    min_confidence: float = 0.0  # below it, the label is "unknown"
    group: bool = False  # fold ImageNet classes into parents ("dog", "car", ...)


def classify_frames(
    model: OpenedModel, images: np.ndarray, options: ClassifyOptions, sources: list[str]
) -> list[Classification]:
    """(N, S, S, 3) batch -> N :class:`cvapps.classification.Classification`, with the options applied."""
    from cvapps.classification import predict_probabilities, results_from_probabilities

    probabilities = predict_probabilities(model, images, len(images))
    return results_from_probabilities(
        probabilities,
        model.info.class_names,
        sources,
        top_k=options.top_k,
        min_confidence=options.min_confidence,
        group=options.group,
    )


def result_lines(result: Classification) -> list[str]:
    """Printed / drawn lines of one classification: the label first when it is "unknown"."""
    pairs = [f"{n} {s:.2f}" for n, s in zip(result.class_names, result.scores)]
    return (["unknown"] if result.unknown else []) + pairs


def run_classify(
    source: str,
    model_name: str | OpenedModel,
    options: ClassifyOptions,
    outputs: OutputOptions,
    *,
    batch_size: int = 32,
    runtime: str = "auto",
) -> int:
    """``cvapps classify``: returns the number of inputs that failed."""
    from cvapps.core.annotate import draw_text_lines
    from cvapps.core.sources import resize_square
    from cvapps.runtime import open_model

    source = open_source(source)
    settings, outputs = outputs, Outputs(source, outputs, task="classify")
    model = open_model(model_name, task="classify", runtime=runtime)  # a name, a path or an opened model
    info = model.info
    name = info.name
    if options.group:  # fail before reading any image when the model cannot group
        from cvapps.classification import group_classes

        group_classes(np.zeros((0, len(info.class_names))), info.class_names)
    with outputs:
        for chunk in batched(outputs.frames(errors=True), batch_size):
            good = [f for f in chunk if not f.error]
            started = time.perf_counter()
            if good:
                batch = np.stack([resize_square(f.image, info.image_size) for f in good])
                results = iter(classify_frames(model, batch, options, [f.source for f in good]))
            milliseconds = (time.perf_counter() - started) * 1000 / max(1, len(good))
            for frame in chunk:  # records in input order, error records included
                if frame.error:
                    outputs.write_error(frame)
                    continue
                result = next(results)
                if outputs.records:
                    outputs.records.write(
                        {
                            "schema_version": SCHEMA_VERSION,
                            "source": frame.source,
                            "frame": frame.index,
                            "task": "classify",
                            "model": name,
                            "runtime": model.runtime,
                            "top_k": options.top_k,
                            "label": result.label,
                            "results": result.to_dict(),
                            "milliseconds": round(milliseconds, 3),
                        }
                    )
                if settings.json_path != "-":
                    label = f"{frame.source}" + (f"[{frame.index}]" if outputs.is_video else "")
                    head = "unknown; " if result.unknown else ""
                    click.echo(
                        f"{label}: {head}"
                        + ", ".join(f"{n} {s:.3f}" for n, s in zip(result.class_names, result.scores))
                    )
                if outputs.wants_images:
                    outputs.write(draw_text_lines(frame.image, result_lines(result)), frame)
    return outputs.failures


def run_eval_classify(
    data: str,
    model_name: str,
    report_options: ReportOptions,
    confusion_path: str | None = None,
    *,
    batch_size: int = 256,
    holdout: float | str | None = None,
    seed: int | None = None,
) -> dict:
    """``cvapps eval classify``: print and save the report. ``holdout`` (a fraction, or ``"model"``: the
    model's recorded split) scores only the stratified split that training carved out of DATA."""
    from cvapps.classification import evaluate_classifier
    from cvapps.classification.data import load_classification, split_off
    from cvapps.core.plots import confusion_matrix_image
    from cvapps.models import load_model, model_info
    from cvapps.nn.training import check_holdout, resolve_holdout

    started, quiet, json_path = time.time(), report_options.quiet, report_options.json_path
    confusion_path = confusion_path or (confusion_beside(json_path) if json_path else None)
    check_destinations(report_options, confusion_path)
    model = load_model(model_name, task="classify")
    info = model_info(model)
    recorded = info.settings.get("split")
    if holdout is not None:
        holdout, seed = resolve_holdout(recorded, holdout, seed)
    dataset = load_classification(
        data, info.image_size, split="train" if holdout else "test", progress=bar(quiet, "reading", "img")
    )
    if holdout:
        _, dataset = split_off(dataset, holdout, seed)
        check_holdout(recorded, dataset)
    warn_each(dataset.skipped, quiet, "skipped ")
    if len(dataset) == 0:
        raise ValueError(f"{data}: no readable images to evaluate.")
    metrics = evaluate_classifier(model, dataset, batch_size, progress=bar(quiet, "predicting", "batch"))
    report = eval_report("classify", model_name, str(data), holdout, seed or 0, len(dataset), started, metrics)
    click.echo(f"top1 {metrics['top1']:.4f}   top5 {metrics['top5']:.4f}")
    click.echo(f"{'class':<16}{'precision':>10}{'recall':>10}{'support':>9}")
    for name, row in metrics["per_class"].items():
        click.echo(f"{name:<16}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['support']:>9}")
    classes = metrics["confusion_classes"]
    other = len(metrics["confusion"][0]) > len(classes) if metrics["confusion"] else False
    click.echo("confusion (rows true, columns predicted" + (", last column: any other class" if other else "") + "):")
    for name, row in zip(classes, metrics["confusion"]):
        click.echo(f"{name[:12]:<13}" + " ".join(f"{v:>5}" for v in row))
    if json_path:
        write_json(json_path, report, overwrite=report_options.overwrite)
    if confusion_path:
        columns = classes + (["other"] if other else [])
        image = confusion_matrix_image(metrics["confusion"], classes, columns)
        write_image(confusion_path, image, overwrite=report_options.overwrite)
        click.echo(f"confusion matrix: {confusion_path}")
    return report


def run_webcam_classify(
    model_name: str | OpenedModel, options: ClassifyOptions, webcam: WebcamOptions, *, runtime: str = "auto"
) -> LoopStats:
    """``cvapps webcam classify``: live top-k labels over a camera or video."""
    from cvapps.core.annotate import draw_text_lines
    from cvapps.core.sources import resize_square
    from cvapps.runtime import open_model

    model = open_model(model_name, task="classify", runtime=runtime)
    info = model.info
    if options.group:
        from cvapps.classification import group_classes

        group_classes(np.zeros((0, len(info.class_names))), info.class_names)

    def process(image):
        [result] = classify_frames(model, resize_square(image, info.image_size)[None], options, ["frame"])
        return draw_text_lines(image, result_lines(result))

    stats = run_webcam_loop(process, webcam)
    if not webcam.quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS ({stats.dropped} stale frames dropped)"
        )
    return stats
