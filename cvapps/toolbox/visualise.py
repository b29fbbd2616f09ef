"""Pictures of what a model's layers learned: first-layer filters, feature maps, top patches.

Three classic ways to look inside a CNN (see Zeiler & Fergus 2014, "Visualizing and
understanding convolutional networks"):

- :func:`first_layer_filters`: the kernels of the first convolution, drawn as small pictures.
  A trained first layer holds edge, line and colour-blob detectors, the learned counterparts of
  the hand-made kernels in :mod:`cvapps.core.kernels`.
- :func:`feature_maps`: the backbone's feature maps (``P2`` .. ``P5``) for one image, one small
  picture per channel.
- :func:`top_patches`: for chosen units (channels) of a level, the image patches, over a folder,
  that activate each unit most: what a deep unit responds to.

Python:

    >>> from cvapps.toolbox.visualise import first_layer_filters, feature_maps, top_patches
    >>> picture = first_layer_filters("hymenoptera")                        # doctest: +SKIP
    >>> maps = feature_maps("hymenoptera", "ant.jpg", levels=("P2", "P4"))  # doctest: +SKIP
    >>> found = top_patches("hymenoptera", "photos/", level="P4", top=9)    # doctest: +SKIP
    >>> found.image.shape, found.units, found.skipped                       # doctest: +SKIP

CLI: ``cvapps filters MODEL``, ``cvapps features MODEL IMAGE --level P3``,
``cvapps patches MODEL FOLDER --level P4`` (and ``cvapps filter IMAGE --kernel sobel-x``).

Every picture is an (H, W, 3) uint8 RGB array drawn with numpy and OpenCV; Keras only runs the
model, through one compiled ``predict_on_batch`` per batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras
    from numpy.typing import ArrayLike

    from cvapps.core.sources import Source
    from cvapps.toolbox.explain import Geometry

BACKGROUND = 255  # white page
SEPARATOR = 2  # pixels between tiles
PAD_GRAY = 127  # outside-the-image fill of a patch: what zero padding feeds the network after [-1, 1] scaling
ANY_SIZE_SIDE = 224  # input side used for a model that takes any size, when images must share one size
MAX_SIDE = 512  # longest side fed to an any-size model for a single image


# --- finding things in a model -----------------------------------------------------------------


def _keras():
    """Keras, imported without TensorFlow's start-up log lines (:func:`cvapps._keras.import_keras`)."""
    from cvapps._keras import import_keras

    return import_keras()


def _load(model):
    """A model name/path -> a loaded keras.Model; a keras.Model is returned as is."""
    if isinstance(model, (str, Path)):
        from cvapps.models import load_model

        return load_model(model)
    return model


def _walk(layer):
    """``layer`` and every layer nested in it, depth first, in each model's layer order."""
    yield layer
    for child in getattr(layer, "layers", None) or ():
        yield from _walk(child)


def first_conv_layer(model: str | Path | keras.Model) -> keras.layers.Layer:
    """The first 2-D convolution of ``model`` (a ``Conv2D``, ``DepthwiseConv2D`` or
    :class:`cvapps.nn.kernel_layers.FixedConv2D`), searching nested models (a classifier's
    ``backbone``, MobileNetV2 inside it) in layer order.

    Raises:
        ValueError: the model has no such layer.
    """
    keras = _keras()

    from cvapps.nn.kernel_layers import FixedConv2D

    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, FixedConv2D)
    for layer in _walk(_load(model)):
        if isinstance(layer, kinds) and getattr(layer, "kernel", None) is not None:
            return layer
    raise ValueError(
        f"model {getattr(model, 'name', model)!r} has no Conv2D, DepthwiseConv2D or FixedConv2D layer "
        "with weights to draw."
    )


class _PyramidView:
    """A functional model whose output is a dict of levels (a U-Net's ``encoder``), seen as a
    backbone: the model's attributes plus ``pyramid_outputs`` = that dict."""

    def __init__(self, model):
        self._model = model
        self.pyramid_outputs = dict(model.output)

    def __getattr__(self, name):
        return getattr(self._model, name)


