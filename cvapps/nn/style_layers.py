"""Layers of the style-transfer networks, pure Keras and registered for ``safe_mode=True`` loading."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="cvapps")
class InstanceNormalization(keras.layers.Layer):
    """Instance normalisation (Ulyanov et al. 2016): each image and channel normalised over H, W.

    y[b, h, w, c] = gamma[c] * (x[b, h, w, c] - mu[b, c]) / sqrt(var[b, c] + epsilon) + beta[c],
    with mu, var the mean and variance of x[b, :, :, c]. Unlike batch norm it behaves the same in
    training and inference, and it removes each image's contrast, which style transfer wants.

    >>> import numpy as np
    >>> x = np.array([1.0, 3.0], "float32").reshape(1, 1, 2, 1)   # mean 2, variance 1
    >>> np.round(np.asarray(InstanceNormalization(epsilon=0.0)(x)).ravel(), 3).tolist()
    [-1.0, 1.0]
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs: Any):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, x: Any) -> Any:
        ops = keras.ops
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        centred = x - mean
        variance = ops.mean(ops.square(centred), axis=(1, 2), keepdims=True)
        return centred * ops.rsqrt(variance + self.epsilon) * self.gamma + self.beta

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}
