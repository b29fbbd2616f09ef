"""Stylising at inference: Stylized, StyleRunner, stylize(), colour preservation and blending."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cvapps.core.images import check_rgb_array, pad_to_multiple
from cvapps.core.sources import IMAGE_SUFFIXES
from cvapps.style import METHODS
from cvapps.style.costs import build_loss_network
from cvapps.style.optimize import optimize_image

if TYPE_CHECKING:
    import keras

    from cvapps.core.streaming import FrameResult
    from cvapps.runtime import OpenedModel

# --- inference ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stylized:
    """One stylised picture.

    Attributes:
        image: (H, W, 3) uint8 RGB result.
        style: style name (a shipped model's name, a painting's file name, or "array"); for a
            blend, ``"a+b"``.
        method: ``"fast"`` or ``"optimize"``.
        strength: blend factor with the content (0 = the content, 1 = fully stylised).
        preserve_color: whether the content's colours were kept (luminance-only transfer).
        seconds: wall time of the call.
        source: the content's path, or "array".
    """

    image: np.ndarray
    style: str
    method: str
    strength: float
    preserve_color: bool
    seconds: float
    source: str = "array"

    def __post_init__(self):
        if not (
            isinstance(self.image, np.ndarray)
            and self.image.ndim == 3
            and self.image.shape[2] == 3
            and self.image.dtype == np.uint8
        ):
            raise ValueError(
                f"Stylized.image must be an (H, W, 3) uint8 array, received {getattr(self.image, 'shape', self.image)!r}."
            )
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, received {self.method!r}.")


def _resize_short(image, side):
    """Resize so the shorter side is ``side`` (aspect kept)."""
    import cv2

    h, w = image.shape[:2]
    scale = side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def resize_long(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize (H, W, 3) so its longer side is ``size`` pixels (aspect kept); None or the same
    size returns the image itself."""
    import cv2

    if size is None:
        return image
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer of at least 8 pixels (the longer side) or None, received {size!r}.")
    h, w = image.shape[:2]
    if max(h, w) == size:
        return image
    scale = size / max(h, w)
    shape = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, shape, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def stylize_array(model: OpenedModel | keras.Model, image: np.ndarray, stride: int | None = None) -> np.ndarray:
    """Run a fast style net on one (H, W, 3) RGB image of any size -> (H, W, 3) uint8.

    ``model``: an opened model (:func:`cvapps.runtime.open_model`) or a ``keras.Model``. The
    image is padded to the net's stride and the result cropped back.
    """
    from cvapps.runtime import open_model

    model = open_model(model)
    stride = stride or int(model.info.settings.get("stride", 4))
    padded, (h, w) = pad_to_multiple(np.asarray(image), stride)
    out = model.predict(padded[None].astype(np.float32))[0, :h, :w]
    return np.clip(out, 0, 255).round().astype(np.uint8)