def _is_pyramid(output):
    return isinstance(output, dict) and output and all(str(k)[:1] == "P" and str(k)[1:].isdigit() for k in output)


def find_backbone(model: str | Path | keras.Model) -> keras.Model | _PyramidView:
    """The cvapps backbone of ``model``, in layer order: the model itself when it has
    ``pyramid_outputs`` (a :class:`cvapps.nn.backbone.Backbone`), else the first nested layer that
    has them (the ``"backbone"`` layer of classifiers, detectors and face models), else the first
    nested functional model whose output is a dict of levels ``{"P1": ..., "P5": ...}`` (the
    ``"encoder"`` of a cvapps U-Net).

    Raises:
        ValueError: none of these (e.g. a style-transfer network, which has no backbone).
    """
    layers = list(_walk(_load(model)))
    for layer in layers:
        if getattr(layer, "pyramid_outputs", None):
            return layer
    for layer in layers:
        if getattr(layer, "inputs", None) and _is_pyramid(getattr(layer, "output", None)):
            return _PyramidView(layer)
    raise ValueError(
        f"model {getattr(model, 'name', model)!r} has no cvapps backbone (a layer with "
        "'pyramid_outputs', such as the 'backbone' layer of every cvapps model, or a U-Net "
        "'encoder')."
    )


def _check_levels(backbone, levels):
    levels = (levels,) if isinstance(levels, str) else tuple(levels)
    available = list(backbone.pyramid_outputs)
    if not levels:
        raise ValueError(f"no level given; this backbone has: {', '.join(available)}.")
    for level in levels:
        if level not in backbone.pyramid_outputs:
            raise ValueError(f"unknown level {level!r}; this backbone has: {', '.join(available)}.")
    return levels


def _feature_model(backbone, levels):
    """One functional model: backbone input -> [feature map of each level]."""
    keras = _keras()

    return keras.Model(backbone.input, [backbone.pyramid_outputs[level] for level in levels], name="visualise_features")


def _predict(feature_model, batch):
    outputs = feature_model.predict_on_batch(np.asarray(batch, np.float32))
    return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


def _input_size(model, backbone):
    """Square input side the model expects, or None for any size."""
    from cvapps.models import model_info

    try:
        return model_info(model).image_size
    except ValueError:  # a bare backbone or a non-cvapps model: its own input shape
        return backbone.input_shape[1]


def _fit(image, size, max_side=MAX_SIDE):
    """Resize like the model expects: a square ``size`` (as :func:`cvapps.core.sources.resize_square`),
    or, for an any-size model (``size`` None), the image itself shrunk to ``max_side`` at most."""
    from cvapps.core.sources import resize_square

    if size is not None:
        return resize_square(image, size)
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    import cv2

    scale = max_side / max(height, width)
    return cv2.resize(
        image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )


def _as_image(image):
    from cvapps.core.sources import read_image

    if isinstance(image, (str, Path)):
        return read_image(image)
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image or a path; received an array of shape {image.shape}.")
    return image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)


# --- drawing helpers ---------------------------------------------------------------------------


def _text(image, text, x, y, scale=0.45, colour=(0, 0, 0)):
    import cv2

    cv2.putText(image, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _label_bar(text, width, height=22):
    bar = np.full((height, max(1, width), 3), BACKGROUND, np.uint8)
    _text(bar, text, 4, height - 7)
    return bar


def _text_width(text, scale=0.45):
    import cv2

    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] + 8


def grid(tiles: Iterable[np.ndarray], columns: int, gap: int = SEPARATOR, background: int = BACKGROUND) -> np.ndarray:
    """Lay out equal-shaped (h, w, 3) uint8 tiles row by row, ``gap`` pixels apart.

    >>> grid([np.zeros((2, 3, 3), np.uint8)] * 5, columns=2, gap=1).shape   # 3 rows, 2 columns
    (8, 7, 3)
    """
    tiles = list(tiles)
    if not tiles:
        raise ValueError("no tiles to lay out.")
    height, width = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    canvas = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3), background, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y, x = r * (height + gap), c * (width + gap)
        canvas[y : y + height, x : x + width] = tile
    return canvas


