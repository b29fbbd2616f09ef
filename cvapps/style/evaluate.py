"""Scoring styles: mean content and style losses over photos."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvapps.style.costs import PerceptualLoss, build_loss_network
from cvapps.style.predict import StyleRunner, _painting_of_model, is_style_image, read_style_image, resize_long, stylize
from cvapps.style.train import list_content_images

if TYPE_CHECKING:
    from cvapps.style.costs import LossNetwork

# --- evaluation --------------------------------------------------------------------------------


def evaluate_style(
    content_dir: str | Path,
    style: str | Path | np.ndarray,
    method: str | None = None,
    size: int = 256,
    loss_network: str | LossNetwork = "auto",
    max_images: int | None = None,
    steps: int = 200,
    runtime: str = "auto",
    progress: Callable[[Sequence[Path], int], Iterable[Path]] | None = None,
    style_size: int = 256,
) -> tuple[dict[str, Any], int, list[str]]:
    """Stylise the photos of ``content_dir`` and score them with a loss network.

    Args:
        content_dir: folder of photos (recursive, sorted; the first ``max_images``).
        style, method, steps, runtime: as for :func:`stylize`; the painting scored against is
            the style image itself, or for a trained style the painting it was trained on.
        size: longer side each photo is resized to before stylising.
        loss_network: the network scoring (see :func:`build_loss_network`); name it when
            comparing (a style trained with one network scores better on that one).
        progress: optional ``progress(iterable, total) -> iterable``.

    Returns:
        (metrics, num_images, skipped): metrics has ``content_loss`` and ``style_loss`` (means
        over the images of the relative costs in the module docstring; lower is closer to the
        photo, resp. the painting), ``loss_network``, ``method``, ``style``, ``size``,
        ``seconds_per_image``; skipped lists "path: reason" of unreadable photos.
    """
    from cvapps.core.sources import read_image

    runner = StyleRunner(style, method, runtime, loss_network=loss_network, steps=steps, style_size=style_size)
    painting = read_style_image(style, style_size) if is_style_image(style) else _painting_of_model(style, style_size)
    network = runner.network if runner.method == "optimize" else build_loss_network(loss_network)
    loss = PerceptualLoss(network, painting)
    paths = list_content_images([content_dir])[:max_images]
    items = progress(paths, len(paths)) if progress else paths
    content_losses, style_losses, skipped, seconds = [], [], [], 0.0
    for path in items:
        try:
            photo = resize_long(read_image(path), size)
        except ValueError as error:
            skipped.append(str(error))
            continue
        [result] = stylize(photo, runner)
        seconds += result.seconds
        parts = loss.parts(photo[None].astype(np.float32), result.image[None].astype(np.float32))
        content_losses.append(float(np.asarray(parts["content_loss"])[0]))
        style_losses.append(float(np.asarray(parts["style_loss"])[0]))
    if not content_losses:
        raise ValueError(f"{content_dir}: no readable photos to evaluate.")
    metrics = {
        "content_loss": float(np.mean(content_losses)),
        "style_loss": float(np.mean(style_losses)),
        "loss_network": network.name,
        "method": runner.method,
        "style": runner.name,
        "size": size,
        "seconds_per_image": seconds / len(content_losses),
    }
    return metrics, len(content_losses), skipped
