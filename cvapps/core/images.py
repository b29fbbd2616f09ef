"""Checks and padding of in-memory images, shared by the apps' predict phases (NumPy only)."""

from __future__ import annotations

import numpy as np


def check_rgb_array(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) RGB array as uint8 (other dtypes are clipped to 0..255); anything else is a ValueError.

    >>> check_rgb_array(np.full((1, 2, 3), 300.0)).tolist()
    [[[255, 255, 255], [255, 255, 255]]]
    >>> check_rgb_array(np.zeros((4, 4)))
    Traceback (most recent call last):
    ValueError: an image array must have shape (H, W, 3) RGB; received shape (4, 4).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image array must have shape (H, W, 3) RGB; received shape {image.shape}.")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def pad_to_multiple(image: np.ndarray, stride: int, mode: str = "reflect") -> tuple[np.ndarray, tuple[int, int]]:
    """Pad (H, W, ...) at the bottom and right to multiples of ``stride``; returns (padded, (H, W)).

    ``mode`` is NumPy's pad mode; ``"reflect"`` falls back to ``"symmetric"`` when a pad is as long as
    its side and to ``"edge"`` when longer (reflection needs the pad to be shorter than the side).

    >>> padded, size = pad_to_multiple(np.zeros((33, 64, 3)), 32)
    >>> padded.shape, size
    ((64, 64, 3), (33, 64))
    >>> pad_to_multiple(np.arange(3).reshape(1, 3), 4)[0].tolist()   # 1 row: the pad of 3 rows > 1 -> edge
    [[0, 1, 2, 2], [0, 1, 2, 2], [0, 1, 2, 2], [0, 1, 2, 2]]
    """
    height, width = image.shape[:2]
    pad_h, pad_w = (-height) % stride, (-width) % stride
    if not pad_h and not pad_w:
        return image, (height, width)
    pads = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    if mode == "reflect" and (pad_h >= height or pad_w >= width):
        mode = "symmetric"
        if pad_h > height or pad_w > width:
            mode = "edge"
    return (np.pad(image, pads, mode=mode) if mode != "constant" else np.pad(image, pads)), (height, width)