def stack(parts: Sequence[np.ndarray], gap: int = 6, background: int = BACKGROUND) -> np.ndarray:
    """Stack pictures top to bottom, left-aligned, on a page as wide as the widest."""
    width = max(p.shape[1] for p in parts)
    rows = []
    for k, part in enumerate(parts):
        if k:
            rows.append(np.full((gap, width, 3), background, np.uint8))
        row = np.full((part.shape[0], width, 3), background, np.uint8)
        row[:, : part.shape[1]] = part
        rows.append(row)
    return np.concatenate(rows, axis=0)


def _normalise(values):
    """Min-max to [0, 255] uint8 (over the whole array); a constant array gives 0."""
    values = np.asarray(values, np.float32)
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12:
        return np.zeros(values.shape, np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def colour_map(gray: np.ndarray, name: str = "viridis") -> np.ndarray:
    """(h, w) uint8 -> (h, w, 3) uint8 RGB through ``"viridis"`` or ``"gray"``."""
    if name == "gray":
        return np.repeat(gray[:, :, None], 3, axis=2)
    if name != "viridis":
        raise ValueError(f"colour map must be 'viridis' or 'gray'; received {name!r}.")
    import cv2

    return cv2.applyColorMap(gray, cv2.COLORMAP_VIRIDIS)[:, :, ::-1].copy()


def _scale_tile(tile, low=48, high=96):
    """Nearest-neighbour upscaling (by an integer factor) of small tiles so pixels stay visible;
    area-averaged shrinking of tiles larger than ``high``."""
    import cv2

    side = max(tile.shape[:2])
    if side < low:
        factor = math.ceil(low / side)
        return np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)
    if side > high:
        scale = high / side
        size = (max(1, round(tile.shape[1] * scale)), max(1, round(tile.shape[0] * scale)))
        return cv2.resize(tile, size, interpolation=cv2.INTER_AREA)
    return tile


# --- first-layer filters -----------------------------------------------------------------------


def filter_tiles(kernel: ArrayLike, depthwise: bool = False) -> list[np.ndarray]:
    """A Conv2D kernel (kh, kw, c_in, c_out) -> list of (kh, kw, 3) uint8 tiles, one per filter.

    Each filter is min-max normalised to [0, 255] on its own (over its colour channels together,
    so the colours keep their balance): 3 input channels are drawn as RGB, 1 as gray, any other
    count as the gray mean over the input channels. A depthwise kernel (kh, kw, c, multiplier)
    gives c * multiplier gray tiles.

    >>> tiles = filter_tiles(np.stack([np.eye(3), -np.eye(3)], -1)[:, :, None, :])
    >>> len(tiles), tiles[0][:, :, 0].tolist()
    (2, [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    """
    kernel = np.asarray(kernel, np.float32)
    if kernel.ndim != 4:
        raise ValueError(f"expected a (kh, kw, in, out) kernel; received shape {kernel.shape}.")
    kh, kw, c_in, c_out = kernel.shape
    if depthwise:
        filters = kernel.reshape(kh, kw, c_in * c_out)[:, :, :, None].transpose(2, 0, 1, 3)
    elif c_in in (1, 3):
        filters = kernel.transpose(3, 0, 1, 2)
    else:
        filters = kernel.mean(axis=2, keepdims=True).transpose(3, 0, 1, 2)
    tiles = []
    for f in filters:
        tile = _normalise(f)
        tiles.append(tile if tile.shape[2] == 3 else np.repeat(tile, 3, axis=2))
    return tiles


