"""``cvapps explain``: the per-layer table of a classic network or of any cvapps model (issue 7).

    cvapps explain resnet50
    cvapps explain lenet5 --input-size 32 32 --channels 3
    cvapps explain vgg16 --input-size 64 64 --no-top
    cvapps explain cifar10 --json cifar10_layers.json

Click and cvapps.cli.common only at import time; the body imports Keras.
"""

from __future__ import annotations

import click

from cvapps.cli.common import fail_on_value_error
from cvapps.nn.families import ARCHITECTURES

ARCHITECTURE_NAMES = ARCHITECTURES


MAX_INPUT_PIXELS = 4096 * 4096  # a classic network built at more needs tens of GB (its weights do not depend on it)


@click.command("explain")
@click.argument("model")
@click.option(
    "--input-size",
    nargs=2,
    type=click.IntRange(min=1),
    metavar="H W",
    help="Input height and width (default: the network's native size, or the model's own).",
)
@click.option("--channels", type=click.IntRange(min=1), help="Input channels of a classic network (LeNet-5: 1).")
@click.option(
    "--num-classes", type=click.IntRange(min=2), help="Classes of a classic network's head (1000; LeNet-5 10)."
)
@click.option("--no-top", is_flag=True, help="A classic network without its classifier (the backbone's pyramid).")
@click.option("--json", "json_path", type=click.Path(), help="Also write the table as JSON ('-' for stdout only).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --json file.")
@fail_on_value_error
def explain_command(
    model: str,
    input_size: tuple[int, int] | None,
    channels: int | None,
    num_classes: int | None,
    no_top: bool,
    json_path: str | None,
    overwrite: bool,
) -> None:
    """Per-layer table of MODEL: output shapes by floor((n + 2p - f) / s) + 1, parameters,
    multiply-adds and receptive fields, each checked against what Keras builds, with totals and
    the lessons the network illustrates. MODEL: a network (lenet5, alexnet, vgg16, resnet50,
    googlenet, mobilenet, airbench, efficientnet_lite0), a shipped model name or a .keras file."""
    from cvapps.toolbox.explain import explain

    if input_size and input_size[0] * input_size[1] > MAX_INPUT_PIXELS:
        height, width = input_size
        raise click.UsageError(
            f"--input-size {height} {width} is {height * width / 1e6:.0f} megapixels, too large to build the "
            f"network's layers for; pass at most {MAX_INPUT_PIXELS // 10**6} megapixels (e.g. 4096 4096)."
        )
    if json_path and json_path != "-":
        from cvapps.core.sinks import refuse_existing

        refuse_existing(json_path, overwrite)  # before building anything
    if (
        model == "efficientnet_lite0"
    ):  # a backbone family of its own (random weights; cvapps explain imagenet for the trained one)
        if channels:
            raise click.UsageError("--channels: EfficientNet-Lite0 reads 3 channels.")
        from cvapps.classification import build_classifier
        from cvapps.nn.backbone import Backbone

        height, width = input_size or (224, 224)
        backbone = Backbone(family=model, image_size=height if height == width else None)
        network = backbone if no_top else build_classifier(backbone, num_classes or 1000, dropout=0.2)
        import keras

        inputs = keras.Input((height, width, 3), name="images")
        network = keras.Model(inputs, network(inputs), name=model)
        report = explain(network, name=model)
    elif model in ARCHITECTURE_NAMES:
        from cvapps.nn.architectures import NATIVE_INPUT, build_architecture

        height, width, native_channels = NATIVE_INPUT[model]
        if input_size:
            height, width = input_size
        shape = (height, width, channels or native_channels)
        network = build_architecture(model, include_top=not no_top, num_classes=num_classes, input_shape=shape)
        report = explain(network)
    else:
        if channels or num_classes or no_top:
            raise click.UsageError("--channels, --num-classes and --no-top apply to the classic networks only.")
        from cvapps.models import load_model

        network = load_model(model)
        shape = None
        if input_size:
            shape = (*input_size, network.inputs[0].shape[-1])
            if network.inputs[0].shape[1] is None:  # an any-size model: build it at this size
                import keras

                inputs = keras.Input(shape, name="images")
                network = keras.Model(inputs, network(inputs), name=network.name)
        report = explain(network, input_shape=shape, name=model)
    if json_path != "-":
        click.echo(report.table())
    if json_path:
        import json

        from cvapps.core.sinks import write_json

        if json_path == "-":
            click.echo(json.dumps(report.to_dict(), indent=1))
        else:
            write_json(json_path, report.to_dict(), overwrite=overwrite)
    if report.mismatches:
        raise SystemExit(1)


def register(cli: click.Group, train: click.Group, evaluate: click.Group, webcam: click.Group) -> None:
    """Add ``cvapps explain`` to the top-level group."""
    cli.add_command(explain_command, "explain")
