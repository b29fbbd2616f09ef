"""Commands of neural style transfer (issue 6): added to the ``cvapps`` groups by :func:`register`.

    cvapps stylize photo.jpg --style starry_night --output out.jpg
    cvapps stylize photos/ --style painting.jpg --output styled/          # any painting: optimisation
    cvapps styles
    cvapps train style painting.jpg --content photos/ --output models/mine.keras
    cvapps eval style photos/ --style starry_night --json eval.json
    cvapps webcam style --style udnie

The click declarations come first, then the bodies they call (one file per app).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import click

from cvapps.cli.commands import Outputs, check_destinations, eval_report, progress, run_webcam_loop
from cvapps.cli.common import (
    OutputOptions,
    ReportOptions,
    WebcamOptions,
    fail_on_value_error,
    output_options,
    quiet_option,
    renamed,
    report_options,
    restart_options,
    runtime_option,
    train_overwrite_option,
    warn,
    warn_each,
    webcam_options,
)
from cvapps.core.records import SCHEMA_VERSION
from cvapps.core.sinks import write_json
from cvapps.core.sources import open_source

if TYPE_CHECKING:
    import numpy as np

    from cvapps.core.webcam import LoopStats
    from cvapps.style import StyleOptions, StyleRunner

_style_option = click.option(
    "--style",
    "style",
    required=True,
    help="A shipped style name (cvapps styles), a .keras style model, or a painting's image path.",
)
_method_option = click.option(
    "--method",
    type=click.Choice(["fast", "optimize"]),
    help="fast: a trained net (under a second); optimize: Gatys et al. on any painting "
    "(tens of seconds). Default: optimize when --style is an image file, else fast.",
)
_strength_option = click.option(
    "--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="0 = the photo, 1 = fully stylised."
)
_preserve_option = click.option(
    "--preserve-color", is_flag=True, help="Keep the photo's colours (luminance-only transfer)."
)
_blend_options = [
    click.option("--blend", "blend_style", help="A second style mixed in (same kinds as --style)."),
    click.option(
        "--blend-weight",
        type=click.FloatRange(0, 1),
        default=0.5,
        show_default=True,
        help="Share of the --blend style in the mix.",
    ),
]


def _blend(function: Callable) -> Callable:
    for option in reversed(_blend_options):
        function = option(function)
    return function


@click.command("stylize")
@click.argument("source")
@_style_option
@_method_option
@_strength_option
@_preserve_option
@click.option(
    "--side",
    "size",
    type=click.IntRange(min=8),
    help="Longer side of the result in pixels (default: the photo's size; 384 for --method optimize).",
)
@renamed("--size", "--side", "size", click.IntRange(min=8))
@_blend
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Optimisation steps (--method optimize).",
)
@output_options("Image file, folder (for many inputs) or video file.")
@runtime_option
@fail_on_value_error
def stylize_command(
    source: str,
    style: str,
    method: str | None,
    strength: float,
    preserve_color: bool,
    size: int | None,
    blend_style: str | None,
    blend_weight: float,
    steps: int,
    runtime: str,
    outputs: OutputOptions,
) -> None:
    """Stylise SOURCE (an image, a folder, a glob or a video file) with a style."""
    from cvapps.style import StyleOptions

    choice = StyleChoice(style, method, strength, preserve_color, size, StyleOptions(blend_style, blend_weight, steps))
    failures = run_stylize(source, choice, outputs, runtime=runtime)
    if failures:
        sys.exit(1)


@click.command("styles")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def styles_command(as_json: bool) -> None:
    """List the shipped styles (use them with --style NAME)."""
    import json

    from cvapps.models import model_card, shipped_models

    rows = []
    for name, path in shipped_models().items():
        card = model_card(name)
        if card.get("task") != "style":
            continue
        rows.append(
            {
                "name": name,
                "file": str(path),
                "size_mb": round(path.stat().st_size / 1e6, 2),
                "style_image": card.get("style_image", ""),
                "metrics": card.get("metrics", {}),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no shipped styles found; any painting works with: cvapps stylize PHOTO --style painting.jpg")
    for row in rows:
        click.echo(f"{row['name']:<16} {row['size_mb']:>5.2f} MB  painting: {row['style_image']}")


@click.command("style")
@click.argument("style_image", type=click.Path())
@click.argument("more_content", nargs=-1, type=click.Path())
@click.option(
    "--content",
    multiple=True,
    required=True,
    type=click.Path(),
    help="Folders of content photos: --content DIR [DIR ...] (or repeat the option).",
)
@click.option("--output", type=click.Path(), required=True, help="Where to write the trained .keras model.")
@click.option("--image-size", type=click.IntRange(min=32), default=160, show_default=True, help="Training crop side.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=80, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True)
@click.option("--content-weight", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--style-weight", type=click.FloatRange(min=0), default=2.0, show_default=True)
@click.option("--tv-weight", type=click.FloatRange(min=0), default=5.0, show_default=True)
@click.option(
    "--style-size",
    type=click.IntRange(min=32),
    default=256,
    show_default=True,
    help="Shorter side the painting is resized to (sets the brush-stroke scale).",
)
@click.option(
    "--loss-network",
    type=click.Choice(["auto", "mobilenetv2", "efficientnet_lite0", "cifar10"]),
    default="auto",
    show_default=True,
    help="auto: ImageNet MobileNetV2 when its weights are found, else ImageNet EfficientNet-Lite0 (always offline).",
)
@click.option("--width", type=click.IntRange(min=2), default=16, show_default=True, help="Channels at full resolution.")
@click.option("--residual-blocks", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--full-conv", is_flag=True, help="Full 3x3 convolutions instead of depthwise-separable ones.")
@click.option("--max-images", type=click.IntRange(min=1), help="Use at most this many content photos.")
@click.option("--checkpoint-dir", type=click.Path(), help="Resumable state and samples (default runs/<output name>).")
@click.option("--seed", type=int, default=0, show_default=True)
@train_overwrite_option
@restart_options
@quiet_option
@fail_on_value_error
def train_style_command(
    style_image: str,
    more_content: tuple[str, ...],
    content: tuple[str, ...],
    output: str,
    image_size: int,
    batch_size: int,
    epochs: int,
    steps_per_epoch: int,
    learning_rate: float,
    content_weight: float,
    style_weight: float,
    tv_weight: float,
    style_size: int,
    loss_network: str,
    width: int,
    residual_blocks: int,
    full_conv: bool,
    max_images: int | None,
    checkpoint_dir: str | None,
    seed: int,
    quiet: bool,
    restart: str,
    overwrite: bool,
) -> None:
    """Train a fast style network for the painting STYLE_IMAGE on --content photos.
    Progress goes to the log, sample outputs to CHECKPOINT_DIR/samples; rerun to resume."""
    from cvapps.style import train_style

    content = [*content, *more_content]
    result = train_style(
        style_image,
        content,
        output,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        learning_rate=learning_rate,
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
        style_size=style_size,
        loss_network=loss_network,
        width=width,
        residual_blocks=residual_blocks,
        separable=not full_conv,
        max_images=max_images,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        restart=restart,
        overwrite=overwrite,
        verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
    )
    for message in result.skipped:
        warn(f"skipped {message}", quiet)
    last = {k: v[-1] for k, v in result.history.get("main", {}).items() if k != "learning_rate"}
    from cvapps.cli.common import report_reused

    report_reused(result)
    click.echo(
        f"saved {result.model_path} after {result.seconds:.0f} s; last epoch: "
        + ", ".join(f"{k}={v:.4f}" for k, v in last.items())
    )


@click.command("style")
@click.argument("content_dir", type=click.Path())
@_style_option
@_method_option
@click.option(
    "--side", "size", type=click.IntRange(min=32), default=256, show_default=True, help="Longer side of each photo."
)
@renamed("--size", "--side", "size", click.IntRange(min=32))
@click.option(
    "--loss-network",
    type=click.Choice(["auto", "mobilenetv2", "efficientnet_lite0", "cifar10"]),
    default="auto",
    show_default=True,
)
@click.option("--max-images", type=click.IntRange(min=1), help="Score at most this many photos (sorted order).")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Optimisation steps (--method optimize).",
)
@report_options()
@runtime_option
@fail_on_value_error
def eval_style_command(
    content_dir: str,
    style: str,
    method: str | None,
    size: int | None,
    loss_network: str,
    max_images: int | None,
    steps: int,
    runtime: str,
    report: ReportOptions,
) -> None:
    """Mean content and style losses (relative, see cvapps.style) of stylised CONTENT_DIR photos."""
    from cvapps.style import StyleOptions

    choice = StyleChoice(style, method, size=size, options=StyleOptions(steps=steps, loss_network=loss_network))
    run_eval_style(content_dir, choice, report, max_images=max_images, runtime=runtime)


@click.command("style")
@_style_option
@click.option(
    "--side",
    "size",
    type=click.IntRange(min=32),
    default=256,
    show_default=True,
    help="Longer side the net runs at (the result is scaled back to the frame).",
)
@renamed("--size", "--side", "size", click.IntRange(min=32))
@_strength_option
@_preserve_option
@_blend
@runtime_option
@webcam_options
@fail_on_value_error
def webcam_style_command(
    style: str,
    size: int,
    strength: float,
    preserve_color: bool,
    blend_style: str | None,
    blend_weight: float,
    runtime: str,
    webcam: WebcamOptions,
) -> None:
    """Live style transfer over a camera (q or Esc quits) or a video file (fast styles only)."""
    from cvapps.style import StyleOptions

    choice = StyleChoice(style, "fast", strength, preserve_color, size, StyleOptions(blend_style, blend_weight, 1))
    run_webcam_style(choice, webcam, runtime=runtime)


def register(cli: click.Group, train: click.Group, evaluate: click.Group, webcam: click.Group) -> None:
    """Add this app's commands to the top-level group and the train/eval/webcam groups."""
    cli.add_command(stylize_command, "stylize")
    cli.add_command(styles_command, "styles")
    train.add_command(train_style_command, "style")
    evaluate.add_command(eval_style_command, "style")
    webcam.add_command(webcam_style_command, "style")


