"""Commands of U-Net segmentation (issue 4): added to the ``cvapps`` groups by :func:`register`.

    cvapps segment SOURCE [--model person_seg] [--output OUT] [--overlay|--mask-only|--cutout|--blur] [--json FILE]
    cvapps train segment DATA... --output model.keras [--family unet|compact|mobilenetv2] ...
    cvapps eval segment DATA... --model NAME --holdout 0.2 --json report.json
    cvapps webcam segment [--model person_seg] [--blur] [--source 0]

The click declarations come first, then the bodies they call (one file per app).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cvapps.cli.commands import Outputs, bar, check_destinations, eval_report, run_webcam_loop
from cvapps.cli.common import (
    OutputOptions,
    ReportOptions,
    SplitOptions,
    WebcamOptions,
    backbone_size_options,
    fail_on_value_error,
    family_option,
    holdout_options,
    output_options,
    quiet_option,
    renamed,
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
from cvapps.segmentation import DEFAULT_MODEL

if TYPE_CHECKING:
    import numpy as np

    from cvapps.core.webcam import LoopStats
    from cvapps.runtime import OpenedModel
    from cvapps.segmentation import Segmentation


@click.command("segment")
@click.argument("source")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Shipped model name or .keras/.onnx path.")
@click.option("--overlay", "view", flag_value="overlay", default=True, help="Class colours over the image (default).")
@click.option("--mask-only", "view", flag_value="mask", help="The coloured label map alone.")
@click.option("--cutout", "view", flag_value="cutout", help="RGBA cut-out of the foreground (PNG output).")
@click.option("--blur", "view", flag_value="blur", help="Blur the background (e.g. with the person model).")
@click.option(
    "--opacity", "alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Overlay opacity."
)
@renamed("--alpha", "--opacity", "alpha", click.FloatRange(0, 1))
@click.option("--tile", type=click.IntRange(min=32), help="Overlap-tile side (default: the model's training tile).")
@output_options(
    "Output image file (one input), folder (several) or video file.",
    "Write JSON Lines records (class pixel fractions) to this file, or - for stdout.",
)
@runtime_option
@fail_on_value_error
def segment(
    source: str, model: str, view: str, alpha: float, tile: int | None, runtime: str, outputs: OutputOptions
) -> None:
    """Segment an image, a folder, a glob or a video: per-pixel classes, drawn as an overlay,
    a mask, a cut-out or a background blur."""

    failures = run_segment(source, model, outputs, view=view, alpha=alpha, tile=tile, runtime=runtime)
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
@backbone_size_options
@weights_option
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
@train_overwrite_option
@restart_options
@quiet_option
@fail_on_value_error
def train_segment(
    data: tuple[str, ...],
    output: str,
    classes: str | None,
    val_fraction: float,
    family: str,
    filters: int,
    depth: int,
    size: str,
    alpha: float,
    weights: str | None,
    upsample: str,
    image_size: int,
    fit: bool,
    epochs: int,
    repeats: int,
    batch_size: int,
    learning_rate: float,
    loss: str,
    border_weight: float,
    elastic: float,
    rotate: float,
    scale: tuple[float, float],
    vflip: bool,
    max_side: int | None,
    no_augment: bool,
    checkpoint_dir: str | None,
    seed: int,
    quiet: bool,
    restart: str,
    overwrite: bool,
) -> None:
    """Train a U-Net on one or more DATA folders (image/ + label/, images/ + masks/, Penn-Fudan,
    COCO category masks), merged. Rerun the same command to resume."""
    from cvapps.nn.training import split_record
    from cvapps.segmentation import train_segmenter

    started = time.time()
    train, val = _segmentation_sets(data, classes, val_fraction, seed, quiet)
    if not quiet:
        counts = train.pixel_counts()
        shares = ", ".join(f"{n} {c / max(1, counts.sum()):.1%}" for n, c in zip(train.class_names, counts))
        click.echo(f"{len(train)} training pairs, {len(val)} held out; classes: {shares}")
    result = train_segmenter(
        train,
        output,
        validation=val,
        family=family,
        size=size,
        alpha=alpha,
        weights=weights,
        filters=filters,
        depth=depth,
        upsample=upsample,
        image_size=image_size,
        fit=fit,
        epochs=epochs,
        repeats=repeats,
        batch_size=batch_size,
        learning_rate=learning_rate,
        loss=loss,
        border_weight=border_weight,
        augment=not no_augment,
        elastic=elastic,
        rotate=rotate,
        scale=scale,
        vflip=vflip,
        max_side=max_side,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        restart=restart,
        overwrite=overwrite,
        split=split_record(val_fraction, seed, val),
        verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
    )
    warn_each(result.skipped, quiet)
    report_reused(result)
    click.echo(f"saved {output} after {time.time() - started:.0f} s")


@click.command("segment")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Shipped model name or .keras path.")
@click.option("--classes", help="Comma-separated class names to keep from COCO masks (as in training).")
@holdout_options("train segment")
@report_options()
@click.option("--figure", type=click.Path(), help="Save image / truth / prediction rows here (default beside --json).")
@click.option("--samples", type=click.IntRange(min=0), default=4, show_default=True, help="Rows in the figure.")
@click.option("--tile", type=click.IntRange(min=32), help="Overlap-tile side (default: the model's training tile).")
@fail_on_value_error
def eval_segment(
    data: tuple[str, ...],
    model: str,
    classes: str | None,
    holdout: float | str | None,
    seed: int | None,
    figure: str | None,
    samples: int,
    tile: int | None,
    report: ReportOptions,
) -> None:
    """mIoU, Dice (fractions), per-class IoU and pixel accuracy on DATA at full resolution."""
    split = SplitOptions(classes, holdout, seed)
    run_eval_segment(data, model, report, split, figure=figure, samples=samples, tile=tile)


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
def webcam_segment(model: str, blur: bool, alpha: float, strength: int, runtime: str, webcam: WebcamOptions) -> None:
    """Live segmentation overlay (or --blur background blur) over a camera (q or Esc quits) or a video."""
    run_webcam_segment(model, webcam, blur=blur, alpha=alpha, strength=strength, runtime=runtime)


def register(cli: click.Group, train: click.Group, evaluate: click.Group, webcam: click.Group) -> None:
    """Add this app's commands to the top-level group and the train/eval/webcam groups."""
    cli.add_command(segment, "segment")
    train.add_command(train_segment, "segment")
    evaluate.add_command(eval_segment, "segment")
    webcam.add_command(webcam_segment, "segment")


__all__ = ["register", "warn"]


# --- command bodies ----------------------------------------------------------------------------

VIEWS = ("overlay", "mask", "cutout", "blur")


def render(image: np.ndarray, result: Segmentation, view: str, alpha: float = 0.5, strength: int = 31) -> np.ndarray:
    """One output image of ``view`` for a :class:`cvapps.segmentation.Segmentation`."""
    from cvapps.segmentation import blur_background, colour_labels, cutout, overlay

    if view == "overlay":
        return overlay(image, result, alpha)
    if view == "mask":
        return colour_labels(result.labels, len(result.class_names))
    if view == "cutout":
        return cutout(image, result)
    if view == "blur":
        return blur_background(image, result, strength)
    raise ValueError(f"view must be one of {VIEWS}, received {view!r}.")


def run_segment(
    source: str,
    model_name: str | OpenedModel,
    outputs: OutputOptions,
    *,
    view: str = "overlay",
    alpha: float = 0.5,
    tile: int | None = None,
    runtime: str = "auto",
) -> int:
    """``cvapps segment``: returns the number of inputs that failed."""
    from cvapps.runtime import open_model
    from cvapps.segmentation import segment

    source, settings = open_source(source), outputs
    output = settings.output
    if view == "cutout" and output and source.is_stream:
        raise ValueError(
            "--cutout makes transparent PNGs; a video cannot hold them. Use --overlay or --blur for videos."
        )
    if (
        view == "cutout"
        and output
        and Path(output).suffix
        and Path(output).suffix.lower() != ".png"
        and len(source.items) == 1
    ):
        raise ValueError(f"--cutout writes an RGBA image; name a .png output, received {output}.")
    outputs = Outputs(source, settings, task="segment")
    if view == "cutout" and outputs.images is not None and outputs.images.multiple:
        from cvapps.core.sinks import refuse_existing

        for item in source.items:  # cut-outs are PNGs: check those names before any work
            refuse_existing(outputs.images.path_for(item).with_suffix(".png"), settings.overwrite)
    model = open_model(model_name, task="segment", runtime=runtime)
    with outputs:
        for frame in outputs.frames():
            started = time.perf_counter()
            [result] = segment(frame.image, model, tile=tile or "auto")
            milliseconds = (time.perf_counter() - started) * 1000
            if outputs.records:
                outputs.records.write(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "source": frame.source,
                        "frame": frame.index,
                        "task": "segment",
                        "model": model.info.name,
                        "runtime": model.runtime,
                        "results": result.to_dict(),
                        "milliseconds": round(milliseconds, 3),
                    }
                )
            if settings.json_path != "-":
                label = f"{frame.source}" + (f"[{frame.index}]" if outputs.is_video else "")
                shares = ", ".join(f"{n} {f:.1%}" for n, f in result.fractions().items() if f > 0)
                click.echo(f"{label}: {shares}")
            if outputs.wants_images:
                picture = render(frame.image, result, view, alpha)
                if view == "cutout" and outputs.images.multiple:  # RGBA needs PNG names in the folder
                    path = outputs.images.path_for(frame.source, frame.index).with_suffix(".png")
                    write_image(path, picture, settings.overwrite)
                else:
                    outputs.write(picture, frame)
    return outputs.failures


