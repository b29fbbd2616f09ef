"""Commands of U-Net segmentation (issue 4): added to the ``cvapps`` groups by :func:`register`.

    cvapps segment SOURCE [--model person_seg] [--output OUT] [--overlay|--mask-only|--cutout|--blur] [--json FILE]
    cvapps train segment DATA... --output model.keras [--family unet|compact|mobilenetv2] ...
    cvapps eval segment DATA... --model NAME --holdout 0.2 --json report.json
    cvapps webcam segment [--model person_seg] [--blur] [--source 0]

Click only at import time; the bodies live in :mod:`cvapps.segmentation_commands`.
"""

from __future__ import annotations

import sys

import click

from cvapps.cli_common import (
    fail_on_value_error,
    family_option,
    renamed,
    runtime_option,
    warn,
    webcam_options,
)

DEFAULT_MODEL = "person_seg"


@click.command("segment")
@click.argument("source")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Shipped model name or .keras/.onnx path.")
@click.option("--output", type=click.Path(), help="Output image file (one input), folder (several) or video file.")
@click.option("--overlay", "view", flag_value="overlay", default=True, help="Class colours over the image (default).")
@click.option("--mask-only", "view", flag_value="mask", help="The coloured label map alone.")
@click.option("--cutout", "view", flag_value="cutout", help="RGBA cut-out of the foreground (PNG output).")
@click.option("--blur", "view", flag_value="blur", help="Blur the background (e.g. with the person model).")
@click.option(
    "--opacity", "alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Overlay opacity."
)
@renamed("--alpha", "--opacity", "alpha", click.FloatRange(0, 1))
@click.option("--tile", type=click.IntRange(min=32), help="Overlap-tile side (default: the model's training tile).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option(
    "--json", "json_path", help="Write JSON Lines records (class pixel fractions) to this file, or - for stdout."
)
@runtime_option
@click.option("--quiet", is_flag=True, help="No progress bar or warnings.")
@fail_on_value_error
def segment(source, model, output, view, alpha, tile, overwrite, json_path, runtime, quiet):
    """Segment an image, a folder, a glob or a video: per-pixel classes, drawn as an overlay,
    a mask, a cut-out or a background blur."""
    from cvapps.segmentation_commands import run_segment

    failures = run_segment(source, model, output, view, alpha, tile, overwrite, json_path, quiet, runtime)
    if failures:
        sys.exit(1)


@click.command("segment")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--output", type=click.Path(), required=True, help="Where to write the trained .keras model.")
@click.option("--classes", help="Comma-separated class names to keep from COCO masks (default person).")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Images held out (never trained on; same split as 'eval segment --holdout').",
)
@family_option("unet", extra=("unet",), extra_help="unet: the classic from-scratch U-Net. Else the encoder. ")
@click.option(
    "--filters", type=click.IntRange(min=1), default=32, show_default=True, help="Classic U-Net first-level filters."
)
@click.option("--depth", type=click.IntRange(1, 6), default=4, show_default=True, help="Classic U-Net poolings.")
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
    help="'imagenet' (mobilenetv2, efficientnet_lite0) or a .weights.h5 file (mobilenetv2); default random.",
)
@click.option("--upsample", type=click.Choice(["transpose", "resize"]), default="transpose", show_default=True)
@click.option("--image-size", type=click.IntRange(min=32), default=256, show_default=True, help="Training tile side.")
@click.option("--fit", is_flag=True, help="Whole-scene photos: scale each image to the tile (and at inference).")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--repeats", type=click.IntRange(min=1), default=1, show_default=True, help="Passes over the data per epoch."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option(
    "--loss", default="ce+dice", show_default=True, help="Terms ce, dice, focal joined by + (e.g. focal+0.5*dice)."
)
@click.option(
    "--border-weight",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="w0 of the U-Net paper's border-weight map (0: off; the paper uses 10).",
)
@click.option(
    "--elastic",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability of an elastic deformation.",
)
@click.option(
    "--rotate", type=click.FloatRange(0, 180), default=15.0, show_default=True, help="Largest rotation (degrees)."
)
@click.option(
    "--scale",
    type=(click.FloatRange(min=0.05), click.FloatRange(min=0.05)),
    default=(0.75, 1.25),
    show_default=True,
    help="Range of the random zoom (e.g. 0.7 2.5 adds close-ups of whole scenes).",
)
@click.option("--vflip", is_flag=True, help="Also flip vertically (microscopy).")
@click.option("--max-side", type=click.IntRange(min=32), help="Shrink larger images once when loading (speed).")
@click.option("--no-augment", is_flag=True)
@click.option("--checkpoint-dir", type=click.Path(), help="Resumable state (default runs/<output name>).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def train_segment(data, output, classes, val_fraction, quiet, seed, **options):
    """Train a U-Net on one or more DATA folders (image/ + label/, images/ + masks/, Penn-Fudan,
    COCO category masks), merged. Rerun the same command to resume."""
    from cvapps.segmentation_commands import run_train_segment

    run_train_segment(data, output, classes, val_fraction, seed, quiet, options)


@click.command("segment")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Shipped model name or .keras path.")
@click.option("--classes", help="Comma-separated class names to keep from COCO masks (as in training).")
@click.option(
    "--holdout",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Score only the split 'train segment --val-fraction' held out of DATA.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that split (as in training).")
@click.option("--json", "json_path", type=click.Path(), help="Write the report as one JSON object.")
@click.option("--figure", type=click.Path(), help="Save image / truth / prediction rows here (default beside --json).")
@click.option("--samples", type=click.IntRange(min=0), default=4, show_default=True, help="Rows in the figure.")
@click.option("--tile", type=click.IntRange(min=32), help="Overlap-tile side (default: the model's training tile).")
@click.option("--quiet", is_flag=True)
@fail_on_value_error
def eval_segment(data, model, classes, holdout, seed, json_path, figure, samples, tile, quiet):
    """mIoU, Dice (fractions), per-class IoU and pixel accuracy on DATA at full resolution."""
    from cvapps.segmentation_commands import run_eval_segment

    run_eval_segment(data, model, classes, holdout, seed, json_path, figure, samples, tile, quiet)


@click.command("segment")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Shipped segmentation model or .keras path.")
@click.option("--blur", is_flag=True, help="Blur the background instead of colouring the classes.")
@click.option(
    "--opacity", "alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Overlay opacity."
)
@renamed("--alpha", "--opacity", "alpha", click.FloatRange(0, 1))
@click.option(
    "--blur-kernel",
    "strength",
    type=click.IntRange(min=1),
    default=31,
    show_default=True,
    help="Blur kernel size (pixels).",
)
@renamed("--strength", "--blur-kernel", "strength", click.IntRange(min=1))
@runtime_option
@webcam_options
@fail_on_value_error
def webcam_segment(model, blur, alpha, strength, runtime, source, no_show, output, overwrite, max_frames, quiet):
    """Live segmentation overlay (or --blur background blur) over a camera (q or Esc quits) or a video."""
    from cvapps.segmentation_commands import run_webcam_segment

    run_webcam_segment(source, model, blur, alpha, strength, not no_show, output, overwrite, max_frames, quiet, runtime)


def register(cli, train, evaluate, webcam):
    """Add this app's commands to the top-level group and the train/eval/webcam groups."""
    cli.add_command(segment, "segment")
    train.add_command(train_segment, "segment")
    evaluate.add_command(eval_segment, "segment")
    webcam.add_command(webcam_segment, "segment")


__all__ = ["register", "warn"]
