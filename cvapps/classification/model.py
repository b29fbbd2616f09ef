"""The classifier model: a softmax head on the backbone's deepest level, and flip averaging."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from cvapps.nn.backbone import Backbone

# --- model -------------------------------------------------------------------------------------


def build_classifier(
    backbone: Backbone,
    num_classes: int,
    class_names: Iterable[str] | None = None,
    dropout: float = 0.0,
    level: str | None = None,
    head: str = "pool",
    settings: dict[str, Any] | None = None,
) -> keras.Model:
    """Backbone -> global average pool of ``level`` -> dropout -> dense softmax, or the classic
    family's own head.

    Args:
        backbone: a :class:`cvapps.nn.backbone.Backbone` (its input size is the model's).
        num_classes: number of classes (at least 2).
        class_names: names stored in the model; defaults to "0", "1", ...
        dropout: dropout rate before the dense layer (``head="pool"``).
        level: pyramid key to pool; default the deepest (P5; P2 for LeNet-5).
        settings: JSON values stored in the model's metadata (the ImageNet model's wnids, its weights' source).
        head: ``"pool"``, or ``"original"`` for a classic family's own classifier (LeNet-5's C5-F6,
            AlexNet's and VGG's two 4096 layers, ...; see :func:`cvapps.nn.architectures.classic_head`).

    Returns:
        A ``keras.Model``: (batch, S, S, 3) pixels in [0, 255] -> (batch, num_classes)
        probabilities.
    """
    import keras

    from cvapps.nn.layers import Metadata

    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer of at least 2, received {num_classes!r}.")
    class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class_names given for num_classes={num_classes}; they must match.")
    level = level or max(backbone.pyramid_outputs)  # the deepest level
    if level not in backbone.pyramid_outputs:
        raise ValueError(f"level must be one of {list(backbone.pyramid_outputs)}, received {level!r}.")
    if head not in ("pool", "original"):
        raise ValueError(f"head must be 'pool' or 'original', received {head!r}.")
    inputs = keras.Input(backbone.input_shape[1:], name="images")
    if head == "original":
        from cvapps.nn.architectures import ARCHITECTURES, classic_head

        if backbone.family not in ARCHITECTURES:
            raise ValueError(
                f"head='original' needs a classic family ({', '.join(ARCHITECTURES)}); the "
                f"{backbone.family!r} backbone has no head of its own. Use head='pool'."
            )
        if backbone.image_size is None and backbone.family in ("lenet5", "alexnet", "vgg16"):
            raise ValueError(
                f"the original {backbone.family} head flattens its input, so it needs a fixed "
                f"image_size; received None."
            )
        x = classic_head(backbone.family, backbone(inputs), num_classes)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs)[level])
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.Dense(num_classes, name="logits")(x)
    x = keras.layers.Softmax(name="probabilities")(x)
    outputs = Metadata(task="classify", class_names=class_names, settings=settings)(x)
    return keras.Model(inputs, outputs, name="classifier")


def with_flip_averaging(model: keras.Model) -> keras.Model:
    """The classifier averaged over each photo and its mirror image (test-time augmentation):
    p(x) = (f(x) + f(flip(x))) / 2, as airbench94 scores CIFAR-10. Same weights, twice the
    inference cost; the saved model does it everywhere (CLI, webcam, Python, ONNX).

    Args:
        model: a classifier from :func:`build_classifier` (ends in "probabilities" then metadata).

    Returns:
        A new ``keras.Model`` sharing ``model``'s weights; its metadata settings gain ``"tta": "flip"``.
    """
    import keras

    from cvapps.nn.layers import HorizontalFlip, Metadata

    meta = model.get_layer("cvapps_metadata")
    if meta.settings.get("tta"):
        raise ValueError("this classifier already averages over flips (its settings say tta='flip').")
    core = keras.Model(model.inputs, model.get_layer("probabilities").output, name="single_view")
    inputs = keras.Input(model.input_shape[1:], name="images")
    mean = keras.layers.Average(name="flip_average")([core(inputs), core(HorizontalFlip(name="mirror")(inputs))])
    outputs = Metadata(task="classify", class_names=meta.class_names, settings={**meta.settings, "tta": "flip"})(mean)
    return keras.Model(inputs, outputs, name="classifier")
