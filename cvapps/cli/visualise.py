"""Commands that draw what filters and layers do: ``filter``, ``filters``, ``features``, ``patches``.

    cvapps filter photo.jpg --kernel sobel-x --output edges.png
    cvapps filters hymenoptera --output filters.png
    cvapps features hymenoptera photo.jpg --level P2 --level P4 --output features.png
    cvapps patches hymenoptera photos/ --level P4 --output patches.png

Click and :mod:`cvapps.cli.common` only at import time (``cvapps --help`` stays light); the
bodies import numpy, OpenCV and Keras when they run.
"""

from __future__ import annotations

import sys
import time

import click

from cvapps.cli.common import UserError, fail_on_value_error, warn

# The names of cvapps.core.kernels.KERNELS, repeated here so that --help needs no numpy
# (tests/core/test_kernels.py checks the two lists are the same).
KERNEL_NAMES = (
    "sobel-x",
    "sobel-y",
    "scharr-x",
    "scharr-y",
    "laplacian",
    "laplacian-8",
    "vertical-edge",
    "horizontal-edge",
    "vertical-line",
    "horizontal-line",
    "box-blur",
    "gaussian-blur",
    "sharpen",
)

_model_argument = click.argument("model")
_output_option = click.option("--output", type=click.Path(), required=True, help="Picture file to write (.png, .jpg).")
_overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing output file.")


def _check_output(output, overwrite):
    """Fail before any work when the picture could not be written."""
    from cvapps.core.sinks import refuse_existing
    from cvapps.core.sources import is_image_path

    if not is_image_path(output):
        raise ValueError(f"{output}: the output picture needs an image suffix such as .png or .jpg.")
    refuse_existing(output, overwrite)


def _done(path, started, quiet):
    if not quiet:
        click.echo(f"wrote {path} in {time.time() - started:.1f} s")
    else:
        click.echo(str(path))


@click.command("filter")
@click.argument("image")
@click.option(
    "--kernel",
    type=click.Choice(KERNEL_NAMES),
    required=True,
    help="Hand-made 3x3 kernel (see cvapps.core.kernels: sobel-x finds vertical edges, brighter to the right).",
)
@click.option("--output", type=click.Path(), required=True, help="Picture file for one image, or a folder for several.")
@click.option(
    "--mode",
    type=click.Choice(["auto", "abs", "signed", "clip"]),
    default="auto",
    show_default=True,
    help="abs: |response| scaled to white; signed: gray = 0, white/black = +/-; clip: response "
    "as pixels (blur, sharpen); auto: clip for blur/sharpen, else abs.",
)
@click.option(
    "--padding",
    type=click.Choice(["reflect", "same", "valid"]),
    default="reflect",
    show_default=True,
    help="reflect: mirror the border (no false edge on the frame); same: zeros outside, as Conv2D; "
    "valid: only full windows (2 pixels smaller).",
)
@click.option(
    "--saturate",
    type=click.FloatRange(0, 100, max_open=True),
    default=1.0,
    show_default=True,
    help="Percent of the strongest responses drawn full white/black (0: scale by the maximum).",
)
@_overwrite_option
@click.option("--quiet", is_flag=True, help="Print only the written paths.")
@fail_on_value_error
def filter_command(
    image: str, kernel: str, output: str, mode: str, padding: str, saturate: float, overwrite: bool, quiet: bool
) -> None:
    """Apply a classic hand-made filter (Sobel, Scharr, Laplacian, line detectors, ...) to the
    luminance of IMAGE (a file, folder or glob) and save the response as a gray picture:
    what a CNN's first layer learns to do, written by hand."""
    from cvapps.core.kernels import filter_image
    from cvapps.core.sinks import ImageSink
    from cvapps.core.sources import open_source

    started = time.time()
    source = open_source(image)
    if source.kind != "images":
        raise UserError(f"{image}: 'cvapps filter' takes still images (a file, folder or glob), not a {source.kind}.")
    sink = ImageSink(output, multiple=len(source.items) > 1, overwrite=overwrite)
    failures = 0
    for frame in source.frames():
        if frame.error:
            failures += 1
            click.echo(f"error: {frame.error}", err=True)
            continue
        path = sink.write(filter_image(frame.image, kernel, mode, padding, saturate), frame.source)
        _done(path, started, quiet)
    if failures:
        sys.exit(1)


