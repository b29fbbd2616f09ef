"""Gatys et al.'s method: optimise the pixels of one picture against the costs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cvapps.style.costs import PerceptualLoss, build_loss_network, perceptual_model_class

if TYPE_CHECKING:
    from cvapps.style.costs import LossNetwork

# --- the optimisation method (Gatys et al.) ----------------------------------------------------


def _image_model_class():
    import keras

    class ImageModel(perceptual_model_class()):
        """Its only weight is the generated image G; fitting it runs gradient descent on J(G)."""

        def __init__(self, start, loss, content):
            content = keras.ops.convert_to_tensor(content[None].astype(np.float32))
            super().__init__(loss, content, loss.network.features(content)[loss.network.content_level])
            self.pixels = self.add_weight(shape=start.shape, initializer="zeros", name="pixels")
            self.pixels.assign(start.astype(np.float32))

        def call(self, x, training=False):
            return keras.ops.clip(self.pixels, 0.0, 255.0)[None]

    return ImageModel


def optimize_image(
    content: np.ndarray,
    style_image: np.ndarray,
    steps: int = 200,
    learning_rate: float = 4.0,
    init: str = "content",
    loss_network: str | LossNetwork = "auto",
    content_weight: float = 1.0,
    style_weight: float = 10.0,
    tv_weight: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Gatys et al.: optimise the pixels of G with Adam so J(G) falls.

    Args:
        content: (H, W, 3) uint8 RGB content photo (use it at the size you want the result).
        style_image: (h, w, 3) uint8 RGB painting.
        steps: Adam steps.
        learning_rate: Adam step size, in pixel units ([0, 255]).
        init: ``"content"`` (start from the photo) or ``"noise"`` (the photo plus strong noise).
        loss_network: a :class:`LossNetwork` or a name for :func:`build_loss_network`.

    Returns:
        (image, history): (H, W, 3) uint8 RGB, and dict name -> list of per-step values of
        ``loss`` (the total J), ``content_loss``, ``style_loss``, ``tv_loss``.
    """
    from cvapps._keras import import_keras

    keras = import_keras()
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', received {init!r}.")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, received {steps!r}.")
    network = build_loss_network(loss_network)
    loss = PerceptualLoss(network, style_image, content_weight, style_weight, tv_weight)
    content = np.asarray(content, np.float32)
    start = content
    if init == "noise":
        rng = np.random.default_rng(seed)
        start = np.clip(0.4 * content + 0.6 * rng.uniform(0, 255, content.shape), 0, 255)
    model = _image_model_class()(start, loss, content)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=False)
    # One step per "epoch", so the logged costs are each step's own (metrics reset every epoch).
    model.fit(np.zeros((1, 1), np.float32), batch_size=1, epochs=steps, verbose=0, callbacks=[_step_history_class()()])
    history = model._step_history  # filled by the StepHistory callback
    image = np.clip(np.asarray(model.pixels.numpy()), 0, 255).round().astype(np.uint8)
    return image, history


def _step_history_class():
    import keras

    class StepHistory(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.model._step_history = {}

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                self.model._step_history.setdefault(key, []).append(float(value))

    return StepHistory
