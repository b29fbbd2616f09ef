"""What every ``cvapps`` command shares: the one-line user error, shared options, warnings.

Click only: importing this module must stay instant (``cvapps --help`` imports it).
"""

from __future__ import annotations

import functools

import click

from cvapps.nn.families import FAMILIES


class UserError(click.ClickException):
    """A one-line error about the user's input; exit code 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"Error: {self.format_message()}", err=True)


def fail_on_value_error(function):
    """Turn ValueError/TypeError from the library into a one-line UserError."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ValueError, TypeError) as error:
            raise UserError(str(error)) from None

    return wrapper


def warn(message, quiet=False):
    """Print ``warning: message`` on stderr unless quiet."""
    if not quiet:
        click.echo(f"warning: {message}", err=True)


runtime_option = click.option(
    "--runtime",
    type=click.Choice(["auto", "onnx", "keras"]),
    default="auto",
    show_default=True,
    help="auto: onnxruntime when the model has a matching .onnx (made by 'cvapps export'), else Keras.",
)


def webcam_options(function):
    """The options every ``cvapps webcam TASK`` takes: --source, --no-show, --output, --overwrite,
    --max-frames, --quiet."""
    options = [
        click.option("--source", default="0", show_default=True, help="Camera index or a video file."),
        click.option("--no-show", is_flag=True, help="No window (headless); use with --output."),
        click.option("--output", type=click.Path(), help="Write the annotated stream to this video file."),
        click.option("--overwrite", is_flag=True, help="Replace an existing output file."),
        click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames."),
        click.option("--quiet", is_flag=True),
    ]
    for option in reversed(options):
        function = option(function)
    return function


BACKBONE_FAMILIES = FAMILIES  # from cvapps.nn.families (plain data: --help imports no Keras)


def family_option(default, extra=(), extra_help=""):
    """``--family`` / ``--backbone``: which backbone an app trains on (``extra``: app-only choices)."""
    return click.option(
        "--family",
        "--backbone",
        "family",
        type=click.Choice([*extra, *BACKBONE_FAMILIES]),
        default=default,
        show_default=True,
        help=f"{extra_help}Backbone: compact, mobilenetv2 or efficientnet_lite0 (ImageNet weights with --weights "
        "imagenet; efficientnet_lite0's come with cvapps, offline) or a classic "
        "network (see 'cvapps explain'). --backbone is the same option.",
    )


def report_reused(result):
    """Say on stderr when a training command trained nothing because its run had finished before."""
    if getattr(result, "reused", ()):
        click.echo(
            f"note: phase(s) {', '.join(result.reused)} had finished in an earlier run with this run folder; "
            "their saved weights were reused and nothing was trained. To train again, delete the run folder "
            "or pass another --checkpoint-dir.",
            err=True,
        )


def renamed(old, new, param, type=None):
    """Accept ``old``, the earlier spelling of option ``new`` (whose value lands in ``param``), for one
    release: the value is used and a deprecation warning goes to stderr. Giving both is an error.

    Put it below the command's other options::

        @click.option("--opacity", "alpha", ...)
        @renamed("--alpha", "--opacity", "alpha", click.FloatRange(0, 1))
    """
    hidden = f"{param}__deprecated"

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(hidden, None)
            if value is not None:
                context = click.get_current_context()
                if context.get_parameter_source(param) == click.core.ParameterSource.COMMANDLINE:
                    raise click.UsageError(f"{old} is the old spelling of {new}; pass only {new}.")
                click.echo(
                    f"warning: {old} is deprecated and will be removed in the next release; use {new}.", err=True
                )
                kwargs[param] = value
            return function(*args, **kwargs)

        return click.option(old, hidden, type=type, default=None, hidden=True)(wrapper)

    return decorate


def backbone_size_options(function):
    """``--size`` (a compact backbone's size letter) and ``--width-multiplier`` (MobileNetV2's alpha; the old
    ``--alpha`` still works for one release), the same in every train command."""
    function = renamed("--alpha", "--width-multiplier", "alpha", float)(function)
    function = click.option(
        "--width-multiplier",
        "alpha",
        type=float,
        default=0.35,
        show_default=True,
        help="MobileNetV2 width multiplier (alpha).",
    )(function)
    return click.option("--size", default="s", show_default=True, help="Compact backbone size: xs, s, m.")(function)


weights_option = click.option(
    "--weights",
    help="'imagenet' (mobilenetv2, efficientnet_lite0) or a .weights.h5 file (mobilenetv2); default random.",
)