@click.command("filters")
@_model_argument
@_output_option
@click.option(
    "--tile",
    type=click.IntRange(min=4),
    default=48,
    show_default=True,
    help="Pixels per drawn filter (nearest-neighbour upscaling).",
)
@_overwrite_option
@click.option("--quiet", is_flag=True, help="Print only the written path.")
@fail_on_value_error
def filters_command(model: str, output: str, tile: int, overwrite: bool, quiet: bool) -> None:
    """Draw the first convolution layer's learned filters of MODEL (a shipped name such as
    hymenoptera, or a .keras file) as a grid picture, each filter normalised on its own."""
    from cvapps.core.sinks import write_image
    from cvapps.toolbox.visualise import first_layer_filters

    started = time.time()
    _check_output(output, overwrite)
    picture = first_layer_filters(model, tile=tile)
    _done(write_image(output, picture, overwrite), started, quiet)


@click.command("features")
@_model_argument
@click.argument("image")
@click.option(
    "--level",
    "levels",
    multiple=True,
    default=("P3",),
    show_default=True,
    help="Backbone level to draw (repeatable): P2 (stride 4) .. P5 (stride 32).",
)
@click.option(
    "--max-channels",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Channels drawn per level (the most active ones when there are more).",
)
@click.option("--colours", type=click.Choice(["viridis", "gray"]), default="viridis", show_default=True)
@_output_option
@_overwrite_option
@click.option("--quiet", is_flag=True, help="Print only the written path.")
@fail_on_value_error
def features_command(
    model: str,
    image: str,
    levels: tuple[str, ...],
    max_channels: int,
    colours: str,
    output: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Draw the feature maps of IMAGE at the chosen backbone levels of MODEL, one small picture
    per channel, each normalised on its own."""
    from cvapps.core.sinks import write_image
    from cvapps.toolbox.visualise import feature_maps

    started = time.time()
    _check_output(output, overwrite)
    result = feature_maps(model, image, levels=levels, max_channels=max_channels, colours=colours)
    if not quiet:
        for level in result.levels:
            h, w, c = result.shapes[level]
            click.echo(f"{level}: {w}x{h}x{c}, {len(result.channels[level])} channels drawn")
    _done(write_image(output, result.image, overwrite), started, quiet)


def _parse_units(text):
    if text is None:
        return None
    try:
        units = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--units must be comma-separated channel numbers such as 0,5,7; received {text!r}.") from None
    if not units:
        raise UserError(f"--units must list at least one channel number; received {text!r}.")
    return units


@click.command("patches")
@_model_argument
@click.argument("folder")
@click.option("--level", default="P4", show_default=True, help="Backbone level whose units are shown.")
@click.option("--units", help="Comma-separated channel numbers, e.g. 0,5,7; default the 8 most strongly activated.")
@click.option("--top", type=click.IntRange(min=1), default=9, show_default=True, help="Patches per unit.")
@click.option(
    "--patch-size",
    type=click.IntRange(min=1),
    help="Side of the square cut around each position, in model-input pixels (default: the level's receptive field).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@_output_option
@_overwrite_option
@click.option("--quiet", is_flag=True, help="Print only the written path.")
@fail_on_value_error
def patches_command(
    model: str,
    folder: str,
    level: str,
    units: str | None,
    top: int,
    patch_size: int | None,
    batch_size: int,
    output: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """For units of one backbone level of MODEL, the patches of the images in FOLDER (or a glob)
    that activate each unit most (Zeiler & Fergus 2014): a row per unit, strongest first."""
    from cvapps.core.sinks import write_image
    from cvapps.toolbox.visualise import top_patches

    started = time.time()
    _check_output(output, overwrite)
    result = top_patches(
        model, folder, level=level, units=_parse_units(units), top=top, patch_size=patch_size, batch_size=batch_size
    )
    for message in result.skipped:
        click.echo(f"error: {message}", err=True)
    if not quiet:
        size, jump, _ = result.geometry
        click.echo(
            f"{result.images} images, {level}: receptive field {size:.0f} px, stride {jump:.0f}; "
            f"units {', '.join(map(str, result.units))}"
        )
    _done(write_image(output, result.image, overwrite), started, quiet)
    if result.skipped:
        warn(f"{len(result.skipped)} file(s) could not be read (listed above)", quiet)
        sys.exit(1)


def register(cli: click.Group, train: click.Group, evaluate: click.Group, webcam: click.Group) -> None:
    """Add ``filter``, ``filters``, ``features`` and ``patches`` to the top-level group."""
    for command in (filter_command, filters_command, features_command, patches_command):
        cli.add_command(command)
