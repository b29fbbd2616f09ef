"""The ``cvapps`` command line. One grammar for every app:

    cvapps TASK SOURCE [options]          e.g. cvapps classify photo.jpg --top-k 3
    cvapps train TASK DATA [options]      e.g. cvapps train classify ./my_photos --output mine.keras
    cvapps eval TASK DATA --json FILE     e.g. cvapps eval classify ./test --model mine.keras
    cvapps webcam TASK [options]          e.g. cvapps webcam classify --source 0
    cvapps label TASK SOURCE [options]    e.g. cvapps label detect photos/ --teacher yolox_nano_416.onnx --output labelled/

Heavy imports (TensorFlow, Keras, OpenCV) happen inside the command bodies, so ``--help`` is
instant. Errors in user input end the command with a one-line message and exit code 2; a
batch in which some inputs failed exits with code 1 after processing the rest.
"""

from __future__ import annotations

import json
import os

import click

from cvapps.cli.common import fail_on_value_error

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cvapps")
@click.option(
    "--allow-truncated",
    is_flag=True,
    help="Decode image files that are cut short (what is there; the rest grey) instead of refusing them. "
    "Also: CVAPPS_ALLOW_TRUNCATED=1.",
)
def cli(allow_truncated: bool) -> None:
    """cvapps: computer-vision apps on one Keras backbone.

    Classification, detection, segmentation, face verification and style transfer on the same
    backbone, sources, sinks and command grammar. Start with: cvapps demo --output demo_out
    """
    from cvapps.core.sources import set_allow_truncated

    set_allow_truncated(True if allow_truncated else None)  # None: CVAPPS_ALLOW_TRUNCATED decides
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


# --- the groups the apps add their commands to: train, eval, webcam, label -----------------------


@cli.group()
def train() -> None:
    """Train a model on your own data: cvapps train TASK DATA."""


@cli.group("eval")
def evaluate() -> None:
    """Score a model with its field's standard metric: cvapps eval TASK DATA --json FILE."""


@cli.group()
def webcam() -> None:
    """Live demos on a camera or a video file: cvapps webcam TASK [--source 0]."""


@cli.group()
def label() -> None:
    """Auto-annotate photos with a teacher model: cvapps label TASK SOURCE --teacher FILE --output DIR."""


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
def export(model: str, format_: str, output: str | None, tolerance: float, overwrite: bool) -> None:
    """Export MODEL (shipped name or .keras) and check it against Keras on sample inputs; a
    mismatching export fails loudly and leaves nothing behind."""
    from cvapps.export import export_model

    report = export_model(model, format=format_, output=output, tolerance=tolerance, overwrite=overwrite)
    click.echo(
        f"exported {report.path} ({report.format}) in {report.seconds:.1f} s; "
        f"largest |{report.format} - keras| = {report.max_abs_diff:.3g} (tolerance {report.tolerance:g})"
    )


# --- models ------------------------------------------------------------------------------------


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_models(as_json: bool) -> None:
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


# --- the apps ------------------------------------------------------------------------------------
# Each app keeps its commands in its own module (click only at import time, so --help stays
# instant) and adds them to the groups here.

APP_COMMAND_MODULES = (
    "cvapps.cli.classify",
    "cvapps.cli.detect",
    "cvapps.cli.demo",
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


def main() -> None:
    try:
        cli(prog_name="cvapps")
    except ModuleNotFoundError as error:  # a command outside fail_on_value_error (e.g. a group's callback)
        from cvapps.cli.common import missing_extra_message

        message = missing_extra_message(error)
        if message is None:
            raise
        click.echo(f"Error: {message}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