def preserve_colors(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance-only transfer: the stylised Y with the content's Cb, Cr (BT.601, full range).

    Y = 0.299 R + 0.587 G + 0.114 B; Cb, Cr from the content; back to RGB with the inverse matrix.
    A grey content keeps a grey result:

    >>> grey = np.full((1, 1, 3), 100, np.uint8); red = np.array([[[200, 0, 0]]], np.uint8)
    >>> preserve_colors(red, grey).tolist()   # Y of red = 0.299 * 200 = 59.8
    [[[60, 60, 60]]]
    """
    s = np.asarray(stylized, np.float32)
    c = np.asarray(content, np.float32)
    y = 0.299 * s[..., 0] + 0.587 * s[..., 1] + 0.114 * s[..., 2]
    cb = -0.168736 * c[..., 0] - 0.331264 * c[..., 1] + 0.5 * c[..., 2]
    cr = 0.5 * c[..., 0] - 0.418688 * c[..., 1] - 0.081312 * c[..., 2]
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(rgb, 0, 255).round().astype(np.uint8)


def blend(content: np.ndarray, stylized: np.ndarray, strength: float) -> np.ndarray:
    """(1 - strength) content + strength stylised, uint8; strength 0 returns ``content`` itself."""
    if strength == 0:
        return content
    if strength == 1:
        return stylized
    mixed = (1.0 - strength) * content.astype(np.float32) + strength * stylized.astype(np.float32)
    return np.clip(mixed, 0, 255).round().astype(np.uint8)


def is_style_image(style: object) -> bool:
    """True when ``style`` names a painting (an image path or an array) rather than a shipped model."""
    if isinstance(style, np.ndarray):
        return True
    text = str(style)
    return Path(text).suffix.lower() in IMAGE_SUFFIXES


def shipped_styles() -> dict[str, dict]:
    """name -> card dict of every shipped style model (task "style")."""
    from cvapps.models import model_card, shipped_models

    styles = {}
    for name in shipped_models():
        card = model_card(name)
        if card.get("task") == "style":
            styles[name] = card
    return styles


class StyleRunner:
    """Opened style(s) for repeated calls (webcam, folders): fast nets opened once, or a
    painting's loss network and Grams built once. Use :func:`stylize` for single calls."""

    def __init__(
        self,
        style: str | Path | np.ndarray,
        method: str | None = None,
        runtime: str = "auto",
        blend_style: str | Path | np.ndarray | None = None,
        blend_weight: float = 0.5,
        loss_network: str = "auto",
        steps: int = 200,
        style_size: int = 256,
    ):
        from cvapps.runtime import open_model

        method = method or ("optimize" if is_style_image(style) else "fast")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, received {method!r}.")
        if not 0 <= blend_weight <= 1:
            raise ValueError(f"blend_weight must be in [0, 1], received {blend_weight!r}.")
        self.method, self.steps, self.blend_weight = method, steps, blend_weight
        names = [style] + ([blend_style] if blend_style is not None else [])
        self.models, self.paintings = [], []
        for item in names:
            if method == "fast":
                if is_style_image(item):
                    raise ValueError(
                        f"{item}: the fast method needs a trained style (one of: {', '.join(shipped_styles()) or 'none'}, "
                        "or a .keras from 'cvapps train style'); for any painting use method 'optimize'."
                    )
                self.models.append(open_model(item, task="style", runtime=runtime))
            else:
                self.paintings.append(
                    read_style_image(item, style_size) if is_style_image(item) else _painting_of_model(item, style_size)
                )
        if method == "optimize":
            self.network = build_loss_network(loss_network)
        self.name = "+".join(_style_name(item) for item in names)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB, fully stylised."""
        if self.method == "fast":
            outputs = [stylize_array(model, image) for model in self.models]
        else:
            outputs = [optimize_image(image, p, steps=self.steps, loss_network=self.network)[0] for p in self.paintings]
        if len(outputs) == 2:
            return blend(outputs[0], outputs[1], self.blend_weight)
        return outputs[0]


def _style_name(style):
    if isinstance(style, np.ndarray):
        return "array"
    return Path(str(style)).stem


def _painting_of_model(name, side):
    """The painting a style model was trained on: its ``models/NAME.style.jpg`` or the path in
    its settings (also looked up under ``$CVAPPS_DATA/style/paintings``)."""
    from cvapps.models import model_info, resolve_model_path, shipped_dir

    path = resolve_model_path(name)
    beside = path.with_suffix(".style.jpg")
    if beside.is_file():
        return read_style_image(beside, side)
    if (shipped_dir() / f"{name}.style.jpg").is_file():
        return read_style_image(shipped_dir() / f"{name}.style.jpg", side)
    from cvapps.models import load_model

    settings = model_info(load_model(path, task="style")).settings
    candidates = [Path(settings.get("style_image_path", "")), Path(settings.get("style_image", ""))]
    if os.environ.get("CVAPPS_DATA"):
        candidates.append(Path(os.environ["CVAPPS_DATA"]) / "style" / "paintings" / settings.get("style_image", ""))
    for candidate in candidates:
        if candidate.is_file():
            return read_style_image(candidate, side)
    raise ValueError(
        f"{name}: the painting it was trained on ({settings.get('style_image')}) was not found; pass it as --style-image."
    )


@dataclass(frozen=True)
class StyleOptions:
    """The less-used settings of :func:`stylize` (a small frozen record, not a ``**options`` tunnel).

    Attributes:
        blend_style: a second style mixed in: ``(1 - blend_weight) style + blend_weight blend_style``
            (a shipped name or ``.keras`` for ``"fast"``, a painting for ``"optimize"``); None: none.
        blend_weight: 0..1, the second style's share.
        steps: Adam steps on the pixels for method ``"optimize"``.
        loss_network: the optimisation's loss network, one of :data:`cvapps.style.LOSS_NETWORKS`.

    >>> StyleOptions(steps=50).steps
    50
    """

    blend_style: str | Path | np.ndarray | None = None
    blend_weight: float = 0.5
    steps: int = 200
    loss_network: str = "auto"

    def __post_init__(self) -> None:
        if not 0 <= self.blend_weight <= 1:
            raise ValueError(f"blend_weight must be in [0, 1], received {self.blend_weight!r}.")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a whole number of at least 1, received {self.steps!r}.")


def stylize(
    images: str | Path | np.ndarray | Sequence[str | Path | np.ndarray],
    style: str | Path | np.ndarray | StyleRunner = "starry_night",
    *,
    method: str | None = None,
    strength: float = 1.0,
    preserve_color: bool = False,
    size: int | None = None,
    options: StyleOptions | None = None,
    runtime: str = "auto",
    stream: bool = False,
) -> list[Stylized] | Iterator[FrameResult]:
    """Stylise pictures: one :class:`Stylized` per image, in input order (as ``classify``/``segment``).

    Args:
        images: a path, an (H, W, 3) RGB array, an (N, H, W, 3) batch, or a list of paths/arrays;
            with ``stream=True`` any source: an image, folder, glob, video file, camera index or
            stream URL.
        style: a shipped style name or ``.keras`` path (method ``"fast"``), or a painting's
            image path or array (method ``"optimize"``), or a :class:`StyleRunner` already opened.
            Opened fast nets are cached, so a loop of calls with a style name costs the net, not the load.
        method: ``"fast"`` (a trained net, well under a second), ``"optimize"`` (Gatys et al.,
            ``options.steps`` Adam steps on the pixels; any painting; tens of seconds on a CPU), or None:
            ``"optimize"`` when ``style`` is an image, else ``"fast"``. With ``"optimize"`` and a
            shipped style name, the painting that style was trained on is used.
        strength: 0..1, blend between the content (0) and the stylised picture (1).
        preserve_color: keep the content's colours (stylised luminance, original Cb, Cr).
        size: longer side of the result in pixels; None keeps the content's size (the fast net
            takes any size and aspect ratio; the optimisation is slow above ~512).
        options: :class:`StyleOptions` (a blended second style, optimisation steps, loss network).
        runtime: ``"auto"``, ``"onnx"`` or ``"keras"`` for the fast nets.
        stream: yield :class:`~cvapps.core.streaming.FrameResult` ``(frame, stylized)`` frame by frame
            instead of returning a list (see :mod:`cvapps.core.streaming`).

    Returns:
        list of :class:`Stylized`; with ``stream=True`` an iterator of ``FrameResult(frame, stylized)``
        (None for a frame that could not be read).

    Raises:
        ValueError: strength outside 0..1, an unreadable file (named), an array that is not (H, W, 3).

    >>> [styled] = stylize("photo.jpg", style="starry_night", strength=0.8)   # doctest: +SKIP
    >>> styled.image.shape, styled.method                                      # doctest: +SKIP
    ((480, 640, 3), 'fast')
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be between 0 and 1, received {strength!r}.")
    options = StyleOptions() if options is None else options
    if not isinstance(options, StyleOptions):
        raise TypeError(f"options must be a StyleOptions, received {type(options).__name__}.")
    runner = (
        style
        if isinstance(style, StyleRunner)
        else StyleRunner(
            style, method, runtime, options.blend_style, options.blend_weight, options.loss_network, options.steps
        )
    )
    if stream:
        from cvapps.core.streaming import FrameStream, stream_results

        return stream_results(
            FrameStream(images),
            lambda frame: dataclasses.replace(
                _stylize_one(frame.image, runner, strength, preserve_color, size), source=frame.source
            ),
        )
    if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    return [_stylize_one(image, runner, strength, preserve_color, size) for image in images]


def _stylize_one(content, runner, strength, preserve_color, size):
    started = time.perf_counter()
    source = str(content) if isinstance(content, (str, Path)) else "array"
    if isinstance(content, (str, Path)):
        from cvapps.core.sources import read_image

        content = read_image(content)
    content = resize_long(check_rgb_array(content), size)
    if strength == 0:
        image = content
    else:
        image = runner(content)
        if preserve_color:
            image = preserve_colors(image, content)
        image = blend(content, image, strength)
    return Stylized(
        image, runner.name, runner.method, float(strength), bool(preserve_color), time.perf_counter() - started, source
    )


def read_style_image(style_image: str | Path | np.ndarray, side: int | None = 256) -> np.ndarray:
    """A painting as (H, W, 3) uint8 RGB with its shorter side resized to ``side`` (None: as is)."""
    from cvapps.core.sources import read_image

    image = read_image(style_image) if isinstance(style_image, (str, Path)) else check_rgb_array(style_image)
    return _resize_short(image, side) if side else image