def first_layer_filters(model: str | Path | keras.Model, tile: int = 48, title: bool = True) -> np.ndarray:
    """A picture of the first convolution layer's filters (see :func:`first_conv_layer`).

    Args:
        model: a shipped name, a ``.keras`` path or a ``keras.Model`` (nested models are searched).
        tile: each filter is upscaled by nearest neighbour to about this many pixels (so a 3x3
            filter is a visible 3x3 block pattern).
        title: write the layer's name and kernel shape above the grid.

    Returns:
        (H, W, 3) uint8 RGB: the filters in a grid of ceil(sqrt(n)) columns, white 2-pixel
        separators, each filter normalised on its own (:func:`filter_tiles`); a filter whose
        weights are all zero (a "dead" filter; the title counts them) is black.
    """
    keras = _keras()

    layer = first_conv_layer(model)
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel))
    depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
    tiles = filter_tiles(kernel, depthwise)
    factor = max(1, round(tile / max(kernel.shape[:2])))
    tiles = [np.repeat(np.repeat(t, factor, axis=0), factor, axis=1) for t in tiles]
    picture = grid(tiles, columns=math.ceil(math.sqrt(len(tiles))))
    if not title:
        return picture
    kh, kw, c_in, _ = kernel.shape
    text = f"{layer.name}: {len(tiles)} filters {kh}x{kw}x{1 if depthwise else c_in}"
    # Filters whose weights are all (nearly) zero: "dead" filters, drawn black.
    strength = np.abs(kernel).reshape(kh * kw, -1).max(axis=0) if depthwise else np.abs(kernel).max(axis=(0, 1, 2))
    dead = int(np.sum(strength <= 1e-6 * max(float(strength.max()), 1e-30)))
    if dead:
        text += f", {dead} all-zero (black)"
    return stack([_label_bar(text, max(picture.shape[1], _text_width(text))), picture], gap=2)


# --- feature maps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureMaps:
    """What :func:`feature_maps` drew.

    Attributes:
        image: (H, W, 3) uint8 RGB picture.
        levels: the levels drawn, in order.
        shapes: level -> (h, w, channels) of its feature map.
        channels: level -> the channel indices shown (ascending).
        input_size: (height, width) of the image as fed to the model.
    """

    image: np.ndarray
    levels: tuple
    shapes: dict
    channels: dict
    input_size: tuple


def feature_maps(
    model: str | Path | keras.Model,
    image: str | Path | np.ndarray,
    levels: str | Sequence[str] = ("P3",),
    max_channels: int = 64,
    colours: str = "viridis",
) -> FeatureMaps:
    """A picture of the backbone's feature maps at ``levels`` for one image.

    The image is resized as the model expects (its square input size; an any-size model gets
    the image itself, shrunk to 512 pixels on its longest side at most) and run through ONE
    compiled model (backbone input -> the chosen levels). Per level, up to ``max_channels``
    channels are drawn: when the level has more, the ones with the highest mean activation over
    the image (the others are mostly zero after a ReLU), shown in channel order. Each channel is
    min-max normalised on its own and coloured (viridis: dark blue low, yellow high), small maps
    upscaled by nearest neighbour. The picture starts with the input as the model saw it.

    Args:
        model: a shipped name, a ``.keras`` path or a ``keras.Model`` built on a cvapps backbone.
        image: an (H, W, 3) RGB uint8 array or a path.
        levels: pyramid keys (``"P2"`` .. ``"P5"``; some backbones have others, the error lists them).
        max_channels: channels drawn per level, at most.
        colours: ``"viridis"`` or ``"gray"``.

    Raises:
        ValueError: unknown level, unreadable image, or a model without a cvapps backbone.
    """
    if not isinstance(max_channels, int) or max_channels < 1:
        raise ValueError(f"max_channels must be a positive integer; received {max_channels!r}.")
    colour_map(np.zeros((1, 1), np.uint8), colours)  # checks the name before any work
    model = _load(model)
    backbone = find_backbone(model)
    levels = _check_levels(backbone, levels)
    pixels = _fit(_as_image(image), _input_size(model, backbone))
    outputs = _predict(_feature_model(backbone, levels), pixels[None])
    parts = [
        _label_bar(f"input, {pixels.shape[1]}x{pixels.shape[0]} as the model sees it", 360),
        _scale_tile(pixels, 96, 192),
    ]
    shapes, chosen = {}, {}
    for level, output in zip(levels, outputs):
        maps = output[0]  # (h, w, C)
        count = maps.shape[-1]
        if count > max_channels:
            channels = np.sort(np.argsort(-maps.mean(axis=(0, 1)), kind="stable")[:max_channels])
        else:
            channels = np.arange(count)
        tiles = [_scale_tile(colour_map(_normalise(maps[:, :, c]), colours)) for c in channels]
        picture = grid(tiles, columns=math.ceil(math.sqrt(len(tiles))))
        which = "all" if len(channels) == count else f"the {len(channels)} most active of"
        text = f"{level}: {maps.shape[1]}x{maps.shape[0]}, {which} {count} channels (each normalised)"
        parts += [_label_bar(text, max(picture.shape[1], _text_width(text))), picture]
        shapes[level] = tuple(int(v) for v in maps.shape)
        chosen[level] = tuple(int(c) for c in channels)
    return FeatureMaps(stack(parts, gap=4), levels, shapes, chosen, tuple(pixels.shape[:2]))


