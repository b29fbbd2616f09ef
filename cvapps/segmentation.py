"""Semantic segmentation: a U-Net (Ronneberger et al. 2015) on the shared backbone.

Python:

    >>> from cvapps import segmentation
    >>> [result] = segmentation.segment("people.jpg", model="person_seg")     # doctest: +SKIP
    >>> result.labels.shape, result.probabilities.shape                       # doctest: +SKIP
    ((480, 640), (480, 640, 2))
    >>> blurred = segmentation.blur_background(image, result)                 # doctest: +SKIP

CLI:

    cvapps segment photo.jpg --model person_seg --overlay --output out.png
    cvapps train segment ../shared/data/membrane --output membrane.keras --family unet --image-size 256
    cvapps eval segment ../shared/data/membrane --model membrane --holdout 0.2 --json r.json
    cvapps webcam segment --model person_seg --blur

Model: the encoder is the shared backbone (its P2..P5 pyramid plus the stride-2 stem as skips)
or, with ``family="unet"``, the classic from-scratch U-Net encoder (two 3x3 convolutions per
level, max pooling, filters doubling). The decoder upsamples by 2 (transposed convolution, or
bilinear resize + 3x3 convolution), concatenates the skip of that resolution and applies two
3x3 conv-BN-ReLU; a 1x1 convolution and a softmax give per-pixel class probabilities
(class 0 is the background; a binary model has 2 classes). Convolutions are "same" padded
(the paper's are "valid"), so the output is the input's size.

Any input size: the model is built for any H, W; :func:`predict_probabilities` pads the image to
a multiple of the network's stride (``settings["stride"]``) and crops the output back. Images
bigger than the training tile (``settings["tile"]``) are predicted by overlap-tile (the paper's
strategy): overlapping tiles, blended with weights that fall off towards tile borders. Models
trained on whole scenes (``settings["scale_to"]``) first scale each image so its longer side
is the training tile and scale the probabilities back to the original resolution.

Losses (:class:`SegmentationLoss`): cross-entropy, soft Dice, focal, and weighted sums of them,
with the paper's border-weight map as an option (:func:`cvapps.segmentation_data.border_weights`).
Metrics (:func:`segmentation_metrics`): IoU and Dice per class from the data set's confusion matrix,
their means ``miou`` and ``dice``, and pixel accuracy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvapps.runtime import open_model

DEFAULT_MODEL = "person_seg"
FAMILIES = (
    "unet",
    "compact",
    "mobilenetv2",
    "efficientnet_lite0",
    "lenet5",
    "alexnet",
    "vgg16",
    "resnet50",
    "googlenet",
    "mobilenet",
    "airbench",
)
LOSS_TERMS = ("ce", "dice", "focal")

# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segmentation:
    """Per-pixel classes of one image, at the image's own resolution.

    Attributes:
        probabilities: (H, W, C) float32 class probabilities (they sum to 1 over C).
        labels: (H, W) uint8 most probable class per pixel (argmax of ``probabilities``).
        class_names: C names; class 0 is the background.
        source: where the image came from (path or "array").

    >>> import numpy as np
    >>> p = np.zeros((2, 3, 2), np.float32); p[..., 0] = 1; p[0, 0] = (0.2, 0.8)
    >>> s = Segmentation.from_probabilities(p, ("background", "person"))
    >>> s.labels.tolist(), s.fractions()
    ([[1, 0, 0], [0, 0, 0]], {'background': 0.833333, 'person': 0.166667})
    """

    probabilities: np.ndarray
    labels: np.ndarray
    class_names: tuple
    source: str = "array"

    def __post_init__(self):
        p, labels = self.probabilities, self.labels
        if not isinstance(p, np.ndarray) or p.ndim != 3:
            raise ValueError(f"probabilities must be an (H, W, C) array, received {getattr(p, 'shape', type(p))}.")
        if not isinstance(labels, np.ndarray) or labels.shape != p.shape[:2]:
            raise ValueError(
                f"labels must be an (H, W) array matching probabilities {p.shape[:2]}, "
                f"received {getattr(labels, 'shape', type(labels))}."
            )
        if len(self.class_names) != p.shape[2]:
            raise ValueError(f"{len(self.class_names)} class names for {p.shape[2]} probability channels.")

    @classmethod
    def from_probabilities(cls, probabilities, class_names, source="array"):
        probabilities = np.asarray(probabilities, np.float32)
        return cls(probabilities, probabilities.argmax(-1).astype(np.uint8), tuple(class_names), source)

    @property
    def foreground(self) -> np.ndarray:
        """(H, W) float32 probability of any non-background class: 1 - p(class 0)."""
        return 1.0 - self.probabilities[..., 0]

    def mask(self, classes=None) -> np.ndarray:
        """(H, W) bool: pixels labelled with one of ``classes`` (names or ids; default every
        non-background class)."""
        ids = _class_ids(classes, self.class_names)
        return np.isin(self.labels, ids)

    def fractions(self) -> dict:
        """{class name: fraction of the image's pixels}, rounded to 6 digits."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.class_names))
        return {n: round(float(c) / self.labels.size, 6) for n, c in zip(self.class_names, counts)}

    def to_dict(self) -> dict:
        return {
            "height": int(self.labels.shape[0]),
            "width": int(self.labels.shape[1]),
            "class_names": list(self.class_names),
            "fractions": self.fractions(),
        }


def _class_ids(classes, class_names):
    if classes is None:
        return list(range(1, len(class_names)))
    ids = []
    for c in [classes] if isinstance(classes, (str, int)) else classes:
        if isinstance(c, str):
            if c not in class_names:
                raise ValueError(f"unknown class {c!r}; the model's classes are {list(class_names)}.")
            ids.append(class_names.index(c))
        elif 0 <= int(c) < len(class_names):
            ids.append(int(c))
        else:
            raise ValueError(f"class id {c} is outside 0..{len(class_names) - 1}.")
    return ids


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
    num_classes=2,
    class_names=None,
    *,
    family="unet",
    size="s",
    alpha=0.35,
    weights=None,
    filters=32,
    depth=4,
    decoder_filters=None,
    upsample="transpose",
    image_size=None,
    tile=256,
    scale_to=None,
):
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


