"""Image classification: a softmax head on the shared backbone's P5.

Python:

    >>> from cvapps import classify
    >>> [result] = classify("cat.jpg", model="cifar10", top_k=3)      # doctest: +SKIP
    >>> result.top()                                                  # doctest: +SKIP
    ('cat', 0.91)

CLI:

    cvapps classify photo.jpg --model cifar10 --top-k 3
    cvapps train classify ../shared/data/cifar10 --output cifar10.keras --epochs 26
    cvapps eval classify ../shared/data/cifar10/test --model cifar10 --json r.json

Training recipe (after Page's "How to train your ResNet" and airbench): flip and translate
augmentation, label smoothing, SGD with Nesterov momentum and weight decay, and a one-cycle
learning rate (linear warm-up, then linear decay to zero). Transfer learning freezes an
ImageNet backbone, trains the new head, then optionally fine-tunes the whole network at a
tenth of the learning rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvapps.models import ModelInfo
from cvapps.nn.training import TrainResult, read_history  # noqa: F401  (the result type; read_history as before)
from cvapps.runtime import open_model

DEFAULT_MODEL = "imagenet"  # EfficientNet-Lite0, ImageNet-1k (cvapps.imagenet): built into the cache on first use
UNKNOWN = "unknown"  # the label when the top probability is below min_confidence


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Classification:
    """Top-k classes of one image, most probable first.

    Attributes:
        class_ids: (k,) int class indices.
        class_names: (k,) names.
        scores: (k,) probabilities in [0, 1], descending.
        source: where the image came from (path or "array"), for reports.
        unknown: True when the top probability was below the caller's ``min_confidence``: the
            image's :attr:`label` is then ``"unknown"`` ("none of these"); the top-k stay as computed.
    """

    class_ids: tuple
    class_names: tuple
    scores: tuple
    source: str = "array"
    unknown: bool = False

    def __post_init__(self):
        if not (len(self.class_ids) == len(self.class_names) == len(self.scores)):
            raise ValueError("class_ids, class_names and scores must have the same length.")
        if any(a < b for a, b in zip(self.scores, self.scores[1:])):
            raise ValueError("scores must be in descending order.")

    @property
    def label(self) -> str:
        """The answer: the most probable class name, or ``"unknown"`` when below ``min_confidence``."""
        return UNKNOWN if self.unknown else self.class_names[0]

    def top(self):
        """(label, probability) of the most probable class; the label is ``"unknown"`` when it was
        below ``min_confidence``."""
        return self.label, self.scores[0]

    def to_dict(self):
        return [
            {"class_id": int(i), "class_name": n, "score": round(float(s), 6)}
            for i, n, s in zip(self.class_ids, self.class_names, self.scores)
        ]


# --- model -------------------------------------------------------------------------------------


def build_classifier(backbone, num_classes, class_names=None, dropout=0.0, level=None, head="pool"):
    """Backbone -> global average pool of ``level`` -> dropout -> dense softmax, or the classic
    family's own head.

    Args:
        backbone: a :class:`cvapps.nn.backbone.Backbone` (its input size is the model's).
        num_classes: number of classes (at least 2).
        class_names: names stored in the model; defaults to "0", "1", ...
        dropout: dropout rate before the dense layer (``head="pool"``).
        level: pyramid key to pool; default the deepest (P5; P2 for LeNet-5).
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
    outputs = Metadata(task="classify", class_names=class_names)(x)
    return keras.Model(inputs, outputs, name="classifier")


def with_flip_averaging(model):
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


# --- training ----------------------------------------------------------------------------------


def train_classifier(
    data,
    output,
    *,
    validation=None,
    val_fraction=0.05,
    family="compact",
    size="s",
    alpha=0.35,
    image_size=64,
    weights=None,
    epochs=20,
    fine_tune_epochs=0,
    fine_tune_from="P4",
    freeze_backbone=False,
    batch_size=128,
    optimizer="sgd",
    learning_rate=0.2,
    fine_tune_learning_rate=None,
    weight_decay=5e-4,
    label_smoothing=0.1,
    flip=True,
    translate=0.125,
    dropout=0.0,
    head=None,
    tta=False,
    patience=None,
    checkpoint_dir=None,
    seed=0,
    verbose=1,
):
    """Train a classifier on a folder-per-class data set or an ``.npz``; save it to ``output``.

    Args:
        data: folder (``<class>/*`` or ``train/<class>/*``) or keras.datasets-style ``.npz``.
        output: where the final ``.keras`` model is written (atomically).
        validation: a validation folder; default: ``DATA/val`` if present, else ``val_fraction``
            of the training images carved out (stratified).
        family, size, alpha, weights: backbone (see :func:`cvapps.nn.backbone.build_backbone`);
            ``weights="imagenet"`` with ``family="mobilenetv2"`` for transfer learning.
        epochs: epochs of the main phase (head only when ``freeze_backbone``).
        fine_tune_epochs: after the main phase, epochs fine-tuning the backbone's top levels
            (``fine_tune_from`` and deeper; batch norm stays frozen) with the head, at lr / 10.
        checkpoint_dir: where the resumable state lives; rerunning the same command resumes
            from the last finished epoch (and skips finished phases). Default:
            ``runs/<output stem>``.
        optimizer: ``"sgd"`` (Nesterov momentum 0.9; training from scratch) or ``"adam"``
            (AdamW; transfer learning on small data, e.g. learning_rate=1e-3).
        learning_rate: peak of the one-cycle schedule of the main phase.
        fine_tune_learning_rate: peak for the fine-tuning phase; default learning_rate / 10.
        head: ``"pool"`` or ``"original"`` (see :func:`build_classifier`); default ``"original"`` for
            the classic families (``family="lenet5"`` trains LeNet-5 itself), ``"pool"`` otherwise.
        tta: save the model averaged over each photo and its mirror (:func:`with_flip_averaging`);
            rerunning a finished run with ``tta=True`` only re-saves it.
        patience: stop when validation accuracy has not improved for this many epochs.

    Returns:
        :class:`TrainResult`.
    """
    from cvapps._keras import import_keras

    keras = import_keras()
    from cvapps.datasets import (
        ClassificationBatches,
        load_class_folders,
        load_classification,
        split_off,
    )
    from cvapps.models import keras_output_path, save_model
    from cvapps.nn.backbone import build_backbone, train_top_levels
    from cvapps.nn.layers import OneCycle
    from cvapps.nn.training import fit_resumable, run_folder

    started = time.time()
    output = keras_output_path(output)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, received {epochs}.")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', received {optimizer!r}.")
    train = load_classification(data, image_size, "train")
    if len(train) == 0:
        raise ValueError(f"{data}: no readable training images.")
    skipped = list(train.skipped)
    val = load_class_folders(validation, image_size) if validation else load_classification(data, image_size, "val")
    if val is None:
        train, val = split_off(train, val_fraction, seed)
    elif tuple(val.class_names) != tuple(train.class_names):
        raise ValueError(f"validation classes {val.class_names} differ from training classes {train.class_names}.")

    keras.utils.set_random_seed(seed)
    backbone = build_backbone(family=family, size=size, alpha=alpha, image_size=image_size, weights=weights)
    from cvapps.nn.architectures import ARCHITECTURES

    head = head or ("original" if family in ARCHITECTURES else "pool")
    model = build_classifier(backbone, len(train.class_names), train.class_names, dropout=dropout, head=head)
    train_batches = ClassificationBatches(train, batch_size, augment=True, flip=flip, translate=translate, seed=seed)
    val_batches = ClassificationBatches(val, batch_size)

    run_dir = run_folder(checkpoint_dir, output)
    history, reused = {}, []
    phases = [("main", epochs, learning_rate)]
    if fine_tune_epochs:
        phases.append(("fine_tune", fine_tune_epochs, fine_tune_learning_rate or learning_rate / 10))
    for phase, phase_epochs, peak in phases:
        if phase == "fine_tune":
            train_top_levels(backbone, fine_tune_from)
        else:
            backbone.trainable = not freeze_backbone
        steps = phase_epochs * len(train_batches)
        if optimizer == "sgd":
            update = keras.optimizers.SGD(OneCycle(peak, steps), momentum=0.9, nesterov=True, weight_decay=weight_decay)
        else:
            update = keras.optimizers.AdamW(OneCycle(peak, steps), weight_decay=weight_decay)
        update.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
        model.compile(
            optimizer=update,
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        callbacks = []
        if patience:
            callbacks.append(
                keras.callbacks.EarlyStopping("val_accuracy", patience=patience, restore_best_weights=True)
            )
        done = fit_resumable(
            model,
            train_batches,
            run_dir,
            epochs=phase_epochs,
            phase=phase,
            validation=val_batches,
            callbacks=callbacks,
            verbose=verbose,
        )
        history[phase] = done.history
        if done.reused:
            reused.append(phase)
    backbone.trainable = True
    save_model(with_flip_averaging(model) if tta else model, output)
    return TrainResult(output, history, time.time() - started, skipped, tuple(reused))


# --- evaluation --------------------------------------------------------------------------------


def evaluate_classifier(model, data, batch_size=256, progress=None):
    """Top-1/top-5 accuracy, per-class precision and recall, and the confusion matrix.

    Args:
        model: a loaded classifier (Keras model, name or path; evaluation runs in Keras).
        data: a :class:`cvapps.datasets.ClassificationData` whose class names all appear in the
            model (matched by name, so folder order does not matter).
        progress: optional ``progress(iterable, total) -> iterable`` around the batches.

    Returns:
        dict with ``top1``, ``top5`` (fractions), ``per_class`` (name -> precision, recall,
        support) and ``confusion`` (rows: true class, columns: predicted, in model order).
    """
    model = open_model(model, task="classify", runtime="keras")
    info = model.info
    to_model = data_to_model_classes(data.class_names, info)
    truth = to_model[data.labels]
    probabilities = predict_probabilities(model, data.images, batch_size, progress)
    return classification_metrics(probabilities, truth, info.class_names)


def data_to_model_classes(data_classes, info: ModelInfo) -> np.ndarray:
    """Data class index -> model class index, matching folder names to the model's class names, or
    to its WordNet ids when it has them (an ImageNet model scored on ``val/n01440764/...`` folders).

    >>> info = ModelInfo("classify", ("tench", "goldfish"), 224, "m", {"wnids": ["n01440764", "n01443537"]})
    >>> data_to_model_classes(("n01443537",), info).tolist(), data_to_model_classes(("tench",), info).tolist()
    ([1], [0])

    Raises:
        ValueError: a data class is neither a class name nor a wnid of the model.
    """
    names = list(info.class_names)
    wnids = list(info.settings.get("wnids", ()))
    indices = []
    for name in data_classes:
        if name in names:
            indices.append(names.index(name))
        elif name in wnids:
            indices.append(wnids.index(name))
        else:
            shown = names if len(names) <= 20 else names[:20] + ["..."]
            hint = " or its WordNet ids (n01440764, ...)" if wnids else ""
            raise ValueError(
                f"class {name!r} in the data is not among the model's {len(names)} classes{hint}: "
                f"{shown}. Name the folders after the model's classes."
            )
    return np.asarray(indices, np.int64)


def classification_metrics(probabilities, truth, class_names):
    """Metrics from (N, C) probabilities and (N,) true indices.

    top-k accuracy = mean over images of [truth is among the k largest probabilities].
    precision_c = TP_c / (TP_c + FP_c); recall_c = TP_c / (TP_c + FN_c); 0 when undefined.

    ``per_class`` and ``confusion`` cover the classes present in ``truth`` when they are fewer than
    the model's (1000 ImageNet classes scored on 10 imagenette folders): the confusion then has a last
    column ``"other"`` for predictions outside them, and ``confusion_classes`` names its rows.

    >>> m = classification_metrics(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]), np.array([0, 1]), ["a", "b", "c"])
    >>> m["top1"], m["confusion_classes"], m["confusion"]
    (0.5, ['a', 'b'], [[1, 0, 0], [0, 0, 1]])
    """
    num_classes = probabilities.shape[1]
    ranked = np.argsort(-probabilities, axis=1)
    hits = ranked == truth[:, None]  # (N, C)
    predicted = ranked[:, 0]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    tp = np.diag(confusion)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros(num_classes), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros(num_classes), where=confusion.sum(1) > 0)
    present = np.unique(truth)
    shown = present if len(present) < num_classes else np.arange(num_classes)
    table = confusion[shown][:, shown]
    if len(shown) < num_classes:  # predictions outside the present classes, in one "other" column
        table = np.concatenate([table, confusion[shown].sum(1, keepdims=True) - table.sum(1, keepdims=True)], axis=1)
    return {
        "top1": float(hits[:, :1].any(1).mean()),
        "top5": float(hits[:, : min(5, num_classes)].any(1).mean()),
        "per_class": {
            class_names[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "support": int(confusion[i].sum()),
            }
            for i in shown
        },
        "confusion_classes": [class_names[i] for i in shown],
        "confusion": table.tolist(),
    }