# --- top patches -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patch:
    """One image region that strongly activates a unit.

    Attributes:
        source: the image it came from (path, or ``"array[k]"``).
        value: the unit's activation there.
        row, col: the feature-map position.
        box: (x0, y0, x1, y1) of the receptive field in the ORIGINAL image's pixels, clipped to it.
    """

    source: str
    value: float
    row: int
    col: int
    box: tuple


@dataclass(frozen=True)
class TopPatches:
    """What :func:`top_patches` found.

    Attributes:
        image: (H, W, 3) uint8 RGB picture: a row per unit, its patches strongest first.
        level: the level searched.
        units: the units (channels) drawn, one per row.
        patches: per unit, its :class:`Patch` list, strongest first (at most ``top``).
        images: how many images were searched.
        skipped: ``"path: reason"`` of each input that could not be read.
        geometry: (size, jump, start) receptive field used, in model-input pixels.
    """

    image: np.ndarray
    level: str
    units: tuple
    patches: tuple
    images: int
    skipped: tuple = ()
    geometry: tuple = field(default=())


def _geometry(backbone, level, geometry, image_size):
    """(size, jump, start) of ``level``: the given override, else :func:`cvapps.toolbox.explain.level_geometry`
    (``image_size``: the side fed to an any-size backbone, for its "same" padding offsets)."""
    if geometry is None:
        from cvapps.toolbox.explain import level_geometry

        geometry = level_geometry(backbone, level, image_size=image_size)
    if isinstance(geometry, (tuple, list)):
        size, jump, start = geometry
    else:
        size, jump, start = geometry.size, geometry.jump, geometry.start
    return float(size), float(jump), float(start)


def _frames(images):
    """(source name, image or None, error or None) for a source or a list of arrays/paths."""
    from cvapps.core.sources import Source, open_source, read_image

    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if isinstance(images, (list, tuple)):
        for k, item in enumerate(images):
            if isinstance(item, (str, Path)):
                try:
                    yield str(item), read_image(item), None
                except ValueError as error:
                    yield str(item), None, str(error)
            else:
                yield f"array[{k}]", _as_image(item), None
        return
    source = images if isinstance(images, Source) else open_source(images)
    if source.kind != "images":
        raise ValueError(
            f"{source.items[0]}: top_patches needs still images (a folder, a glob or image files), not a {source.kind}."
        )
    for frame in source.frames():
        yield frame.source, frame.image, frame.error


def _crop(image, y0, y1, x0, x1, fill=PAD_GRAY):
    """image[y0:y1, x0:x1] for integer bounds that may leave the image: outside is ``fill``."""
    height, width = image.shape[:2]
    out = np.full((max(1, y1 - y0), max(1, x1 - x0), 3), fill, np.uint8)
    ya, yb, xa, xb = max(y0, 0), min(y1, height), max(x0, 0), min(x1, width)
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    return out