# --- losses and metrics ------------------------------------------------------------------------


def parse_loss(text):
    """``"ce+dice"`` -> {"ce": 1.0, "dice": 1.0}; terms may carry weights: ``"ce+0.5*dice"``.

    >>> parse_loss("focal+0.5*dice")
    {'focal': 1.0, 'dice': 0.5}
    """
    terms = {}
    for part in str(text).replace(" ", "").split("+"):
        weight, _, name = part.rpartition("*")
        if name not in LOSS_TERMS:
            raise ValueError(
                f"unknown loss term {name!r} in {text!r}; use ce, dice, focal joined by +, e.g. 'ce+dice'."
            )
        try:
            terms[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"bad weight {weight!r} in loss {text!r}; write e.g. '0.5*dice'.") from None
    return terms


def __getattr__(name):
    """``SegmentationLoss`` and ``MeanIoU`` live in :mod:`cvapps.segmentation_losses` (Keras classes, so
    importing this module stays free of TensorFlow); reachable here as before."""
    if name in ("SegmentationLoss", "MeanIoU"):
        from cvapps import segmentation_losses

        return getattr(segmentation_losses, name)
    raise AttributeError(f"module 'cvapps.segmentation' has no attribute {name!r}")


def confusion_matrix(truth, predicted, num_classes):
    """(C, C) int64 counts, rows the true class, columns the predicted one.

    >>> confusion_matrix(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]), 2).tolist()
    [[1, 0], [1, 2]]
    """
    index = np.asarray(truth, np.int64).ravel() * num_classes + np.asarray(predicted, np.int64).ravel()
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(confusion, class_names):
    """IoU and Dice per class and their means, and pixel accuracy, from a (C, C) confusion.

    IoU_c = TP / (TP + FP + FN); Dice_c = 2 TP / (2 TP + FP + FN); ``miou``/``dice`` average the
    classes present in the truth or the prediction; pixel accuracy = trace / total.

    >>> m = segmentation_metrics(np.array([[1, 0], [1, 2]]), ("bg", "fg"))
    >>> m["per_class"]["fg"]["iou"], m["per_class"]["bg"]["iou"], m["pixel_accuracy"]   # 2/3, 1/2, 3/4
    (0.666667, 0.5, 0.75)
    >>> m["miou"], m["dice"]    # (2/3 + 1/2) / 2; (4/5 + 2/3) / 2
    (0.583333, 0.733333)
    """
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    fp, fn = confusion.sum(0) - tp, confusion.sum(1) - tp
    union = tp + fp + fn
    present = union > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=present)
    dice = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=present)
    total = confusion.sum()
    return {
        "miou": round(float(iou[present].mean()) if present.any() else 0.0, 6),
        "dice": round(float(dice[present].mean()) if present.any() else 0.0, 6),
        "pixel_accuracy": round(float(tp.sum() / total) if total else 0.0, 6),
        "per_class": {
            name: {"iou": round(float(i), 6), "dice": round(float(d), 6), "pixels": int(s)}
            for name, i, d, s in zip(class_names, iou, dice, confusion.sum(1))
        },
        "confusion": confusion.astype(np.int64).tolist(),
    }