# --- inference ---------------------------------------------------------------------------------


def predict_probabilities(model, images, batch_size=64, progress=None):
    """(N, S, S, 3) pixels -> (N, C) probabilities, ``batch_size`` images per call.

    ``model`` is an opened model (:func:`cvapps.runtime.open_model`: onnxruntime, or Keras's
    compiled predict function) or a ``keras.Model``.
    """
    model = open_model(model)
    starts = range(0, len(images), batch_size)
    starts = progress(starts, len(starts)) if progress else starts
    outputs = [model.predict(images[i : i + batch_size]) for i in starts]
    return np.concatenate(outputs) if outputs else np.zeros((0, len(model.info.class_names)), np.float32)


def prepare(images, info: ModelInfo):
    """Images (paths, arrays or a mix) -> (N, S, S, 3) uint8 batch at the model's input size."""
    from cvapps.core.sources import read_image, resize_square

    if isinstance(images, (str, Path, np.ndarray)) and not (isinstance(images, np.ndarray) and images.ndim == 4):
        images = [images]
    batch, sources = [], []
    for image in images:
        source = str(image) if isinstance(image, (str, Path)) else "array"
        array = read_image(image) if isinstance(image, (str, Path)) else _check_array(image)
        batch.append(resize_square(array, info.image_size))
        sources.append(source)
    return np.stack(batch), sources


