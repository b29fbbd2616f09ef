"""Bodies of the style-transfer commands: they print, show progress and write files; the library
(:mod:`cvapps.style`) does not. Kept apart from :mod:`cvapps.cli_style` so ``cvapps --help`` stays light."""

from __future__ import annotations

import time

import click

from cvapps.commands import Outputs, eval_report, progress
from cvapps.core.sinks import write_json
from cvapps.core.sources import open_source

OPTIMIZE_SIZE = 384  # default longer side for --method optimize (its cost grows with the pixels)


def _runner(style, method, runtime, blend_style, blend_weight, steps, loss_network="auto"):
    from cvapps.style import StyleRunner

    return StyleRunner(style, method, runtime, blend_style, blend_weight, loss_network=loss_network, steps=steps)


def run_stylize(
    source,
    style,
    method,
    strength,
    preserve_color,
    size,
    blend_style,
    blend_weight,
    steps,
    output,
    overwrite,
    json_path,
    runtime,
    quiet,
):
    """``cvapps stylize``: returns the number of inputs that failed."""
    from cvapps.style import is_style_image, stylize

    source = open_source(source)
    if method is None and is_style_image(style) and not quiet:
        click.echo(
            f"note: --style {style} is a painting, so --method optimize is used "
            f"({steps} steps; tens of seconds per image on a CPU).",
            err=True,
        )
    runner = _runner(style, method, runtime, blend_style, blend_weight, steps)
    if size is None and runner.method == "optimize":
        size = OPTIMIZE_SIZE
    outputs = Outputs(source, output, json_path, overwrite)
    with outputs:
        for frame in outputs.frames(quiet):
            result = stylize(frame.image, runner, strength=strength, preserve_color=preserve_color, size=size)
            if outputs.records:
                outputs.records.write(
                    {
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


def _resize_to(image, shape):
    import cv2

    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def run_eval_style(content_dir, style, method, size, loss_network, max_images, steps, json_path, runtime, quiet):
    """``cvapps eval style``: mean relative content and style losses over the photos of
    ``content_dir``; prints and saves the report (the shared eval contract)."""
    from cvapps.style import evaluate_style

    started = time.time()
    bar = None if quiet else (lambda items, total: progress(items, False, total, "stylising"))
    metrics, count, skipped = evaluate_style(
        content_dir,
        style,
        method=method,
        size=size,
        loss_network=loss_network,
        max_images=max_images,
        steps=steps,
        runtime=runtime,
        progress=bar,
    )
    for message in skipped:
        click.echo(f"warning: skipped {message}", err=True)
    report = eval_report("style", style, str(content_dir), None, 0, count, started, metrics)
    click.echo(
        f"content_loss {metrics['content_loss']:.4f}   style_loss {metrics['style_loss']:.4f}   "
        f"({metrics['method']}, loss network {metrics['loss_network']}, {metrics['seconds_per_image']:.2f} s/image)"
    )
    if json_path:
        write_json(json_path, report)
    return report


def run_webcam_style(
    style,
    size,
    strength,
    preserve_color,
    blend_style,
    blend_weight,
    runtime,
    source,
    show,
    output,
    overwrite,
    max_frames,
    quiet,
):
    """``cvapps webcam style``: a fast style live over a camera or a video file."""
    from cvapps.core.webcam import run_loop
    from cvapps.style import is_style_image, stylize

    if is_style_image(style) or (blend_style is not None and is_style_image(blend_style)):
        raise ValueError(
            f"{style}: the webcam needs a trained (fast) style, not a painting; "
            "train one with 'cvapps train style' or pick one from 'cvapps styles'."
        )
    runner = _runner(style, "fast", runtime, blend_style, blend_weight, 1)

    def process(image):
        result = stylize(image, runner, strength=strength, preserve_color=preserve_color, size=size)
        return _resize_to(result.image, image.shape) if result.image.shape != image.shape else result.image

    stats = run_loop(source, process, show=show, output=output, overwrite=overwrite, max_frames=max_frames)
    if not quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS ({stats.dropped} stale frames dropped)"
        )
    return stats