# --- training ----------------------------------------------------------------------------------


def train_segmenter(
    data,
    output,
    *,
    validation=None,
    family="unet",
    size="s",
    alpha=0.35,
    weights=None,
    filters=32,
    depth=4,
    decoder_filters=None,
    upsample="transpose",
    image_size=256,
    fit=False,
    epochs=20,
    repeats=1,
    batch_size=8,
    learning_rate=1e-3,
    weight_decay=1e-4,
    loss="ce+dice",
    border_weight=0.0,
    augment=True,
    elastic=0.0,
    rotate=15.0,
    scale=(0.75, 1.25),
    vflip=False,
    max_side=None,
    checkpoint_dir=None,
    seed=0,
    verbose=1,
):
    """Train a U-Net on a :class:`cvapps.segmentation_data.SegmentationData`; save it to ``output``.

    Args:
        data: training pairs (a :class:`SegmentationData`, or a folder :func:`load_segmentation` reads).
        validation: held-out pairs scored each epoch (loss, ``miou``), or None.
        family ... upsample: see :func:`build_unet`.
        image_size: the training tile side (a multiple of the stride).
        fit: whole-scene data (photos): each image is scaled so its longer side is the tile
            before the random zoom, and inference does the same (``settings["scale_to"]``).
            False: native resolution crops, overlap-tile inference on larger images.
        epochs, repeats: epochs of ``repeats`` passes over the data (random crops each time).
        loss: terms joined by + (``ce``, ``dice``, ``focal``), see :class:`SegmentationLoss`.
        border_weight: w0 of the paper's border-weight map (0 = off).
        augment, elastic, rotate, scale, vflip: augmentation (flips, rotations up to ``rotate``
            degrees, zoom in ``scale``, colour jitter, elastic deformation with probability
            ``elastic``), identical for image and mask.
        max_side: shrink cached images larger than this once (speed).
        checkpoint_dir: resumable state; rerunning the same command resumes (default runs/<stem>).

    Returns:
        :class:`cvapps.nn.training.TrainResult`.
    """
    from cvapps._keras import import_keras
    from cvapps.nn.training import TrainResult, fit_resumable, run_folder
    from cvapps.segmentation_losses import MeanIoU, SegmentationLoss

    keras = import_keras()
    from cvapps.models import keras_output_path, save_model
    from cvapps.nn.layers import OneCycle
    from cvapps.segmentation_data import SegmentationBatches, load_segmentation

    started = time.time()
    output = keras_output_path(output)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, received {epochs}.")
    if isinstance(data, (str, Path)):
        data = load_segmentation(data)
    if len(data) == 0:
        raise ValueError("no readable training pairs; see the loader's problems list.")
    stride = 2**depth if family == "unet" else 32
    if image_size % stride:
        raise ValueError(f"image_size {image_size} must be a multiple of the network's stride {stride}.")
    terms = parse_loss(loss)
    keras.utils.set_random_seed(seed)
    num_classes = len(data.class_names)
    model = build_unet(
        num_classes,
        data.class_names,
        family=family,
        size=size,
        alpha=alpha,
        weights=weights,
        filters=filters,
        depth=depth,
        decoder_filters=decoder_filters,
        upsample=upsample,
        tile=image_size,
        scale_to=image_size if fit else None,
    )
    border = "constant" if fit else "reflect"
    train_batches = SegmentationBatches(
        data,
        image_size,
        batch_size,
        augment=augment,
        repeats=repeats,
        border_weight=border_weight,
        fit=fit,
        seed=seed,
        max_side=max_side,
        elastic=elastic,
        rotate=rotate,
        scale=scale,
        vflip=vflip,
        border=border,
    )
    val_batches = None
    if validation is not None and len(validation):
        val_batches = SegmentationBatches(
            validation, image_size, batch_size, border_weight=border_weight, fit=fit, max_side=max_side
        )
    run_dir = run_folder(checkpoint_dir, output)
    steps = epochs * len(train_batches)
    optimizer = keras.optimizers.AdamW(OneCycle(learning_rate, steps, warmup=0.1), weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(optimizer=optimizer, loss=SegmentationLoss(terms, num_classes), metrics=[MeanIoU(num_classes)])
    done = fit_resumable(model, train_batches, run_dir, epochs=epochs, validation=val_batches, verbose=verbose)
    save_model(model, output)
    return TrainResult(
        output,
        {"main": done.history},
        time.time() - started,
        list(data.problems) + train_batches.errors,
        ("main",) if done.reused else (),
    )


# --- inference ---------------------------------------------------------------------------------


def pad_to_multiple(image, stride, mode="reflect"):
    """Pad (H, W, ...) at the bottom and right to multiples of ``stride``; returns (padded, (H, W)).

    >>> padded, size = pad_to_multiple(np.zeros((33, 64, 3)), 32)
    >>> padded.shape, size
    ((64, 64, 3), (33, 64))
    """
    height, width = image.shape[:2]
    pad_h, pad_w = (-height) % stride, (-width) % stride
    if not pad_h and not pad_w:
        return image, (height, width)
    pads = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    if mode == "reflect" and (pad_h >= height or pad_w >= width):
        mode = "symmetric"  # reflect needs the pad to be shorter than the side
        if pad_h > height or pad_w > width:
            mode = "edge"
    return (np.pad(image, pads, mode=mode) if mode != "constant" else np.pad(image, pads)), (height, width)


def _tile_starts(length, tile, step):
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _tile_weight(tile):
    """(T, T) blending weight: grows linearly from the tile border to its centre (never 0)."""
    ramp = np.minimum(np.arange(tile) + 1, np.arange(tile)[::-1] + 1).astype(np.float32)
    return np.minimum(ramp[:, None], ramp[None, :])


def predict_probabilities(model, image, tile="auto", overlap=0.25, batch_size=8):
    """(H, W, 3) RGB image -> (H, W, C) float32 class probabilities at the image's resolution.

    Scales the image first when the model says so (``settings["scale_to"]``), pads it to a
    multiple of ``settings["stride"]`` (mirror or zero padding, ``settings["border"]``) and
    crops the output back. Larger than ``tile`` (``"auto"``: the training tile; None: never)
    in either side -> overlap-tile: tiles of ``tile`` pixels overlapping by ``overlap``, blended
    by :func:`_tile_weight`.

    Args:
        model: an opened model (:func:`cvapps.runtime.open_model`), a name, a path or a keras.Model.
    """
    import cv2

    model = open_model(model, task="segment")
    settings = model.info.settings
    stride, border = int(settings.get("stride", 32)), settings.get("border", "reflect")
    image = _check_image(image)
    height, width = image.shape[:2]
    scale_to = settings.get("scale_to")
    work = image
    if scale_to and max(height, width) != scale_to:
        zoom = scale_to / max(height, width)
        new = (max(1, round(width * zoom)), max(1, round(height * zoom)))
        work = cv2.resize(image, new, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    if tile == "auto":
        tile = settings.get("tile")
    if tile is not None:
        tile = max(stride, int(tile) // stride * stride)
    mode = "reflect" if border == "reflect" else "constant"
    if tile and (work.shape[0] > tile or work.shape[1] > tile):
        probabilities = _overlap_tile(model, work, tile, overlap, mode, batch_size)
    else:
        padded, (h, w) = pad_to_multiple(work.astype(np.float32), stride, mode)
        probabilities = model.predict(padded[None])[0, :h, :w]
    probabilities = np.asarray(probabilities, np.float32)
    if probabilities.shape[:2] != (height, width):
        probabilities = cv2.resize(probabilities, (width, height), interpolation=cv2.INTER_LINEAR)
        if probabilities.ndim == 2:  # cv2 drops a single channel
            probabilities = probabilities[..., None]
        probabilities /= probabilities.sum(-1, keepdims=True)
    return probabilities


def _overlap_tile(model, image, tile, overlap, mode, batch_size):
    height, width = image.shape[:2]
    # Pad to at least one tile each way (mirror context at the borders, as in the paper).
    pad_h, pad_w = max(0, tile - height), max(0, tile - width)
    work = np.pad(
        image.astype(np.float32),
        [(0, pad_h), (0, pad_w), (0, 0)],
        mode="symmetric" if mode == "reflect" else "constant",
    )
    step = max(1, int(tile * (1 - overlap)))
    corners = [(y, x) for y in _tile_starts(work.shape[0], tile, step) for x in _tile_starts(work.shape[1], tile, step)]
    weight = _tile_weight(tile)
    total = None
    norm = np.zeros(work.shape[:2], np.float32)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i : i + batch_size]
        batch = np.stack([work[y : y + tile, x : x + tile] for y, x in chunk])
        out = np.asarray(model.predict(batch), np.float32)
        if total is None:
            total = np.zeros((*work.shape[:2], out.shape[-1]), np.float32)
        for (y, x), p in zip(chunk, out):
            total[y : y + tile, x : x + tile] += p * weight[..., None]
            norm[y : y + tile, x : x + tile] += weight
    return (total / norm[..., None])[:height, :width]


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image must have shape (H, W, 3) RGB; received shape {image.shape}.")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"an image must be at least 1x1 pixels; received shape {image.shape}.")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def segment(images, model=None, *, tile="auto", runtime="auto"):
    """Segment images: per image the class probabilities and labels at its original resolution.

    Args:
        images: a path, an (H, W, 3) RGB array, an (N, H, W, 3) batch, or a list of paths/arrays
            (any sizes).
        model: shipped name, ``.keras``/``.onnx`` path, ``keras.Model`` or an opened model
            (default ``"person_seg"``). Open it once and pass it in when segmenting many times.
        tile: overlap-tile side for large images (``"auto"``: the training tile; None: whole image).
        runtime: ``"auto"``, ``"onnx"`` or ``"keras"``.

    Returns:
        list of :class:`Segmentation`, one per image, in input order.

    Raises:
        ValueError: an unreadable file (named), an array that is not (H, W, 3), or a model
            that is not a segmentation model.
    """
    from cvapps.core.sources import read_image

    model = open_model(DEFAULT_MODEL if model is None else model, task="segment", runtime=runtime)
    if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    results = []
    for image in images:
        source = str(image) if isinstance(image, (str, Path)) else "array"
        array = read_image(image) if isinstance(image, (str, Path)) else image
        probabilities = predict_probabilities(model, array, tile)
        results.append(Segmentation.from_probabilities(probabilities, model.info.class_names, source))
    return results


# --- drawing ------------------------------------------------------------------------------------


def colour_labels(labels, num_classes=None):
    """(H, W) class indices -> (H, W, 3) uint8 RGB: background black, class k in
    :func:`cvapps.core.annotate.class_colour` (k - 1)."""
    from cvapps.core.annotate import class_colour

    count = int(num_classes or (labels.max() + 1 if labels.size else 1))
    palette = np.array([(0, 0, 0)] + [class_colour(k - 1) for k in range(1, max(count, 1))], np.uint8)
    return palette[np.clip(labels, 0, len(palette) - 1)]


def overlay(image, segmentation, alpha=0.5):
    """``image`` with non-background pixels tinted by their class colour: out = (1 - a) image +
    a colour on those pixels (a = ``alpha``); background untouched.

    >>> p = np.zeros((2, 2, 2), np.float32); p[..., 0] = 1; p[0, 0] = (0, 1)
    >>> out = overlay(np.full((2, 2, 3), 100, np.uint8), Segmentation.from_probabilities(p, ("bg", "fg")), 0.5)
    >>> out[1, 1].tolist(), bool((out[0, 0] != 100).any())
    ([100, 100, 100], True)
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], received {alpha}.")
    image = _check_image(image)
    _check_match(image, segmentation)
    colours = colour_labels(segmentation.labels, len(segmentation.class_names)).astype(np.float32)
    a = (segmentation.labels > 0)[..., None] * float(alpha)
    return np.clip(image * (1 - a) + colours * a, 0, 255).astype(np.uint8)


def cutout(image, segmentation, classes=None):
    """(H, W, 4) uint8 RGBA: the image with alpha = probability of ``classes`` (default every
    non-background class) x 255, so the background is transparent."""
    image = _check_image(image)
    _check_match(image, segmentation)
    ids = _class_ids(classes, segmentation.class_names)
    alpha = segmentation.probabilities[..., ids].sum(-1)
    return np.dstack([image, np.clip(alpha * 255, 0, 255).astype(np.uint8)])


def blur_background(image, segmentation, strength=31, classes=None):
    """Background blur: out = p * image + (1 - p) * gaussian_blur(image), p the per-pixel
    probability of ``classes`` (default every non-background class): a soft matte."""
    import cv2

    image = _check_image(image)
    _check_match(image, segmentation)
    if not isinstance(strength, int) or strength < 1:
        raise ValueError(f"strength must be a positive integer (blur kernel size), received {strength!r}.")
    kernel = strength | 1  # odd
    blurred = cv2.GaussianBlur(image, (kernel, kernel), 0).astype(np.float32)
    ids = _class_ids(classes, segmentation.class_names)
    p = segmentation.probabilities[..., ids].sum(-1)[..., None]
    return np.clip(p * image + (1 - p) * blurred, 0, 255).astype(np.uint8)


def _check_match(image, segmentation):
    if image.shape[:2] != segmentation.labels.shape:
        raise ValueError(
            f"image is {image.shape[:2]} but the segmentation is {segmentation.labels.shape}; "
            "pass the image that was segmented."
        )


def comparison_figure(rows, class_names, height=160):
    """Rows of (image, truth labels, predicted labels) -> one RGB image, a row per sample with
    the image, the truth and the prediction side by side (each scaled to ``height``)."""
    import cv2

    from cvapps.core.annotate import draw_text_lines

    lines = []
    for image, truth, predicted in rows:
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        cells = [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)]
        for labels in (truth, predicted):
            coloured = colour_labels(labels, len(class_names))
            cells.append(cv2.resize(coloured, (width, height), interpolation=cv2.INTER_NEAREST))
        cells = [draw_text_lines(c, [t]) for c, t in zip(cells, ("image", "truth", "prediction"))]
        lines.append(
            np.concatenate([c for cell in cells for c in (cell, np.full((height, 4, 3), 255, np.uint8))][:-1], 1)
        )
    widest = max(line.shape[1] for line in lines)
    lines = [np.pad(line, [(0, 4), (0, widest - line.shape[1]), (0, 0)], constant_values=255) for line in lines]
    return np.concatenate(lines, 0)


# --- evaluation --------------------------------------------------------------------------------


def evaluate_segmenter(model, data, tile="auto", progress=None, samples=4):
    """Score a segmenter on :class:`SegmentationData` at each image's original resolution.

    Args:
        model: name, path, keras.Model or opened model.
        data: its class names must equal the model's (in order).
        samples: how many (image, truth, prediction) rows to keep for the figure.

    Returns:
        (metrics, figure): metrics from :func:`segmentation_metrics` plus ``problems`` (files
        that could not be read); figure an RGB image (see :func:`comparison_figure`) or None.
    """
    from cvapps.core.sources import read_image

    model = open_model(model, task="segment")
    names = tuple(model.info.class_names)
    if tuple(data.class_names) != names:
        raise ValueError(
            f"the data's classes {list(data.class_names)} differ from the model's {list(names)}; "
            "load the data with the same --classes as in training."
        )
    confusion = np.zeros((len(names), len(names)), np.int64)
    rows, problems = [], []
    items = range(len(data))
    for i in progress(items, len(data)) if progress else items:
        try:
            image = read_image(data.paths[i])
        except ValueError as error:
            problems.append(str(error))
            continue
        truth = data.masks[i]
        probabilities = predict_probabilities(model, image, tile)
        predicted = probabilities.argmax(-1)
        confusion += confusion_matrix(truth, predicted, len(names))
        if len(rows) < samples:
            rows.append((image, truth, predicted))
    metrics = segmentation_metrics(confusion, names)
    metrics["problems"] = problems
    return metrics, (comparison_figure(rows, names) if rows else None)
