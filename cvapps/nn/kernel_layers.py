""":class:`FixedConv2D`: hand-made kernels (:data:`cvapps.core.kernels.KERNELS`) as a Keras layer.

Pure ``keras.ops``, registered for ``safe_mode=True`` loading (:func:`cvapps.models.load_model`
imports this module). Kept apart from :mod:`cvapps.core.kernels` so that the numpy path there never
imports Keras.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from numpy.typing import ArrayLike

from cvapps.core.kernels import LUMA, PADDINGS, get_kernel


@keras.saving.register_keras_serializable(package="cvapps")
class FixedConv2D(keras.layers.Layer):
    """Classic kernels as a non-trainable convolution on the luminance of the input.

    ``(batch, H, W, 3)`` RGB (or ``(batch, H, W, 1)`` gray) -> ``(batch, H', W', K)``: channel k is
    the cross-correlation of ``Y = 0.299 R + 0.587 G + 0.114 B`` with ``kernels[k]``, exactly
    :func:`cvapps.core.kernels.apply_kernel` (``padding="same"``: zeros outside the image, or
    ``"valid"``). One luminance input rather than one filter per colour channel: an edge detector
    asks where brightness changes, and this is what the hand-made kernels were designed for.
    The weights are constants: training never changes them (``trainable_weights`` is empty), so
    the layer is a baseline a learned first layer can be compared with.

    Args:
        kernels: names from :data:`cvapps.core.kernels.KERNELS`, or 2-D arrays (nested lists) of
            weights; all the same odd shape.
        padding: ``"same"`` or ``"valid"``.

    >>> import numpy as np
    >>> image = np.arange(1, 17, dtype="float32").reshape(1, 4, 4, 1)
    >>> layer = FixedConv2D(["sobel-x", "sobel-y"], padding="valid")
    >>> np.asarray(layer(image))[0].tolist()    # sobel-y: (bottom row - top row) = 8, times 4
    [[[8.0, 32.0], [8.0, 32.0]], [[8.0, 32.0], [8.0, 32.0]]]
    """

    def __init__(
        self, kernels: Sequence[str | ArrayLike] = ("sobel-x", "sobel-y"), padding: str = "same", **kwargs: Any
    ):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if isinstance(kernels, str) or len(kernels) == 0:
            raise ValueError(f"kernels must be a non-empty list of names or 2-D arrays; received {kernels!r}.")
        if padding not in PADDINGS[:2]:
            raise ValueError(f"padding must be 'same' or 'valid'; received {padding!r}.")
        arrays = [get_kernel(k) for k in kernels]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"all kernels must have one shape; received shapes {sorted(shapes)}.")
        # Names stay names in the config; arrays become nested lists (JSON).
        self.kernels = [k if isinstance(k, str) else np.asarray(k, np.float32).tolist() for k in kernels]
        self.padding = padding
        # (kh, kw, 1 input channel, K output channels): the Conv2D kernel layout.
        self._values = np.stack(arrays, axis=-1)[:, :, None, :]

    @property
    def names(self) -> list[str]:
        """A label per output channel: the kernel's name, or ``"custom"`` for an array."""
        return [k if isinstance(k, str) else "custom" for k in self.kernels]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = input_shape[-1]
        if channels not in (1, 3):
            raise ValueError(
                f"FixedConv2D takes RGB (3 channels) or gray (1 channel) images; received {channels} channels."
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=self._values.shape,
            trainable=False,
            initializer=keras.initializers.Constant(self._values),
        )

    def call(self, inputs: Any) -> Any:
        ops = keras.ops
        x = ops.cast(inputs, self.compute_dtype)
        if x.shape[-1] == 3:
            # Y = 0.299 R + 0.587 G + 0.114 B, as one (3 -> 1) matrix product per pixel.
            x = ops.matmul(x, ops.convert_to_tensor(LUMA.reshape(3, 1), dtype=self.compute_dtype))
        # keras.ops.conv is a cross-correlation (no kernel flip), like cv2.filter2D.
        return ops.conv(x, self.kernel, strides=1, padding=self.padding)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        batch, height, width = input_shape[:3]
        if self.padding == "valid":
            kh, kw = self._values.shape[:2]
            height = None if height is None else height - kh + 1
            width = None if width is None else width - kw + 1
        return (batch, height, width, self._values.shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kernels": self.kernels, "padding": self.padding}