def _check_array(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image array must have shape (H, W, 3) RGB; received shape {image.shape}.")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def top_k_results(probabilities, class_names, top_k, sources, min_confidence=0.0):
    """(N, C) probabilities -> N :class:`Classification` of the ``top_k`` classes; an image whose top
    probability is below ``min_confidence`` is marked ``unknown`` (its label is ``"unknown"``).

    >>> [r] = top_k_results(np.array([[0.3, 0.45, 0.25]]), ["a", "b", "c"], 2, ["x.jpg"], min_confidence=0.5)
    >>> r.class_names, r.label, r.top()
    (('b', 'a'), 'unknown', ('unknown', 0.45))
    """
    check_min_confidence(min_confidence)
    k = min(top_k, probabilities.shape[1])
    ranked = np.argsort(-probabilities, axis=1)[:, :k]
    return [
        Classification(
            tuple(int(i) for i in row),
            tuple(class_names[i] for i in row),
            tuple(float(probabilities[n, i]) for i in row),
            source,
            unknown=bool(probabilities[n, row[0]] < min_confidence),
        )
        for n, (row, source) in enumerate(zip(ranked, sources))
    ]


def check_min_confidence(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"min_confidence must be a probability in [0, 1], received {value!r}; e.g. 0.3 labels "
            "images whose top class scores below 30% as 'unknown'."
        )


def group_classes(probabilities, class_names):
    """Fold ImageNet's fine classes into readable parents ("dog", "cat", "car", ...), see
    :func:`cvapps.imagenet.fold_groups`; returns (probabilities, class names)."""
    from cvapps.imagenet import fold_groups

    return fold_groups(probabilities, class_names)


def classify(
    images,
    model=None,
    *,
    top_k: int = 5,
    min_confidence: float = 0.0,
    group: bool = False,
    batch_size: int = 32,
    runtime: str = "auto",
) -> list[Classification]:
    """Classify images with a cvapps classifier.

    Args:
        images: a path, an (H, W, 3) RGB array, an (N, H, W, 3) batch, or a list of paths/arrays.
        model: a shipped model name, a ``.keras``/``.onnx`` path, a ``keras.Model`` or an opened
            model (:func:`cvapps.runtime.open_model`); default ``"imagenet"`` (EfficientNet-Lite0,
            the 1000 ImageNet classes; built into the cache on first use). Open it once and
            pass it in when classifying many times.
        top_k: how many classes to return per image (at least 1).
        batch_size: images per forward pass.
        runtime: ``"auto"`` (onnxruntime when the model has a matching ``.onnx``), ``"onnx"``
            or ``"keras"``.
        min_confidence: "none of these": an image whose top probability is below this gets the
            label ``"unknown"`` (:attr:`Classification.label`); 0 (default) never.
        group: fold ImageNet's fine classes into parents ("English springer" -> "dog"; imagenet
            model only; see :data:`cvapps.imagenet.GROUP_RANGES`) before taking the top k.

    Returns:
        list of :class:`Classification`, one per image, in input order.
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, received {top_k!r}.")
    check_min_confidence(min_confidence)
    model = open_model(DEFAULT_MODEL if model is None else model, task="classify", runtime=runtime)
    info = model.info
    batch, sources = prepare(images, info)
    probabilities = predict_probabilities(model, batch, batch_size)
    names = info.class_names
    if group:
        probabilities, names = group_classes(probabilities, names)
    return top_k_results(probabilities, names, top_k, sources, min_confidence)
