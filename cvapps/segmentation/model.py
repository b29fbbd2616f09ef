"""U-Net builders: the classic U-Net and the shared backbone as an encoder."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from cvapps.segmentation import FAMILIES

if TYPE_CHECKING:
    from pathlib import Path

    import keras

# --- model -------------------------------------------------------------------------------------


def _encoder_from_backbone(backbone):
    """A functional model: pixels -> {"P1": stride 2, "P2".."P5": strides 4..32} features."""
    import keras

    from cvapps.nn.architectures import ARCHITECTURES, EXACT_STRIDES, STRIDE2_LAYER

    if backbone.family in ARCHITECTURES:
        if backbone.family not in EXACT_STRIDES:
            raise ValueError(
                f"a U-Net needs an encoder whose levels are exact fractions of the input; "
                f"{backbone.family} uses 'valid' padding (its maps are not). Use one of "
                f"{', '.join(EXACT_STRIDES)}, compact, mobilenetv2 or efficientnet_lite0."
            )
        stem = backbone.get_layer(STRIDE2_LAYER[backbone.family]).output
        return keras.Model(backbone.input, {**backbone.pyramid_outputs, "P1": stem}, name="encoder")
    if backbone.family in ("compact", "efficientnet_lite0"):
        # The last map at stride 2: the stem's second conv (compact), block 0's projection (EfficientNet-Lite0).
        last = "stem_2_relu" if backbone.family == "compact" else "stem_b0_project_bn"
        outputs = {**backbone.pyramid_outputs, "P1": backbone.get_layer(last).output}
        return keras.Model(backbone.input, outputs, name="encoder")
    inner = backbone.get_layer(f"mobilenetv2_{backbone.alpha}")
    levels = inner.output
    # block_1_expand_relu: the last full-width activation at stride 2 in MobileNetV2.
    features = keras.Model(
        inner.input,
        {**levels, "P1": inner.get_layer("block_1_expand_relu").output},
        name=f"mobilenetv2_{backbone.alpha}_levels",
    )
    inputs = keras.Input(backbone.input_shape[1:], name="images")
    x = backbone.get_layer("preprocess")(inputs)
    return keras.Model(inputs, features(x), name="encoder")


def _classic_encoder(image_size, filters, depth):
    """The paper's contracting path: per level two 3x3 conv (here with BN), then 2x2 max pool;
    filters f, 2f, 4f, ... -> {"P0": stride 1, ..., "P{depth}": stride 2**depth}."""
    import keras

    from cvapps.nn.backbone import conv_bn_relu

    shape = (image_size, image_size, 3) if image_size else (None, None, 3)
    inputs = keras.Input(shape, name="images")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    levels = {}
    for level in range(depth + 1):
        if level:
            x = keras.layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
        width = filters * 2**level
        x = conv_bn_relu(x, width, 3, name=f"down{level}_a")
        x = conv_bn_relu(x, width, 3, name=f"down{level}_b")
        levels[f"P{level}"] = x
    return keras.Model(inputs, levels, name="encoder")


def build_unet(
    num_classes: int = 2,
    class_names: Iterable[str] | None = None,
    *,
    family: str = "unet",
    size: str = "s",
    alpha: float = 0.35,
    weights: str | Path | None = None,
    filters: int = 32,
    depth: int = 4,
    decoder_filters: Sequence[int] | None = None,
    upsample: str = "transpose",
    image_size: int | None = None,
    tile: int = 256,
    scale_to: int | None = None,
) -> keras.Model:
    """A U-Net: (batch, H, W, 3) RGB pixels in [0, 255] -> (batch, H, W, num_classes) probabilities.

    Args:
        num_classes: classes including the background (2 for a binary mask).
        class_names: names stored in the model; default ``background``, ``1``, ``2``, ...
        family: ``"unet"`` (classic from-scratch encoder, ``filters`` and ``depth``),
            ``"compact"``, ``"mobilenetv2"``, ``"efficientnet_lite0"`` or a classic network with exact strides (vgg16,
            resnet50, googlenet, mobilenet) (the shared backbone: P1 stem and P2..P5 skips,
            stride 32; ``size``, ``alpha`` and ``weights`` as in :func:`cvapps.nn.backbone.build_backbone`).
        decoder_filters: filters of the decoder blocks, deepest first; default: the encoder's
            widths mirrored (classic), or (128, 64, 48, 32, 16) for a backbone.
        upsample: ``"transpose"`` (2x2 transposed convolution, stride 2) or ``"resize"``
            (bilinear x2 then a 3x3 convolution).
        image_size: None builds for any input size (H, W multiples of the stride).
        tile: the training tile side, stored in the model's settings for overlap-tile inference.
        scale_to: if set, inference scales each image so its longer side is this many pixels.

    >>> import numpy as np
    >>> model = build_unet(3, family="unet", filters=4, depth=2)
    >>> tuple(model.predict_on_batch(np.zeros((1, 20, 28, 3))).shape)
    (1, 20, 28, 3)

    (20 x 28 are multiples of this model's stride 4; other sizes go through
    :func:`predict_probabilities`, which pads them.)
    """
    import keras

    from cvapps.nn.backbone import build_backbone, conv_bn_relu
    from cvapps.nn.layers import Metadata

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, received {family!r}.")
    if upsample not in ("transpose", "resize"):
        raise ValueError(f"upsample must be 'transpose' or 'resize', received {upsample!r}.")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer of at least 2 (background + classes), received {num_classes!r}."
        )
    class_names = (
        list(class_names) if class_names is not None else ["background"] + [str(i) for i in range(1, num_classes)]
    )
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class_names given for num_classes={num_classes}; they must match.")
    if family == "unet":
        if not isinstance(depth, int) or not 1 <= depth <= 6:
            raise ValueError(f"depth must be an integer in 1..6, received {depth!r}.")
        encoder = _classic_encoder(image_size, filters, depth)
        skips = [f"P{level}" for level in range(depth - 1, -1, -1)]
        bottom, stride = f"P{depth}", 2**depth
        decoder_filters = decoder_filters or [filters * 2**level for level in range(depth - 1, -1, -1)]
        final_up = False
    else:
        backbone = build_backbone(family=family, size=size, alpha=alpha, image_size=image_size, weights=weights)
        encoder = _encoder_from_backbone(backbone)
        skips, bottom, stride = ["P4", "P3", "P2", "P1"], "P5", 32
        decoder_filters = decoder_filters or [128, 64, 48, 32, 16]
        final_up = True
    needed = len(skips) + (1 if final_up else 0)
    if len(decoder_filters) != needed:
        raise ValueError(f"decoder_filters needs {needed} values (deepest first), received {list(decoder_filters)}.")
    inputs = keras.Input(encoder.input_shape[1:], name="images")
    levels = encoder(inputs)
    x = levels[bottom]

    def up(x, width, name):
        if upsample == "transpose":
            return keras.layers.Conv2DTranspose(width, 2, strides=2, name=f"{name}_transpose")(x)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
        return keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv")(x)

    for i, (skip, width) in enumerate(zip(skips, decoder_filters)):
        x = up(x, width, f"up{i}")
        x = keras.layers.Concatenate(name=f"up{i}_concat")([x, levels[skip]])
        x = conv_bn_relu(x, width, 3, name=f"up{i}_a")
        x = conv_bn_relu(x, width, 3, name=f"up{i}_b")
    if final_up:  # the backbone's finest skip is at stride 2: one more x2 to full resolution
        x = up(x, decoder_filters[-1], "up_full")
        x = conv_bn_relu(x, decoder_filters[-1], 3, name="up_full_a")
    x = keras.layers.Conv2D(num_classes, 1, name="logits")(x)
    x = keras.layers.Softmax(name="probabilities", dtype="float32")(x)
    settings = {
        "stride": stride,
        "tile": int(tile),
        "scale_to": scale_to,
        "border": "constant" if scale_to else "reflect",
        "family": family,
    }
    outputs = Metadata(task="segment", class_names=class_names, settings=settings)(x)
    return keras.Model(inputs, outputs, name="unet")