def _patch_window(row, col, geometry, scale_y, scale_x, side):
    """Integer (y0, y1, x0, x1) of a feature position's square in original-image pixels.

    Feature (i, j) sees the model-input square of ``side`` pixels centred on pixel
    (start + i * jump, start + j * jump). Pixel k covers [k, k + 1) in continuous coordinates,
    so the square is [c + 0.5 - side / 2, c + 0.5 + side / 2); resizing the image by s maps a
    continuous coordinate u to u * s.
    """
    _, jump, start = geometry
    cy, cx = start + row * jump + 0.5, start + col * jump + 0.5
    half = side / 2
    y0, y1 = math.floor((cy - half) * scale_y), math.ceil((cy + half) * scale_y)
    x0, x1 = math.floor((cx - half) * scale_x), math.ceil((cx + half) * scale_x)
    return y0, y1, x0, x1


def top_patches(
    model: str | Path | keras.Model,
    images: str | Path | Source | Sequence[str | Path | np.ndarray] | np.ndarray,
    level: str = "P4",
    units: Iterable[int] | None = None,
    top: int = 9,
    per_image: int = 1,
    patch_size: float | None = None,
    image_size: int | None = None,
    batch_size: int = 16,
    cell: int = 80,
    geometry: Geometry | Sequence[float] | None = None,
) -> TopPatches:
    """For units of one level, the image patches that activate each most (Zeiler & Fergus 2014).

    Every image is resized as the model expects and run through the backbone, in batches. For
    each unit (channel) and image, the ``per_image`` strongest positions are kept; the ``top``
    strongest of those over all images are the unit's patches. With ``per_image=1`` (default)
    a unit's patches come from ``top`` different images. A patch is the position's receptive
    field (from :func:`cvapps.toolbox.explain.level_geometry`, or ``patch_size`` input pixels around its
    centre), cut from the ORIGINAL image (coordinates mapped back through the resize) and drawn
    in a ``cell`` x ``cell`` square; the part of the field outside the image is drawn gray,
    which is what the network's zero padding sees after its [-1, 1] scaling.

    Args:
        model: a shipped name, a ``.keras`` path or a ``keras.Model`` built on a cvapps backbone.
        images: a folder, glob or image path (anything :func:`cvapps.core.sources.open_source` takes
            that holds still images), or a list of (H, W, 3) arrays or paths.
        level: the pyramid level to search.
        units: channel indices to draw, or None: the 8 units with the highest maximum
            activation over all the images (the units something in these images excites most).
        top: patches per unit.
        per_image: positions per unit and image that may enter the ranking.
        patch_size: side of the square cut around each position, in model-input pixels;
            default the level's theoretical receptive field (often most of the image at P4-P5,
            where the effective field is far smaller; pass e.g. 64 to look closer).
        image_size: input side for a model that takes any size (default 224); ignored otherwise.
        batch_size: images per forward pass.
        cell: side of each drawn patch, pixels.
        geometry: a (size, jump, start) receptive field, overriding ``level_geometry``.

    Returns:
        :class:`TopPatches` (picture, chosen units, patch records, skipped inputs).

    Raises:
        ValueError: unknown level, a unit out of range, no readable image, a video source.
    """
    for name, value in (("top", top), ("per_image", per_image), ("batch_size", batch_size), ("cell", cell)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; received {value!r}.")
    if patch_size is not None and not (isinstance(patch_size, (int, float)) and patch_size > 0):
        raise ValueError(f"patch_size must be a positive number of pixels or None; received {patch_size!r}.")
    model = _load(model)
    backbone = find_backbone(model)
    (level,) = _check_levels(backbone, (level,))
    size = _input_size(model, backbone) or int(image_size or ANY_SIZE_SIDE)
    field_ = _geometry(backbone, level, geometry, size)
    side = float(patch_size) if patch_size else field_[0]
    features = _feature_model(backbone, (level,))

    sources, shapes, originals, skipped = [], [], {}, []
    values, positions = [], []  # per image: (C, per_image) activations and flat positions
    feature_shape = None
    in_memory = isinstance(images, (list, tuple, np.ndarray))

    def run(batch):
        (output,) = _predict(features, np.stack(batch))
        b, h, w, c = output.shape
        flat = output.reshape(b, h * w, c)
        k = min(per_image, h * w)
        # The k largest per (image, unit): argpartition over positions, then sorted descending.
        index = (
            np.argpartition(-flat, k - 1, axis=1)[:, :k, :]
            if k < h * w
            else np.broadcast_to(np.arange(h * w)[None, :, None], (b, h * w, c))
        )
        picked = np.take_along_axis(flat, index, axis=1)
        order = np.argsort(-picked, axis=1, kind="stable")
        values.append(np.take_along_axis(picked, order, axis=1).transpose(0, 2, 1))
        positions.append(np.take_along_axis(index, order, axis=1).transpose(0, 2, 1))
        return (h, w, c)

    batch = []
    for name, image, error in _frames(images):
        if image is None:
            skipped.append(error or f"{name}: unreadable")
            continue
        sources.append(name)
        shapes.append(image.shape[:2])
        if in_memory:
            originals[len(sources) - 1] = image
        batch.append(_fit(image, size))
        if len(batch) == batch_size:
            feature_shape = run(batch)
            batch = []
    if batch:
        feature_shape = run(batch)
    if not sources:
        raise ValueError("no readable image to search" + (f"; skipped: {'; '.join(skipped)}" if skipped else "") + ".")
    _, w, channels = feature_shape
    values = np.concatenate(values)  # (N, C, k)
    positions = np.concatenate(positions)

    if units is None:
        strongest = values[:, :, 0].max(axis=0)
        units = np.argsort(-strongest, kind="stable")[: min(8, channels)]
    units = tuple(int(u) for u in units)
    bad = [u for u in units if not 0 <= u < channels]
    if bad or not units:
        raise ValueError(
            f"units must be channel indices in 0..{channels - 1} of {level} ({channels} channels); "
            f"received {list(units)}."
        )

    from cvapps.core.sources import read_image

    rows, records = [], []
    for unit in units:
        # Candidates of this unit over all images: (value, image, flat position).
        unit_values = values[:, unit, :].ravel()
        order = np.argsort(-unit_values, kind="stable")[:top]
        unit_records, tiles = [], []
        for flat_index in order:
            n, slot = divmod(int(flat_index), values.shape[2])
            row, col = divmod(int(positions[n, unit, slot]), w)
            height, width = shapes[n]
            if n not in originals:
                originals[n] = read_image(sources[n])
            y0, y1, x0, x1 = _patch_window(row, col, field_, height / size, width / size, side)
            crop = _crop(originals[n], y0, y1, x0, x1)
            tiles.append(_resize(crop, cell))
            box = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
            unit_records.append(Patch(sources[n], float(values[n, unit, slot]), row, col, box))
        tiles += [np.full((cell, cell, 3), 235, np.uint8)] * (top - len(tiles))
        rows.append(grid(tiles, columns=top))
        records.append(tuple(unit_records))
    picture = _patches_picture(rows, units, records, level, len(sources), side, cell, top)
    return TopPatches(picture, level, units, tuple(records), len(sources), tuple(skipped), field_)


def _resize(image, cell):
    import cv2

    shrinking = image.shape[0] * image.shape[1] > cell * cell
    return cv2.resize(image, (cell, cell), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _patches_picture(rows, units, records, level, count, side, cell, top):
    labels = [f"unit {u}" for u in units]
    margin = max(_text_width(t) for t in labels + ["max 00.00"])
    lines = []
    for label, row, unit_records in zip(labels, rows, records):
        left = np.full((row.shape[0], margin, 3), BACKGROUND, np.uint8)
        _text(left, label, 4, cell // 2 - 2)
        if unit_records:
            _text(left, f"max {unit_records[0].value:.2f}", 4, cell // 2 + 16, 0.4, (90, 90, 90))
        lines.append(np.concatenate([left, row], axis=1))
    body = grid(lines, columns=1, gap=SEPARATOR)
    text = f"{level}: the {top} strongest patches per unit over {count} images ({side:.0f}-pixel input squares)"
    return stack([_label_bar(text, max(body.shape[1], _text_width(text))), body], gap=2)
