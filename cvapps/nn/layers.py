"""Keras layers shared by the apps. Registered for ``safe_mode=True`` loading."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import keras

from cvapps.nn import TASKS


@keras.saving.register_keras_serializable(package="cvapps")
class Metadata(keras.layers.Layer):
    """Identity layer carrying the task and class names inside a saved model.

    Every cvapps model ends in one, named ``cvapps_metadata``; :func:`cvapps.models.model_info`
    reads it back. ``settings`` holds JSON values an app's post-processing needs (a detector's
    anchors and strides, say), so they travel inside the ``.keras`` and the exported ``.onnx``.

    >>> import numpy as np
    >>> layer = Metadata(task="classify", class_names=["cat", "dog"])
    >>> tuple(layer(np.ones((1, 2), "float32")).shape)
    (1, 2)
    """

    def __init__(
        self,
        task: str = "classify",
        class_names: Iterable[str] = (),
        settings: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("name", "cvapps_metadata")
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, received {task!r}.")
        self.task = task
        self.class_names = [str(name) for name in class_names]
        self.settings = dict(settings or {})  # JSON values the app's post-processing needs (anchors, ...)

    def call(self, inputs: Any) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "task": self.task, "class_names": self.class_names, "settings": self.settings}


@keras.saving.register_keras_serializable(package="cvapps")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle learning rate: linear from ``start * peak`` up to ``peak`` over the first
    ``warmup`` fraction of ``total_steps``, then linear down to 0 at ``total_steps``.

    >>> schedule = OneCycle(peak=1.0, total_steps=10, warmup=0.2, start=0.1)
    >>> [round(float(schedule(s)), 2) for s in (0, 1, 2, 6, 10)]
    [0.1, 0.55, 1.0, 0.5, 0.0]
    """

    def __init__(self, peak: float, total_steps: int, warmup: float = 0.2, start: float = 0.1):
        self.peak, self.total_steps, self.warmup, self.start = peak, total_steps, warmup, start

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        up = max(1.0, self.total_steps * self.warmup)
        rising = self.peak * (self.start + (1 - self.start) * step / up)
        falling = self.peak * (self.total_steps - step) / max(1.0, self.total_steps - up)
        return keras.ops.maximum(0.0, keras.ops.where(step < up, rising, falling))

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup": self.warmup, "start": self.start}


@keras.saving.register_keras_serializable(package="cvapps")
class LocalResponseNormalization(keras.layers.Layer):
    """AlexNet's local response normalisation across channels (Krizhevsky et al. 2012, sec. 3.3):

        b[c] = a[c] / (k + alpha * sum(a[c']^2 for c' within depth_radius of c)) ** beta

    with the paper's n = 5 neighbouring channels (depth_radius 2), k = 2, alpha = 1e-4, beta = 0.75.
    No weights. (``tf.nn.local_response_normalization`` divides alpha differently; this is the
    paper's formula.)

    >>> import numpy as np
    >>> x = np.zeros((1, 1, 1, 3), "float32"); x[..., 1] = 10.0
    >>> # channel 1: 10 / (2 + 1e-4 * 100) ** 0.75 = 10 / 2.01 ** 0.75 = 5.92...
    >>> round(float(LocalResponseNormalization()(x)[0, 0, 0, 1]), 4)
    5.9238
    """

    def __init__(
        self, depth_radius: int = 2, bias: float = 2.0, alpha: float = 1e-4, beta: float = 0.75, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.depth_radius, self.bias, self.alpha, self.beta = int(depth_radius), float(bias), float(alpha), float(beta)

    def call(self, inputs: Any) -> Any:
        squares = keras.ops.square(inputs)
        r = self.depth_radius
        padded = keras.ops.pad(squares, [[0, 0], [0, 0], [0, 0], [r, r]])
        channels = inputs.shape[-1]
        window = sum(padded[..., i : i + channels] for i in range(2 * r + 1))
        return inputs / keras.ops.power(self.bias + self.alpha * window, self.beta)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "depth_radius": self.depth_radius,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
        }


@keras.saving.register_keras_serializable(package="cvapps")
class Luminance(keras.layers.Layer):
    """RGB -> one gray channel, Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601). No weights.

    >>> import numpy as np
    >>> # 0.299 * 100 + 0.587 * 200 + 0.114 * 50 = 29.9 + 117.4 + 5.7 = 153.0
    >>> round(float(Luminance()(np.array([[[[100, 200, 50]]]], "float32"))[0, 0, 0, 0]), 3)
    153.0
    """

    def call(self, inputs: Any) -> Any:
        weights = keras.ops.convert_to_tensor([0.299, 0.587, 0.114], dtype=inputs.dtype)
        return keras.ops.sum(inputs * weights, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], 1)


@keras.saving.register_keras_serializable(package="cvapps")
class GroupedConv2D(keras.layers.Conv2D):
    """``Conv2D(groups=g)`` computed as g ordinary convolutions, each on c_in / g input channels
    making c_out / g outputs, concatenated: AlexNet's two GPUs, ResNeXt's cardinality. Same weights
    and parameters, (f * f * c_in / g + 1) * c_out. TensorFlow runs Keras's own grouped convolution
    on CPU only under XLA, which ONNX export cannot convert; this form exports.

    >>> import numpy as np
    >>> layer = GroupedConv2D(4, 3, groups=2, padding="same")
    >>> tuple(layer(np.ones((1, 5, 5, 6), "float32")).shape), layer.count_params()   # (3*3*3 + 1) * 4 = 112
    ((1, 5, 5, 4), 112)
    """

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        parts = zip(keras.ops.split(inputs, self.groups, axis=-1), keras.ops.split(kernel, self.groups, axis=-1))
        return keras.ops.concatenate(
            [
                keras.ops.conv(
                    x,
                    k,
                    strides=list(self.strides),
                    padding=self.padding,
                    dilation_rate=self.dilation_rate,
                    data_format=self.data_format,
                )
                for x, k in parts
            ],
            axis=-1,
        )


@keras.saving.register_keras_serializable(package="cvapps")
class HorizontalFlip(keras.layers.Layer):
    """Mirror images left to right: (batch, H, W, C) -> the same with the width axis reversed.

    >>> import numpy as np
    >>> np.asarray(HorizontalFlip()(np.arange(3, dtype="float32").reshape(1, 1, 3, 1)))[0, 0, :, 0].tolist()
    [2.0, 1.0, 0.0]
    """

    def call(self, inputs: Any) -> Any:
        return keras.ops.flip(inputs, axis=2)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


@keras.saving.register_keras_serializable(package="cvapps")
class GELU(keras.layers.Layer):
    """The exact GELU, x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), written with ``erf`` so that
    it exports to ONNX (TensorFlow's own gelu uses erfc, which ONNX lacks).

    >>> import numpy as np
    >>> # 0.5 * 1 * (1 + erf(1 / sqrt(2))) = 0.5 * (1 + 0.682689...) = 0.841345
    >>> round(float(GELU()(np.array([1.0], "float32"))[0]), 6)
    0.841345
    """

    def call(self, inputs: Any) -> Any:
        return 0.5 * inputs * (1.0 + keras.ops.erf(inputs * 0.7071067811865476))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape
