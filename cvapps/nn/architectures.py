"""Classic ConvNet architectures, built from the blocks they introduced, as backbone families.

Each family is a function from a preprocessed image tensor to its feature pyramid, and has its
original classification head. ``Backbone(family="vgg16")`` wraps the pyramid so every app accepts
it; :func:`build_architecture` adds the original head, which is how the parameter counts below are
checked (``tests/nn/test_architectures.py`` builds each one and compares with Keras):

    family     input        parameters   published figure and where it comes from
    lenet5     32x32x1          61,706   "about 60,000" (LeCun et al. 1998, sec. II.B). Ours: full C3
                                          connections and a softmax output layer in place of the paper's
                                          C3 connection table and RBF units, the common modern variant.
    alexnet    227x227x3    60,965,224   "60 million" (Krizhevsky et al. 2012, sec. 4). Ours is the
                                          two-GPU network: conv2, conv4, conv5 grouped in 2, local
                                          response normalisation after conv1 and conv2 (Caffe's
                                          bvlc_alexnet has the same 60,965,224).
    vgg16      224x224x3   138,357,544   "138 million" (Simonyan & Zisserman 2015, table 2);
                                          = keras.applications.VGG16.
    resnet50   224x224x3    25,636,712   "25.6 million" (He et al. 2016; Keras documentation);
                                          = keras.applications.ResNet50.
    googlenet  224x224x3     6,998,552   about 6.8 million (Szegedy et al. 2015, table 1: the params
                                          column sums to 6,797.7K, weights only, rounded per layer; ours
                                          adds the biases, no auxiliary classifiers).
    mobilenet  224x224x3     4,253,864   "4.2 million" (Howard et al. 2017, table 8);
                                          = keras.applications.MobileNet.
    airbench   32x32x3       1,975,096   Jordan 2024, airbench94 (a fast CIFAR-10 net, not a classic:
                                          the VGG-style net that reaches 94% on CIFAR-10 in 10 epochs).

A 3-channel LeNet-5 has (5*5*3 + 1)*6 = 456 parameters in C1 instead of 156; as a backbone it
reads the luminance of the RGB input, so it is the one-channel network of the paper.

Pyramid levels are the last feature map at each stride (KerasHub's convention): P2 at 1/4 of the
input, P3 1/8, P4 1/16, P5 1/32. LeNet-5 is too shallow for P3-P5; it has P1 (C3, stride 2) and P2
(S4, stride 4); airbench, built for 32x32 photos, has P1, P2, P3. LeNet-5, AlexNet and airbench use "valid" padding, so their maps are not exact fractions of
the input (AlexNet at 227: 55, 27, 13, 6): detection and U-Net segmentation, which align levels,
need one of the other four.

    >>> model = build_architecture("lenet5")
    >>> model.count_params()
    61706
    >>> [tuple(model.get_layer(n).output.shape[1:]) for n in ("c1", "s2", "c3", "s4")]
    [(28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16)]

Only Keras layers and ``keras.ops`` are used, so every family builds on TensorFlow and on JAX.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from cvapps.nn.families import ARCHITECTURES, EXACT_STRIDES  # noqa: F401  (re-exported)
from cvapps.nn.layers import GELU, GroupedConv2D, LocalResponseNormalization

# The input each network was designed for (height, width, channels).
NATIVE_INPUT = {
    "lenet5": (32, 32, 1),
    "alexnet": (227, 227, 3),
    "vgg16": (224, 224, 3),
    "resnet50": (224, 224, 3),
    "googlenet": (224, 224, 3),
    "mobilenet": (224, 224, 3),
    "airbench": (32, 32, 3),
}

# Parameters with the original 1000-class head (10 classes for LeNet-5 and airbench), as built here.
PARAMETERS = {
    "lenet5": 61_706,
    "alexnet": 60_965_224,
    "vgg16": 138_357_544,
    "resnet50": 25_636_712,
    "googlenet": 6_998_552,
    "mobilenet": 4_253_864,
    "airbench": 1_975_096,
}

# The smallest square input each pyramid builds from (every map at least 1x1).
MIN_INPUT = {"lenet5": 32, "alexnet": 67, "vgg16": 32, "resnet50": 32, "googlenet": 32, "mobilenet": 32, "airbench": 32}


# A layer whose output is the last feature map at stride 2 (U-Net's shallowest skip).
STRIDE2_LAYER = {
    "vgg16": "block2_conv2",
    "resnet50": "conv1_relu",
    "googlenet": "conv1_relu",
    "mobilenet": "conv_pw_1_relu",
}


# --- blocks ------------------------------------------------------------------------------------


def conv(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int | tuple[int, int],
    strides: int | tuple[int, int] = 1,
    padding: str = "same",
    groups: int = 1,
    activation: str | None = "relu",
    name: str | None = None,
) -> keras.KerasTensor:
    """Convolution with bias and an activation, the pre-batch-norm way (LeNet to GoogLeNet).

    ``groups`` splits input and output channels into that many independent convolutions
    (AlexNet's two GPUs; ResNeXt's cardinality): parameters f*f*(c_in/groups)*c_out + c_out.
    """
    layer = GroupedConv2D if groups > 1 else keras.layers.Conv2D  # GroupedConv2D: exportable to ONNX
    return layer(
        filters, kernel_size, strides=strides, padding=padding, groups=groups, activation=activation, name=name
    )(x)


def resnet_block(
    x: keras.KerasTensor, filters: int, strides: int = 1, projection: bool = False, name: str | None = None
) -> keras.KerasTensor:
    """He et al.'s bottleneck block: 1x1 reduce to ``filters``, 3x3, 1x1 expand to 4 * ``filters``.

    The *identity block* adds its input unchanged; the *convolutional block* (``projection=True``)
    adds a strided 1x1 convolution of it, for when the stride or width changes. Laid out as
    keras.applications.ResNet50 (biases on the convolutions, stride on the first 1x1).
    """
    bn = {"axis": -1, "epsilon": 1.001e-5}
    if projection:
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=strides, name=f"{name}_0_conv")(x)
        shortcut = keras.layers.BatchNormalization(**bn, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    y = keras.layers.Conv2D(filters, 1, strides=strides, name=f"{name}_1_conv")(x)
    y = keras.layers.BatchNormalization(**bn, name=f"{name}_1_bn")(y)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(y)
    y = keras.layers.BatchNormalization(**bn, name=f"{name}_2_bn")(y)
    y = keras.layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = keras.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(y)
    y = keras.layers.BatchNormalization(**bn, name=f"{name}_3_bn")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def inception_module(
    x: keras.KerasTensor,
    branch1: int,
    reduce3: int,
    branch3: int,
    reduce5: int,
    branch5: int,
    pool_projection: int,
    name: str,
) -> keras.KerasTensor:
    """Szegedy et al.'s module: 1x1, 1x1->3x3, 1x1->5x5 and 3x3 max pool->1x1, concatenated.

    The 1x1 reductions are the point: on a 28x28x192 input, a direct 5x5 convolution to 32 channels
    takes 28*28*5*5*192*32 = 120,422,400 multiplies; reducing to 16 channels first takes
    28*28*192*16 + 28*28*5*5*16*32 = 2,408,448 + 10,035,200 = 12,443,648 (module 3a).
    """
    a = conv(x, branch1, 1, name=f"{name}_1x1")
    b = conv(conv(x, reduce3, 1, name=f"{name}_3x3_reduce"), branch3, 3, name=f"{name}_3x3")
    c = conv(conv(x, reduce5, 1, name=f"{name}_5x5_reduce"), branch5, 5, name=f"{name}_5x5")
    d = keras.layers.MaxPooling2D(3, 1, padding="same", name=f"{name}_pool")(x)
    d = conv(d, pool_projection, 1, name=f"{name}_pool_proj")
    return keras.layers.Concatenate(name=f"{name}_output")([a, b, c, d])


def depthwise_separable_block(
    x: keras.KerasTensor, filters: int, strides: int = 1, name: str | int | None = None
) -> keras.KerasTensor:
    """Howard et al.'s block: 3x3 depthwise (one filter per channel), then 1x1 pointwise, each
    followed by batch norm and ReLU6. Multiplies: h*w*c_in*9 + h*w*c_in*c_out, against
    h*w*9*c_in*c_out for a full 3x3 convolution (8 to 9 times fewer for c_out >= 64)."""
    x = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"conv_dw_{name}")(x)
    x = keras.layers.BatchNormalization(name=f"conv_dw_{name}_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"conv_dw_{name}_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"conv_pw_{name}")(x)
    x = keras.layers.BatchNormalization(name=f"conv_pw_{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"conv_pw_{name}_relu")(x)


# --- pyramids ----------------------------------------------------------------------------------


def _lenet5(x):
    # LeCun et al. 1998: C1 6@28x28 (5x5 valid), S2 2x2 average, C3 16@10x10, S4 2x2 average; tanh.
    x = conv(x, 6, 5, padding="valid", activation="tanh", name="c1")
    x = keras.layers.AveragePooling2D(2, name="s2")(x)
    c3 = conv(x, 16, 5, padding="valid", activation="tanh", name="c3")
    s4 = keras.layers.AveragePooling2D(2, name="s4")(c3)
    return {"P1": c3, "P2": s4}


def _alexnet(x):
    # Krizhevsky et al. 2012 (227x227 input): conv1 96@11x11/4 -> 55, overlapping 3x3/2 max pools.
    x = conv(x, 96, 11, strides=4, padding="valid", name="conv1")
    p2 = LocalResponseNormalization(name="norm1")(x)
    x = keras.layers.MaxPooling2D(3, 2, name="pool1")(p2)
    x = conv(x, 256, 5, groups=2, name="conv2")
    p3 = LocalResponseNormalization(name="norm2")(x)
    x = keras.layers.MaxPooling2D(3, 2, name="pool2")(p3)
    x = conv(x, 384, 3, name="conv3")
    x = conv(x, 384, 3, groups=2, name="conv4")
    p4 = conv(x, 256, 3, groups=2, name="conv5")
    p5 = keras.layers.MaxPooling2D(3, 2, name="pool5")(p4)
    return {"P2": p2, "P3": p3, "P4": p4, "P5": p5}


def _vgg16(x):
    # Simonyan & Zisserman 2015, configuration D: 3x3 "same" convolutions, 2x2 max pools.
    pyramid = {}
    for block, (filters, repeats) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, repeats + 1):
            x = conv(x, filters, 3, name=f"block{block}_conv{i}")
        if block >= 3:  # the last map at strides 4, 8, 16
            pyramid[f"P{block - 1}"] = x
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    pyramid["P5"] = x
    return pyramid


def _resnet50(x):
    # He et al. 2016, as keras.applications.ResNet50: 7x7/2 conv, 3x3/2 max pool, 3-4-6-3 blocks.
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1.001e-5, name="conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, 2, name="pool1_pool")(x)
    pyramid = {}
    for stage, (filters, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=2):
        for i in range(1, blocks + 1):
            stride = 2 if i == 1 and stage > 2 else 1
            x = resnet_block(x, filters, stride, projection=i == 1, name=f"conv{stage}_block{i}")
        pyramid[f"P{stage}"] = x
    return pyramid


# GoogLeNet's modules (Szegedy et al. 2015, table 1): #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
_INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _googlenet(x):
    x = conv(x, 64, 7, strides=2, name="conv1")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = LocalResponseNormalization(name="norm1")(x)
    x = conv(x, 64, 1, name="conv2_reduce")
    x = conv(x, 192, 3, name="conv2")
    p2 = LocalResponseNormalization(name="norm2")(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool2")(p2)
    pyramid = {"P2": p2}
    for stage, modules, level in (("3", "ab", "P3"), ("4", "abcde", "P4"), ("5", "ab", "P5")):
        for module in modules:
            key = stage + module
            x = inception_module(x, *_INCEPTION[key], name=f"inception_{key}")
        pyramid[level] = x
        if stage != "5":
            x = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"pool{stage}")(x)
    return pyramid


def _mobilenet(x):
    # Howard et al. 2017, width multiplier 1: a 3x3/2 conv, then 13 depthwise-separable blocks.
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="conv1")(x)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.ReLU(6.0, name="conv1_relu")(x)
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    ends = {3: "P2", 5: "P3", 11: "P4", 13: "P5"}  # the last block at each stride
    pyramid = {}
    for block, (filters, strides) in enumerate(plan, start=1):
        x = depthwise_separable_block(x, filters, strides, name=block)
        if block in ends:
            pyramid[ends[block]] = x
    return pyramid


def _airbench(x):
    # Jordan 2024 (airbench94), a VGG-like net for 32x32 photos: a 2x2 conv (24 filters, valid: 31x31),
    # then three groups of conv3x3 -> max pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU, widths 64-256-256.
    x = GELU(name="whiten_act")(conv(x, 24, 2, padding="valid", activation=None, name="whiten"))
    pyramid = {}
    for group, (width, level) in enumerate(((64, "P1"), (256, "P2"), (256, "P3")), start=1):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"group{group}_conv1")(x)
        x = keras.layers.MaxPooling2D(2, name=f"group{group}_pool")(x)
        x = keras.layers.BatchNormalization(momentum=0.6, epsilon=1e-5, name=f"group{group}_bn1")(x)
        x = GELU(name=f"group{group}_act1")(x)
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"group{group}_conv2")(x)
        x = keras.layers.BatchNormalization(momentum=0.6, epsilon=1e-5, name=f"group{group}_bn2")(x)
        x = GELU(name=f"group{group}_act2")(x)
        pyramid[level] = x
    return pyramid


_PYRAMIDS = {
    "lenet5": _lenet5,
    "alexnet": _alexnet,
    "vgg16": _vgg16,
    "resnet50": _resnet50,
    "googlenet": _googlenet,
    "mobilenet": _mobilenet,
    "airbench": _airbench,
}


def classic_pyramid(family: str, x: keras.KerasTensor) -> dict[str, keras.KerasTensor]:
    """The feature pyramid of ``family`` on a preprocessed image tensor ``x`` (batch, H, W, C).

    Returns a dict level -> tensor (P2..P5; LeNet-5: P1, P2). Raises ValueError for an unknown family.
    """
    if family not in _PYRAMIDS:
        raise ValueError(f"family must be one of {', '.join(ARCHITECTURES)}; received {family!r}.")
    return _PYRAMIDS[family](x)


# --- original heads ----------------------------------------------------------------------------


def classic_head(family: str, pyramid: Mapping[str, keras.KerasTensor], num_classes: int) -> keras.KerasTensor:
    """The family's original classifier on its deepest level; returns (batch, num_classes) logits.

    LeNet-5: C5 120 (a 5x5 convolution on 5x5 maps, so a dense layer on their 400 values), F6 84,
    output. AlexNet and VGG-16: two dense layers of 4096 with dropout 0.5. ResNet-50, GoogLeNet
    (dropout 0.4) and MobileNet: global average pooling and one dense layer. The flattening heads
    fix the input size the model was built at.
    """
    x = list(pyramid.values())[-1]  # the deepest level
    if family == "airbench":
        # A max pool over the last 3x3 maps, then a linear layer whose logits are scaled by 1/9.
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
        x = keras.layers.Dense(num_classes, use_bias=False, name="linear")(x)
        return keras.layers.Rescaling(1 / 9, name="logits")(x)
    if family == "lenet5":
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(120, activation="tanh", name="c5")(x)
        x = keras.layers.Dense(84, activation="tanh", name="f6")(x)
    elif family in ("alexnet", "vgg16"):
        x = keras.layers.Flatten(name="flatten")(x)
        for i in (6, 7):
            x = keras.layers.Dense(4096, activation="relu", name=f"fc{i}")(x)
            x = keras.layers.Dropout(0.5, name=f"drop{i}")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        rate = {"googlenet": 0.4, "mobilenet": 1e-3}.get(family)
        if rate:
            x = keras.layers.Dropout(rate, name="dropout")(x)
    return keras.layers.Dense(num_classes, name="logits")(x)


def build_architecture(
    name: str, include_top: bool = True, num_classes: int | None = None, input_shape: Sequence[int | None] | None = None
) -> keras.Model:
    """A classic network as a plain functional model, at its native input by default.

    Args:
        name: one of ``ARCHITECTURES``.
        include_top: add the original classifier (softmax over ``num_classes``).
        num_classes: default 10 for LeNet-5 and airbench, 1000 for the ImageNet networks.
        input_shape: (height, width, channels); default ``NATIVE_INPUT[name]``.

    Returns:
        ``keras.Model`` taking raw input values (no preprocessing layer) and returning class
        probabilities, or the pyramid dict when ``include_top=False``; its ``pyramid_outputs``
        attribute holds the levels either way.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; received {name!r}.")
    shape = tuple(input_shape or NATIVE_INPUT[name])
    check_input_size(name, shape[0], shape[1])
    inputs = keras.Input(shape, name="images")
    pyramid = classic_pyramid(name, inputs)
    if include_top:
        num_classes = num_classes or (10 if name in ("lenet5", "airbench") else 1000)  # MNIST, CIFAR-10
        outputs = keras.layers.Softmax(name="probabilities")(classic_head(name, pyramid, num_classes))
    model = keras.Model(inputs, outputs if include_top else pyramid, name=name)
    model.pyramid_outputs = pyramid  # as on a Backbone: explain labels the levels
    return model


def check_input_size(family: str, height: int | None, width: int | None) -> None:
    """Raise ValueError when an input is too small for every level of ``family`` to exist."""
    smallest = MIN_INPUT[family]
    for side in (height, width):
        if side is not None and side < smallest:
            raise ValueError(
                f"{family} needs inputs of at least {smallest}x{smallest} pixels (every pyramid "
                f"level at least 1x1); received {height}x{width}. Use a larger --image-size."
            )