# --- command bodies ----------------------------------------------------------------------------

OPTIMIZE_SIZE = 384  # default longer side for --method optimize (its cost grows with the pixels)


@dataclass(frozen=True)
class StyleChoice:
    """What a style command stylises with: the style and the settings of :func:`cvapps.style.stylize`."""

    style: str
    method: str | None = None
    strength: float = 1.0
    preserve_color: bool = False
    size: int | None = None
    options: StyleOptions | None = None  # None: StyleOptions()

    @property
    def settings(self) -> StyleOptions:
        """``options``, or the defaults."""
        from cvapps.style import StyleOptions

        return self.options or StyleOptions()

    def runner(self, runtime: str = "auto") -> StyleRunner:
        """The opened style(s)."""
        from cvapps.style import StyleRunner

        o = self.settings
        return StyleRunner(
            self.style, self.method, runtime, o.blend_style, o.blend_weight, loss_network=o.loss_network, steps=o.steps
        )


def run_stylize(source: str, choice: StyleChoice, outputs: OutputOptions, *, runtime: str = "auto") -> int:
    """``cvapps stylize``: returns the number of inputs that failed."""
    from cvapps.style import is_style_image, stylize

    source, settings = open_source(source), outputs
    quiet, json_path, size = settings.quiet, settings.json_path, choice.size
    strength, preserve_color = choice.strength, choice.preserve_color
    if choice.method is None and is_style_image(choice.style) and not quiet:
        click.echo(
            f"note: --style {choice.style} is a painting, so --method optimize is used "
            f"({choice.settings.steps} steps; tens of seconds per image on a CPU).",
            err=True,
        )
    runner = choice.runner(runtime)
    if size is None and runner.method == "optimize":
        size = OPTIMIZE_SIZE
    outputs = Outputs(source, settings, task="style")
    with outputs:
        for frame in outputs.frames():
            [result] = stylize(frame.image, runner, strength=strength, preserve_color=preserve_color, size=size)
            if outputs.records:
                outputs.records.write(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "source": frame.source,
                        "frame": frame.index,
                        "task": "style",
                        "style": result.style,
                        "method": result.method,
                        "strength": strength,
                        "preserve_color": preserve_color,
                        "height": int(result.image.shape[0]),
                        "width": int(result.image.shape[1]),
                        "milliseconds": round(result.seconds * 1000, 3),
                    }
                )
            if json_path != "-" and not (quiet or outputs.is_video):
                label = f"{frame.source}" + (f"[{frame.index}]" if outputs.is_video else "")
                h, w = result.image.shape[:2]
                click.echo(f"{label}: {result.style} ({result.method}) {w}x{h} in {result.seconds:.2f} s")
            if outputs.wants_images:
                image = result.image
                if outputs.video and image.shape[:2] != frame.image.shape[:2] and size is None:
                    image = _resize_to(image, frame.image.shape)
                outputs.write(image, frame)
    return outputs.failures