def _segmentation_sets(data, classes, holdout, seed, quiet):
    """Load and merge DATA folders; with ``holdout``, the (train, held_out) split, else (all, None)."""
    from cvapps.segmentation.data import load_segmentation_sets, split_segmentation

    names = [c.strip() for c in classes.split(",")] if classes else None
    merged = load_segmentation_sets(list(data), names, progress=bar(quiet, "reading masks", "mask"))
    warn_each(merged.problems, quiet)
    if len(merged) == 0:
        raise ValueError(f"{' '.join(map(str, data))}: no usable image/mask pairs (see the warnings above).")
    return split_segmentation(merged, holdout, seed) if holdout else (merged, None)


def run_eval_segment(
    data: tuple[str, ...],
    model_name: str,
    report_options: ReportOptions,
    split: SplitOptions,
    *,
    figure: str | None = None,
    samples: int = 4,
    tile: int | None = None,
) -> dict:
    """``cvapps eval segment``: print and save the report and the figure. ``split.holdout``: a fraction,
    or ``"model"`` (the split the model recorded in training)."""
    from cvapps.nn.training import check_holdout, resolve_holdout
    from cvapps.runtime import open_model
    from cvapps.segmentation import evaluate_segmenter

    started, quiet, json_path = time.time(), report_options.quiet, report_options.json_path
    holdout, seed = split.holdout, split.seed
    figure = figure or (str(Path(json_path).with_suffix("")) + "_samples.png" if json_path else None)
    check_destinations(report_options, figure)
    model = open_model(model_name, task="segment", runtime="auto")
    recorded = model.info.settings.get("split")
    if holdout is not None:
        holdout, seed = resolve_holdout(recorded, holdout, seed)
    everything, held_out = _segmentation_sets(data, split.classes, holdout, seed or 0, quiet)
    if holdout:
        check_holdout(recorded, held_out)
    dataset = held_out if holdout else everything
    metrics, picture = evaluate_segmenter(
        model, dataset, tile=tile or "auto", progress=bar(quiet, "segmenting", "img"), samples=samples
    )
    warn_each(metrics["problems"], quiet)
    report = eval_report(
        "segment", model_name, " + ".join(map(str, data)), holdout, seed or 0, len(dataset), started, metrics
    )
    click.echo(
        f"miou {metrics['miou']:.4f}   dice {metrics['dice']:.4f}   pixel_accuracy {metrics['pixel_accuracy']:.4f}"
    )
    click.echo(f"{'class':<16}{'iou':>8}{'dice':>8}{'pixels':>12}")
    for name, row in metrics["per_class"].items():
        click.echo(f"{name:<16}{row['iou']:>8.4f}{row['dice']:>8.4f}{row['pixels']:>12}")
    if json_path:
        write_json(json_path, report, overwrite=report_options.overwrite)
    if figure and picture is not None:
        write_image(figure, picture, overwrite=report_options.overwrite)
        click.echo(f"figure: {figure}")
    return report


def run_webcam_segment(
    model_name: str | OpenedModel,
    webcam: WebcamOptions,
    *,
    blur: bool = False,
    alpha: float = 0.5,
    strength: int = 31,
    runtime: str = "auto",
) -> LoopStats:
    """``cvapps webcam segment``: live overlay or background blur over a camera or video."""
    from cvapps.runtime import open_model
    from cvapps.segmentation import segment

    model = open_model(model_name, task="segment", runtime=runtime)
    view = "blur" if blur else "overlay"

    def process(image):
        [result] = segment(image, model)
        return render(image, result, view, alpha, strength)

    stats = run_webcam_loop(process, webcam)
    if not webcam.quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS ({stats.dropped} stale frames dropped)"
        )
    return stats
