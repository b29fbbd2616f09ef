"""Classic hand-made 3x3 kernels: what a first convolution layer learns, written by hand.

Before networks learned their filters, edges and lines were found with fixed kernels. A CNN's
first layer learns filters much like these; this module applies them to a photo (numpy/OpenCV,
no TensorFlow) and, as :class:`FixedConv2D` (in :mod:`cvapps.nn.kernel_layers`, imported lazily),
puts them inside a Keras model as non-trainable weights.

Convention: like every deep-learning "convolution" (``keras.layers.Conv2D``, ``cv2.filter2D``),
the response is a cross-correlation, the kernel is NOT flipped:

    response[y, x] = sum over i, j in {-1, 0, 1} of kernel[1 + i, 1 + j] * Y[y + i, x + j]

with ``Y = 0.299 R + 0.587 G + 0.114 B`` the luminance (ITU-R BT.601). "x" means columns (left to
right), "y" rows (top to bottom). A "vertical edge" is an edge running up-down, i.e. a change of
brightness from left to right.

    name              kernel rows                          responds to (positive response where ...)
    sobel-x           [-1 0 1] [-2 0 2] [-1 0 1]           vertical edges: brighter to the right (d/dx, Sobel 1968)
    sobel-y           [-1 -2 -1] [0 0 0] [1 2 1]           horizontal edges: brighter below (d/dy)
    scharr-x          [-3 0 3] [-10 0 10] [-3 0 3]         as sobel-x, more rotation-invariant weights (Scharr 2000)
    scharr-y          [-3 -10 -3] [0 0 0] [3 10 3]         as sobel-y, Scharr weights
    laplacian         [0 1 0] [1 -4 1] [0 1 0]             blobs and thin lines, any direction (4-neighbour d2/dx2 + d2/dy2);
                                                           positive on a dark spot, negative on a bright one
    laplacian-8       [1 1 1] [1 -8 1] [1 1 1]             as laplacian, with the diagonal neighbours too
    vertical-edge     [1 0 -1] [1 0 -1] [1 0 -1]           vertical edges: brighter on the LEFT (the deep-learning
                                                           course's "vertical edge detector"; Prewitt, sign flipped)
    horizontal-edge   [1 1 1] [0 0 0] [-1 -1 -1]           horizontal edges: brighter ABOVE (its transpose)
    vertical-line     [-1 2 -1] [-1 2 -1] [-1 2 -1]        a bright 1-pixel-wide vertical line on a darker ground
    horizontal-line   [-1 -1 -1] [2 2 2] [-1 -1 -1]        a bright 1-pixel-wide horizontal line (Gonzalez & Woods)
    box-blur          [1 1 1] [1 1 1] [1 1 1] / 9          nothing: the 3x3 mean (a low-pass filter)
    gaussian-blur     [1 2 1] [2 4 2] [1 2 1] / 16         nothing: a smoother low-pass filter
    sharpen           [0 -1 0] [-1 5 -1] [0 -1 0]          nothing: the image minus its laplacian (crisper edges)

Edge and line kernels sum to 0 (no response on a flat area); blur and sharpen sum to 1 (they
return a picture, flat areas unchanged).

    >>> import numpy as np
    >>> image = np.arange(1, 17, dtype=np.float32).reshape(4, 4)   # rows 1..4, 5..8, 9..12, 13..16
    >>> apply_kernel(image, "sobel-x", padding="valid").tolist()
    [[8.0, 8.0], [8.0, 8.0]]

(each 3x3 window: right column minus left column is 2 on every row, weighted 1 + 2 + 1 = 4: 8.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

# ITU-R BT.601 luma weights, the ones cv2.cvtColor(..., COLOR_RGB2GRAY) uses.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

_SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
_SCHARR_X = [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]
_EDGE_V = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]
_LINE_H = [[-1, -1, -1], [2, 2, 2], [-1, -1, -1]]

KERNELS = {
    name: np.asarray(values, np.float32)
    for name, values in {
        "sobel-x": _SOBEL_X,
        "sobel-y": np.transpose(_SOBEL_X),
        "scharr-x": _SCHARR_X,
        "scharr-y": np.transpose(_SCHARR_X),
        "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
        "laplacian-8": [[1, 1, 1], [1, -8, 1], [1, 1, 1]],
        "vertical-edge": _EDGE_V,
        "horizontal-edge": np.transpose(_EDGE_V),
        "vertical-line": np.transpose(_LINE_H),
        "horizontal-line": _LINE_H,
        "box-blur": np.full((3, 3), 1 / 9),
        "gaussian-blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
        "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    }.items()
}
"""name -> (3, 3) float32 kernel, applied as a cross-correlation (see the module docstring)."""

PADDINGS = ("same", "valid", "reflect")
MODES = ("abs", "signed", "clip", "auto")


def get_kernel(kernel: str | ArrayLike) -> np.ndarray:
    """A kernel name (a key of :data:`KERNELS`) or a 2-D array -> (kh, kw) float32 array, both sides odd.

    >>> get_kernel("laplacian").tolist()
    [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]

    Raises:
        ValueError: an unknown name (the message lists the known ones), or an array that is not
            2-D with odd sides.
    """
    if isinstance(kernel, str):
        if kernel not in KERNELS:
            raise ValueError(
                f"unknown kernel {kernel!r}; expected one of: {', '.join(KERNELS)} (or a 2-D array of weights)."
            )
        return KERNELS[kernel].copy()
    array = np.asarray(kernel, np.float32)
    if array.ndim != 2 or array.shape[0] % 2 == 0 or array.shape[1] % 2 == 0:
        raise ValueError(f"a kernel array must be 2-D with odd sides such as (3, 3); received shape {array.shape}.")
    return array


def luminance(image: ArrayLike) -> np.ndarray:
    """(H, W, 3) RGB or (H, W) / (H, W, 1) gray, any real dtype -> (H, W) float32 luminance,
    in the image's own units (0..255 for uint8); Y = 0.299 R + 0.587 G + 0.114 B.

    Raises:
        ValueError: any other shape.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return image.astype(np.float32)
    if image.ndim == 3 and image.shape[2] == 3:
        return image.astype(np.float32) @ LUMA
    raise ValueError(f"expected an (H, W, 3) RGB or (H, W) gray image; received shape {image.shape}.")


