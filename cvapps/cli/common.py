"""What every ``cvapps`` command shares: the one-line user error, shared options, warnings.

Click only: importing this module must stay instant (``cvapps --help`` imports it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import click

from cvapps.nn.families import FAMILIES


class UserError(click.ClickException):
    """A one-line error about the user's input; exit code 2."""

    exit_code = 2

    def show(self, file: IO[str] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def fail_on_value_error(function: Callable) -> Callable:
    """Turn ValueError/TypeError from the library into a one-line UserError."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ValueError, TypeError) as error:
            raise UserError(str(error)) from None
        except ModuleNotFoundError as error:
            message = missing_extra_message(error)
            if message is None:
                raise
            raise UserError(message) from None

    return wrapper


# Modules that only an extra installs: the light install (pip install cvapps) runs every predict path on
# onnxruntime; what needs Keras and TensorFlow says which extra brings it.
EXTRA_MODULES = {"keras": "train", "tensorflow": "train", "tf2onnx": "train", "jax": "distribute", "ray": "ray"}
EXTRA_CONTENTS = {"train": "Keras and TensorFlow", "distribute": "JAX", "ray": "Ray Data"}


def missing_extra_message(error: ModuleNotFoundError) -> str | None:
    """The one-line message for a module that an extra installs (None for any other missing module).

    >>> missing_extra_message(ModuleNotFoundError("No module named 'keras'", name="keras"))
    "this command needs Keras and TensorFlow, which the light install leaves out: pip install 'cvapps[train]'"
    """
    top = (error.name or "").split(".")[0]
    extra = EXTRA_MODULES.get(top)
    if extra is None:
        return None
    command = ""
    context = click.get_current_context(silent=True)
    if context is not None:
        command = f"'{context.command_path}' "
    return (
        f"{command or 'this command '}needs {EXTRA_CONTENTS[extra]}, which the light install leaves out: "
        f"pip install 'cvapps[{extra}]'"
    )


def warn_each(messages: Sequence[str], quiet: bool = False, prefix: str = "") -> None:
    """A ``warning:`` line per message on stderr; with ``quiet`` only one line that counts them (data
    problems are never silent: the count says how many inputs were left out or changed)."""
    messages = list(messages)
    if not messages:
        return
    if quiet:
        click.echo(f"warning: {len(messages)} data problem(s); run without --quiet to list them.", err=True)
        return
    for message in messages:
        click.echo(f"warning: {prefix}{message}", err=True)


def warn(message: str, quiet: bool = False) -> None:
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


QUIET_HELP = "No progress bar, notes or warnings (errors still go to stderr)."
JSON_LINES_HELP = "Write JSON Lines records (one per image or frame) to this file, or - for stdout."
REPORT_JSON_HELP = "Write the report as one JSON object to this file."


@dataclass(frozen=True)
class OutputOptions:
    """Where a predict command's results go: ``--output``, ``--overwrite``, ``--json``, ``--quiet``.

    Attributes:
        output: annotated image file, folder or video file; None: none.
        overwrite: replace existing files (else an existing destination is refused before any work).
        json_path: JSON Lines file or ``"-"`` (stdout); None: none.
        quiet: no progress bar, notes or warnings.
    """

    output: str | None = None
    overwrite: bool = False
    json_path: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class ReportOptions:
    """Where an ``eval`` (or other one-report) command writes: ``--json``, ``--overwrite``, ``--quiet``."""

    json_path: str | None = None
    overwrite: bool = False
    quiet: bool = False


@dataclass(frozen=True)
class WebcamOptions:
    """The loop settings of every ``cvapps webcam TASK``: ``--source``, ``--no-show``, ``--output``,
    ``--overwrite``, ``--max-frames``, ``--quiet``."""

    source: str = "0"
    show: bool = True
    output: str | None = None
    overwrite: bool = False
    max_frames: int | None = None
    quiet: bool = False


@dataclass(frozen=True)
class SplitOptions:
    """Which part of DATA an ``eval`` command scores: ``--classes``, ``--holdout``, ``--seed`` (as in training)."""

    classes: str | None = None
    holdout: float | str | None = None  # "model": the split the model recorded
    seed: int | None = None


def _collect(function: Callable, into: str, build: Callable[[dict], Any], options: list) -> Callable:
    """Add click ``options`` to ``function``; their values reach it as one keyword ``into`` = ``build(kwargs)``."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        kwargs[into] = build(kwargs)
        return function(*args, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def output_options(output_help: str, json_help: str = JSON_LINES_HELP, json: bool = True) -> Callable:
    """``--output/--overwrite/--json/--quiet`` of a predict command, passed as ``outputs=OutputOptions``.

    ``json=False`` leaves ``--json`` out (commands whose only output is images).
    """

    def decorate(function: Callable) -> Callable:
        options = [
            click.option("--output", type=click.Path(), help=output_help),
            click.option("--overwrite", is_flag=True, help="Replace existing output files."),
        ]
        if json:
            options.append(click.option("--json", "json_path", help=json_help))
        options.append(click.option("--quiet", is_flag=True, help=QUIET_HELP))

        def build(kwargs):
            return OutputOptions(
                kwargs.pop("output"), kwargs.pop("overwrite"), kwargs.pop("json_path", None), kwargs.pop("quiet")
            )

        return _collect(function, "outputs", build, options)

    return decorate


def report_options(json_help: str = REPORT_JSON_HELP) -> Callable:
    """``--json/--overwrite/--quiet`` of a command that writes one report, passed as ``report=ReportOptions``.

    An existing ``--json`` file is refused unless ``--overwrite`` (the one rule of every output).
    """

    def decorate(function: Callable) -> Callable:
        options = [
            click.option("--json", "json_path", type=click.Path(), help=json_help),
            click.option("--overwrite", is_flag=True, help="Replace existing report files."),
            click.option("--quiet", is_flag=True, help=QUIET_HELP),
        ]

        def build(kwargs):
            return ReportOptions(kwargs.pop("json_path"), kwargs.pop("overwrite"), kwargs.pop("quiet"))

        return _collect(function, "report", build, options)

    return decorate


def webcam_options(function: Callable) -> Callable:
    """The options every ``cvapps webcam TASK`` takes, passed as ``webcam=WebcamOptions``."""
    options = [
        click.option(
            "--source",
            default="0",
            show_default=True,
            help="Camera index, a video file, or a stream URL (rtsp://, http(s)://, .m3u8).",
        ),
        click.option("--no-show", is_flag=True, help="No window (headless); use with --output."),
        click.option(
            "--output",
            type=click.Path(),
            help="Write the annotated stream to this video file (.webm plays in browsers).",
        ),
        click.option("--overwrite", is_flag=True, help="Replace an existing output file."),
        click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames."),
        click.option("--quiet", is_flag=True, help=QUIET_HELP),
    ]

    def build(kwargs):
        return WebcamOptions(
            kwargs.pop("source"),
            not kwargs.pop("no_show"),
            kwargs.pop("output"),
            kwargs.pop("overwrite"),
            kwargs.pop("max_frames"),
            kwargs.pop("quiet"),
        )

    return _collect(function, "webcam", build, options)


@dataclass(frozen=True)
class TrackingOptions:
    """``--track``, ``--count-line`` and ``--zone`` (detect and webcam detect; webcam faces: --track).

    Attributes:
        track: give every box a track id that persists across frames (ByteTrack).
        count_lines: ``x1,y1,x2,y2`` lines; objects crossing each are counted, by class, in and out
            (turns tracking on: a crossing is a track's move from one side to the other).
        zones: ``x1,y1,x2,y2,x3,y3,...`` polygons; objects inside each are counted per frame.
        per_class: match boxes only to tracks of their own class (``TrackOptions.class_aware``).
    """

    track: bool = False
    count_lines: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    per_class: bool = False

    @property
    def tracking(self) -> bool:
        """Whether a tracker runs (``--track``, ``--track-per-class`` or a ``--count-line``)."""
        return self.track or self.per_class or bool(self.count_lines)


POINTS_HELP = " Pixels, or fractions of the frame's width and height when every value is in [0, 1]."


def tracking_options(counting: bool = True) -> Callable:
    """``--track`` (and, with ``counting``, repeatable ``--count-line`` and ``--zone``), passed as
    ``tracking=TrackingOptions``."""

    def decorate(function: Callable) -> Callable:
        options = [
            click.option(
                "--track",
                is_flag=True,
                help="Track objects across frames: each box gets an id that persists (ByteTrack).",
            )
        ]
        if counting:
            options += [
                click.option(
                    "--track-per-class",
                    "per_class",
                    is_flag=True,
                    help="Track each class on its own: a box never continues a track of another class (a person "
                    "never becomes the bicycle it rides), but a class flip starts a new id; turns --track on.",
                ),
                click.option(
                    "--count-line",
                    "count_lines",
                    multiple=True,
                    metavar="X1,Y1,X2,Y2",
                    help="Count tracked objects crossing this line, by class, in (left to right of "
                    "X1,Y1->X2,Y2) and out; repeatable; turns --track on." + POINTS_HELP,
                ),
                click.option(
                    "--zone",
                    "zones",
                    multiple=True,
                    metavar="X1,Y1,X2,Y2,X3,Y3,...",
                    help="Count the objects whose box bottom-centre is inside this polygon, per frame; "
                    "repeatable." + POINTS_HELP,
                ),
            ]

        def build(kwargs):
            return TrackingOptions(
                kwargs.pop("track"),
                tuple(kwargs.pop("count_lines", ())),
                tuple(kwargs.pop("zones", ())),
                kwargs.pop("per_class", False),
            )

        return _collect(function, "tracking", build, options)

    return decorate


def quiet_option(function: Callable) -> Callable:
    """``--quiet`` alone (train commands: their --output is the model, always written)."""
    return click.option("--quiet", is_flag=True, help=QUIET_HELP)(function)


BACKBONE_FAMILIES = FAMILIES  # from cvapps.nn.families (plain data: --help imports no Keras)


def family_option(default: str, extra: tuple[str, ...] = (), extra_help: str = "") -> Callable:
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


def report_reused(result: object) -> None:
    """Say on stderr when a training command trained nothing because its run had finished before."""
    if getattr(result, "reused", ()):
        click.echo(
            f"note: phase(s) {', '.join(result.reused)} had finished in an earlier run of this command "
            "(same arguments and data); their saved weights were reused and nothing was trained. Pass more "
            "--epochs to continue training, or --fresh to train again from the start.",
            err=True,
        )


def renamed(old: str, new: str, param: str, type: click.ParamType | type | None = None) -> Callable:
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


def backbone_size_options(function: Callable) -> Callable:
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


class HoldoutFraction(click.ParamType):
    """``--holdout`` alone (``"model"``: the model's recorded split) or ``--holdout 0.2`` (a fraction in (0, 1))."""

    name = "[FRACTION]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | str:
        if value == "model" or isinstance(value, float):
            return value
        try:
            fraction = float(value)
        except (TypeError, ValueError):
            self.fail(
                f"{value!r} is not a fraction; --holdout takes a fraction in (0, 1) or nothing (the model's own "
                "split). Put DATA before --holdout.",
                param,
                ctx,
            )
        if not 0 < fraction < 1:
            self.fail(f"{fraction} is not in (0, 1).", param, ctx)
        return fraction


def holdout_options(train_command: str) -> Callable:
    """``--holdout [FRACTION]`` and ``--seed`` of an eval command (``train_command``: the command that split)."""

    def decorate(function: Callable) -> Callable:
        function = click.option(
            "--seed",
            type=int,
            help="Seed of that split; default the model's own (as recorded in training).",
        )(function)
        return click.option(
            "--holdout",
            type=HoldoutFraction(),
            is_flag=False,
            flag_value="model",
            help=f"Score only the images '{train_command} --val-fraction' held out of DATA. Alone: the split the "
            "model recorded; with a fraction, that fraction (refused when it differs from the model's).",
        )(function)

    return decorate


def restart_options(function: Callable) -> Callable:
    """``--resume`` / ``--fresh`` of every train command, passed as ``restart`` ("check", "resume", "fresh").

    Without either, a run folder that belongs to another run (other arguments or data) is refused.
    """
    options = [
        click.option(
            "--resume",
            is_flag=True,
            help="Continue the run in the run folder even though its arguments or data changed.",
        ),
        click.option("--fresh", is_flag=True, help="Start over: delete the run folder's state first."),
    ]

    def build(kwargs):
        resume, fresh = kwargs.pop("resume"), kwargs.pop("fresh")
        if resume and fresh:
            raise click.UsageError("--resume and --fresh exclude each other; pass one.")
        return "resume" if resume else "fresh" if fresh else "check"

    return _collect(function, "restart", build, options)


train_overwrite_option = click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing --output model that this run did not write (a rerun of the same command needs none).",
)