def _resize_to(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    import cv2

    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def run_eval_style(
    content_dir: str,
    choice: StyleChoice,
    report_options: ReportOptions,
    *,
    max_images: int | None = None,
    runtime: str = "auto",
) -> dict:
    """``cvapps eval style``: mean relative content and style losses over the photos of
    ``content_dir``; prints and saves the report (the shared eval contract)."""
    from cvapps.style import evaluate_style

    started, quiet, json_path, style = time.time(), report_options.quiet, report_options.json_path, choice.style
    check_destinations(report_options)
    bar = None if quiet else (lambda items, total: progress(items, False, total, "stylising"))
    metrics, count, skipped = evaluate_style(
        content_dir,
        style,
        method=choice.method,
        size=choice.size,
        loss_network=choice.settings.loss_network,
        max_images=max_images,
        steps=choice.settings.steps,
        runtime=runtime,
        progress=bar,
    )
    warn_each(skipped, quiet, "skipped ")
    report = eval_report("style", style, str(content_dir), None, 0, count, started, metrics)
    click.echo(
        f"content_loss {metrics['content_loss']:.4f}   style_loss {metrics['style_loss']:.4f}   "
        f"({metrics['method']}, loss network {metrics['loss_network']}, {metrics['seconds_per_image']:.2f} s/image)"
    )
    if json_path:
        write_json(json_path, report, overwrite=report_options.overwrite)
    return report


def run_webcam_style(choice: StyleChoice, webcam: WebcamOptions, *, runtime: str = "auto") -> LoopStats:
    """``cvapps webcam style``: a fast style live over a camera or a video file."""
    from cvapps.style import is_style_image, stylize

    style, blend_style = choice.style, choice.settings.blend_style
    if is_style_image(style) or (blend_style is not None and is_style_image(blend_style)):
        raise ValueError(
            f"{style}: the webcam needs a trained (fast) style, not a painting; "
            "train one with 'cvapps train style' or pick one from 'cvapps styles'."
        )
    runner = replace(choice, method="fast").runner(runtime)

    def process(image):
        [result] = stylize(
            image, runner, strength=choice.strength, preserve_color=choice.preserve_color, size=choice.size
        )
        return _resize_to(result.image, image.shape) if result.image.shape != image.shape else result.image

    stats = run_webcam_loop(process, webcam)
    if not webcam.quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS ({stats.dropped} stale frames dropped)"
        )
    return stats