def apply_kernel(image: ArrayLike, kernel: str | ArrayLike, padding: str = "same") -> np.ndarray:
    """Cross-correlate the luminance of ``image`` with ``kernel``.

    Args:
        image: (H, W, 3) RGB or (H, W) gray array (uint8 0..255 or float).
        kernel: a name from :data:`KERNELS` or a 2-D array with odd sides.
        padding: ``"same"``: (H, W) output, zeros outside the image (what ``Conv2D(padding="same")``
            and :class:`FixedConv2D` do); ``"valid"``: (H - kh + 1, W - kw + 1), only windows fully
            inside the image; ``"reflect"``: (H, W), the image mirrored at its border (no false
            edges along the frame, the better choice for a picture).

    Returns:
        (H', W') float32 response, in luminance units times the kernel's weights (a Sobel response
        on a uint8 image lies in [-1020, 1020]).

    Raises:
        ValueError: unknown kernel name or padding, a bad image shape, or an image smaller than the
            kernel with ``padding="valid"``.
    """
    import cv2

    weights = get_kernel(kernel)
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; received {padding!r}.")
    gray = luminance(image)
    kh, kw = weights.shape
    height, width = gray.shape
    if padding == "valid":
        if height < kh or width < kw:
            raise ValueError(
                f"image of {height}x{width} pixels is smaller than the {kh}x{kw} kernel "
                "(padding='valid'); use padding='same' or a larger image."
            )
        border = cv2.BORDER_REPLICATE  # never read: the border rows are cropped below
    else:
        border = cv2.BORDER_CONSTANT if padding == "same" else cv2.BORDER_REFLECT_101
    # cv2.filter2D computes the cross-correlation sum_ij K[i, j] * Y[y + i - ay, x + j - ax] with
    # the anchor (ay, ax) at the kernel's centre: the deep-learning convention.
    response = cv2.filter2D(gray, cv2.CV_32F, weights, borderType=border)
    if padding == "valid":
        response = response[kh // 2 : height - kh // 2, kw // 2 : width - kw // 2]
    return np.ascontiguousarray(response, np.float32)


def default_mode(kernel: str | ArrayLike) -> str:
    """The :func:`response_image` mode that suits ``kernel``: ``"clip"`` for kernels whose weights
    sum to 1 (blur, sharpen: the response is a picture), else ``"abs"`` (edge and line detectors).

    >>> default_mode("sobel-x"), default_mode("sharpen")
    ('abs', 'clip')
    """
    return "clip" if abs(float(get_kernel(kernel).sum()) - 1.0) < 1e-4 else "abs"


def response_image(response: ArrayLike, mode: str = "abs", saturate: float = 0.0) -> np.ndarray:
    """A kernel response as an (H, W, 3) uint8 gray picture.

    Modes, with ``peak`` = max |r| (or, with ``saturate`` = s > 0, the (100 - s)-th percentile of
    |r|, so that the strongest s percent of the pixels are drawn at full strength and a few
    extreme pixels do not leave the rest of the picture dark):
        ``"abs"``: 255 * |r| / peak, clipped: white where the kernel responds most, either sign;
        black where it does not respond.
        ``"signed"``: 128 + 127 * r / peak, clipped: mid-gray for no response, white for a strong
        positive response, black for a strong negative one (shows the edge's direction).
        ``"clip"``: r clipped to [0, 255]: for kernels that return a picture (blur, sharpen).
    An all-zero response gives black (``abs``) or mid-gray (``signed``).

    >>> import numpy as np
    >>> response_image(np.array([[-2.0, 0.0, 4.0]]), "signed")[0, :, 0].tolist()
    [64, 128, 255]
    >>> response_image(np.array([[-2.0, 0.0, 4.0]]), "abs")[0, :, 0].tolist()
    [128, 0, 255]

    Raises:
        ValueError: an unknown mode or a response that is not 2-D.
    """
    response = np.asarray(response, np.float32)
    if response.ndim != 2:
        raise ValueError(f"expected a 2-D response; received shape {response.shape}.")
    if mode not in ("abs", "signed", "clip"):
        raise ValueError(f"mode must be one of abs, signed, clip; received {mode!r}.")
    if not 0 <= saturate < 100:
        raise ValueError(f"saturate must be a percentage in [0, 100); received {saturate!r}.")
    if mode == "clip":
        gray = np.clip(np.rint(response), 0, 255)
    else:
        magnitude = np.abs(response)
        peak = (
            float(np.percentile(magnitude, 100 - saturate) if saturate else magnitude.max()) if response.size else 0.0
        )
        if peak <= 0 < saturate and response.size:  # most pixels are 0: fall back to the maximum
            peak = float(magnitude.max())
        scaled = np.clip(response / peak, -1, 1) if peak > 0 else np.zeros_like(response)
        gray = 255 * np.abs(scaled) if mode == "abs" else 128 + 127 * scaled
        gray = np.clip(np.rint(gray), 0, 255)
    return np.repeat(gray.astype(np.uint8)[:, :, None], 3, axis=2)


def filter_image(
    image: ArrayLike, kernel: str | ArrayLike, mode: str = "auto", padding: str = "reflect", saturate: float = 1.0
) -> np.ndarray:
    """``image`` -> (H, W, 3) uint8 picture of its response to ``kernel``: :func:`apply_kernel`
    then :func:`response_image`. ``mode="auto"`` picks :func:`default_mode`; ``padding`` as in
    :func:`apply_kernel` (``"reflect"`` draws no false edge along the frame); ``saturate``: the
    percentage of strongest responses drawn at full strength (0: scale by the maximum)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; received {mode!r}.")
    mode = default_mode(kernel) if mode == "auto" else mode
    return response_image(apply_kernel(image, kernel, padding), mode, saturate)
