"""Johnson et al.'s fast transformation network (instance norm, residual blocks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

# --- the fast transformation network (Johnson et al.) ------------------------------------------


def build_transformer(
    width: int = 16,
    residual_blocks: int = 4,
    downsamples: int = 2,
    separable: bool = True,
    settings: dict[str, Any] | None = None,
    name: str = "transformer",
) -> keras.Model:
    """Johnson et al.'s image transformation network, lightened for a CPU.

    Layout (c = ``width``, d = ``downsamples``, stride 2^d):
        3x3 conv c, IN, ReLU                          (full resolution)
        d x [3x3 conv stride 2, channels x2, IN, ReLU]
        ``residual_blocks`` x residual block at c*2^d channels (separable: depthwise 3x3 +
            pointwise 1x1 instead of each 3x3 conv; x + IN(conv(ReLU(IN(conv(x))))))
        d x [nearest 2x upsampling, 3x3 conv (separable) channels /2, IN, ReLU]
        3x3 conv 3 -> sigmoid * 255

    Returns:
        ``keras.Model``: (B, H, W, 3) RGB pixels in [0, 255] (H, W multiples of the stride; any
        size) -> (B, H, W, 3) stylised pixels in [0, 255], ending in a ``Metadata`` layer of
        task ``"style"`` whose settings hold ``stride`` and whatever ``settings`` adds.

    >>> import numpy as np
    >>> net = build_transformer(width=4, residual_blocks=1)
    >>> net.predict_on_batch(np.zeros((1, 12, 20, 3), "float32")).shape
    (1, 12, 20, 3)
    """
    from cvapps._keras import import_keras

    keras = import_keras()
    from cvapps.nn.layers import Metadata
    from cvapps.nn.style_layers import InstanceNormalization

    layers = keras.layers

    def conv(x, filters, strides=1, separable_conv=False, tag=""):
        if separable_conv:
            x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{tag}_dw")(x)
            return layers.Conv2D(filters, 1, use_bias=False, name=f"{tag}_pw")(x)
        return layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{tag}_conv")(x)

    def norm_relu(x, tag):
        x = InstanceNormalization(name=f"{tag}_in")(x)
        return layers.ReLU(name=f"{tag}_relu")(x)

    inputs = keras.Input((None, None, 3), name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    x = norm_relu(conv(x, width, tag="stem"), "stem")
    channels = width
    for i in range(downsamples):
        channels *= 2
        x = norm_relu(conv(x, channels, strides=2, tag=f"down{i}"), f"down{i}")
    for i in range(residual_blocks):
        y = norm_relu(conv(x, channels, separable_conv=separable, tag=f"res{i}_a"), f"res{i}_a")
        y = InstanceNormalization(name=f"res{i}_b_in")(conv(y, channels, separable_conv=separable, tag=f"res{i}_b"))
        x = layers.Add(name=f"res{i}_add")([x, y])
    for i in range(downsamples):
        channels //= 2
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_resize")(x)
        x = norm_relu(conv(x, channels, separable_conv=separable, tag=f"up{i}"), f"up{i}")
    x = layers.Conv2D(3, 3, padding="same", name="output_conv")(x)
    x = layers.Activation("sigmoid", name="output_sigmoid")(x)
    x = layers.Rescaling(255.0, name="to_pixels")(x)
    meta = {"stride": 2**downsamples, "width": width, "residual_blocks": residual_blocks, "separable": separable}
    outputs = Metadata(task="style", settings={**meta, **(settings or {})})(x)
    return keras.Model(inputs, outputs, name=name)
