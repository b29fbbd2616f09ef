"""Object detection, YOLO style: the result type, the model, its loss, training, ``detect()``
and the COCO-style evaluation metric.

    >>> import numpy as np
    >>> from cvapps.detection import Detections, mean_average_precision
    >>> found = Detections(xyxy=[[10, 10, 50, 50], [60, 60, 90, 90]], confidence=[0.9, 0.4],
    ...                    class_id=[0, 1], class_names=("person", "dog"))
    >>> len(found), found.class_name
    (2, ['person', 'dog'])
    >>> found[found.confidence > 0.5].class_name          # boolean-mask indexing
    ['person']
    >>> truth = [(np.array([[10, 10, 50, 50]], np.float32), np.array([0]))]
    >>> metrics = mean_average_precision([found], truth, num_classes=2)
    >>> metrics["map50"], metrics["per_class"][0]["ap50"]
    (1.0, 1.0)

With a trained model (``cvapps train detect`` or a shipped one)::

    from cvapps.detection import detect
    [found] = detect("street.jpg", model="person", confidence_threshold=0.3)
    found.xyxy, found.confidence, found.class_name

Boxes are xyxy pixels of the original image (see :mod:`cvapps.core.boxes` for other formats).

The model (YOLOv5-style, anchor based): the shared backbone's P3-P5, an FPN top-down and PAN
bottom-up neck, and a 1x1 head per level predicting, for every cell and anchor, box offsets
(t_x, t_y, t_w, t_h), an objectness logit and one logit per class. The model outputs these raw
values, (batch, slots, 5 + num_classes); decoding (:func:`cvapps.core.boxes.decode`) and NMS happen
outside it, the same for the Keras and ONNX runtimes. Training targets are assigned in NumPy
(:func:`assign_targets`), so the data path needs no TensorFlow; the loss is pure ``keras.ops``.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvapps.core.boxes import box_iou

COCO_IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)  # 0.50, 0.55, ..., 0.95
LEVELS = ("P3", "P4", "P5")
STRIDES = (8, 16, 32)
ANCHOR_RATIO_LIMIT = 4.0  # a truth box is assigned to anchors within 4x of its width and height


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detections:
    """Detections in one image, in the one internal box format.

    Attributes:
        xyxy: (N, 4) float32 boxes, x1 <= x2 and y1 <= y2, pixels of the original image.
        confidence: (N,) float32 scores in [0, 1].
        class_id: (N,) int64 indices into ``class_names``.
        class_names: the model's class names.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: tuple = ()

    def __post_init__(self):
        xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        confidence = np.asarray(self.confidence, np.float32).reshape(-1)
        class_id = np.asarray(self.class_id).reshape(-1)
        if not len(xyxy) == len(confidence) == len(class_id):
            raise ValueError(
                f"Detections needs as many boxes as confidences and class ids; received "
                f"{len(xyxy)}, {len(confidence)} and {len(class_id)}."
            )
        if len(class_id) and not np.all(np.equal(np.mod(class_id, 1), 0)):
            raise ValueError(f"class_id must hold integers; received {class_id[:5]}.")
        class_id = class_id.astype(np.int64)
        if not np.all(np.isfinite(xyxy)) or np.any(xyxy[:, 2:] < xyxy[:, :2]):
            raise ValueError(
                "boxes must be finite xyxy with x1 <= x2 and y1 <= y2; convert with cvapps.core.boxes.to_xyxy."
            )
        if np.any((confidence < 0) | (confidence > 1)):
            raise ValueError("confidence must be in [0, 1].")
        if self.class_names and len(class_id) and (class_id.min() < 0 or class_id.max() >= len(self.class_names)):
            raise ValueError(f"class_id values must index the {len(self.class_names)} class_names.")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @classmethod
    def empty(cls, class_names=()):
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), class_names)

    def __len__(self):
        return len(self.xyxy)

    def __getitem__(self, index):
        """Select detections by boolean mask, integer array or slice; returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.class_names)

    @property
    def class_name(self):
        """Name of each detection's class (``str(class_id)`` when the model has no names)."""
        return [self.class_names[i] if self.class_names else str(i) for i in self.class_id]

    def to_dict(self):
        """One JSON-ready record per detection."""
        return [
            {
                "box": [round(float(v), 2) for v in box],
                "confidence": round(float(c), 6),
                "class_id": int(i),
                "class_name": n,
            }
            for box, c, i, n in zip(self.xyxy, self.confidence, self.class_id, self.class_name)
        ]


# --- model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotGeometry:
    """Where each prediction slot sits: slot index = level offset + (row * columns + column) * A + a.

    Attributes:
        grid: (S, 2) float32 cell (column, row) of each slot.
        anchors: (S, 2) float32 anchor (width, height) in pixels.
        strides: (S, 1) float32 pixels per cell.
        offsets: start slot of each level.
        shapes: (rows, columns) of each level.
        level_anchors: (levels, A, 2) anchors as given.
        level_strides: stride of each level.
    """

    grid: np.ndarray
    anchors: np.ndarray
    strides: np.ndarray
    offsets: tuple
    shapes: tuple
    level_anchors: np.ndarray
    level_strides: tuple

    @classmethod
    def build(cls, image_size, anchors, strides=STRIDES):
        """Geometry for a square ``image_size`` and ``anchors`` (levels, A, 2) in pixels."""
        from cvapps.core.boxes import cell_grid, feature_size

        anchors = _check_anchors(anchors, len(strides))
        grids, sizes, steps, offsets, shapes, start = [], [], [], [], [], 0
        for level_anchors, stride in zip(anchors, strides):
            rows, columns = feature_size(image_size, stride)
            count = rows * columns * len(level_anchors)
            grids.append(
                np.broadcast_to(cell_grid(rows, columns), (rows, columns, len(level_anchors), 2)).reshape(-1, 2)
            )
            sizes.append(np.broadcast_to(level_anchors, (rows, columns, len(level_anchors), 2)).reshape(-1, 2))
            steps.append(np.full((count, 1), stride, np.float32))
            offsets.append(start)
            shapes.append((rows, columns))
            start += count
        return cls(
            np.concatenate(grids).astype(np.float32),
            np.concatenate(sizes).astype(np.float32),
            np.concatenate(steps),
            tuple(offsets),
            tuple(shapes),
            anchors,
            tuple(strides),
        )

    def __len__(self):
        return len(self.grid)


def _check_anchors(anchors, levels):
    anchors = np.asarray(anchors, np.float32)
    if anchors.ndim != 3 or anchors.shape[0] != levels or anchors.shape[2] != 2 or np.any(anchors <= 0):
        raise ValueError(
            f"anchors must be positive (width, height) pairs shaped ({levels} levels, A, 2); received shape "
            f"{anchors.shape}. Fit them with cvapps.core.boxes.kmeans_anchors and sort by area into levels."
        )
    return anchors


def build_detector(backbone, num_classes, anchors, class_names=None, width=64):
    """Backbone P3-P5 -> FPN + PAN neck -> a 1x1 anchor head per level.

    Args:
        backbone: a :class:`cvapps.nn.backbone.Backbone` with a square ``image_size`` divisible by 32.
        num_classes: number of object classes (at least 1).
        anchors: (3, A, 2) anchor (width, height) in input pixels, for strides 8, 16, 32.
        class_names: names stored in the model (default "0", "1", ...).
        width: channels of the neck.

    Returns:
        ``keras.Model``: (batch, S, S, 3) pixels in [0, 255] -> (batch, slots, 5 + num_classes)
        raw outputs (t_x, t_y, t_w, t_h, objectness logit, class logits), slots ordered as
        :class:`SlotGeometry`. Anchors and strides are stored in the model's metadata.
    """
    from cvapps._keras import import_keras
    from cvapps.nn.backbone import conv_bn_relu
    from cvapps.nn.layers import Metadata

    keras = import_keras()
    size = backbone.image_size
    from cvapps.nn.architectures import ARCHITECTURES, EXACT_STRIDES

    if backbone.family in ARCHITECTURES and backbone.family not in EXACT_STRIDES:
        raise ValueError(
            f"the detector needs P3-P5 at exactly 1/8, 1/16 and 1/32 of the input; the "
            f"{backbone.family} backbone uses 'valid' padding and has {list(backbone.pyramid_outputs)}. "
            f"Use one of {', '.join(EXACT_STRIDES)}, compact, mobilenetv2 or efficientnet_lite0."
        )
    if not size or size % 32:
        raise ValueError(f"the detector needs a backbone with a square image_size divisible by 32; received {size!r}.")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, received {num_classes!r}.")
    class_names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class_names given for num_classes={num_classes}; they must match.")
    anchors = _check_anchors(anchors, len(LEVELS))
    inputs = keras.Input((size, size, 3), name="images")
    features = backbone(inputs)
    p3, p4, p5 = (features[level] for level in LEVELS)

    def up(x, name):
        return keras.layers.UpSampling2D(2, interpolation="nearest", name=name)(x)

    def joined(tensors, name):
        return keras.layers.Concatenate(name=name)(tensors)

    # FPN, top-down: coarse semantics flow to the fine levels.
    top5 = conv_bn_relu(p5, width, 1, name="neck_top5")
    top4 = conv_bn_relu(
        joined([up(top5, "neck_up5"), conv_bn_relu(p4, width, 1, name="neck_lat4")], "neck_cat4"),
        width,
        name="neck_top4",
    )
    out3 = conv_bn_relu(
        joined([up(top4, "neck_up4"), conv_bn_relu(p3, width, 1, name="neck_lat3")], "neck_cat3"),
        width,
        name="neck_out3",
    )
    # PAN, bottom-up: fine localisation flows back to the coarse levels.
    out4 = conv_bn_relu(
        joined([conv_bn_relu(out3, width, 3, 2, name="neck_down3"), top4], "neck_cat_down4"), width, name="neck_out4"
    )
    out5 = conv_bn_relu(
        joined([conv_bn_relu(out4, width, 3, 2, name="neck_down4"), top5], "neck_cat_down5"), width, name="neck_out5"
    )

    per_slot = 5 + num_classes
    heads = []
    for level, feature, stride in zip(LEVELS, (out3, out4, out5), STRIDES):
        # Prior biases (YOLOv5): objectness ~ 8 objects per 640x640 image, classes ~ 0.6 / classes.
        prior = np.zeros(len(anchors[0]) * per_slot, np.float32).reshape(len(anchors[0]), per_slot)
        prior[:, 4] = np.log(8 / (640 / stride) ** 2)
        prior[:, 5:] = np.log(0.6 / max(num_classes - 0.99, 1e-3))
        raw = keras.layers.Conv2D(
            len(anchors[0]) * per_slot,
            1,
            name=f"head_{level}",
            bias_initializer=keras.initializers.Constant(prior.reshape(-1).tolist()),
        )(feature)
        heads.append(keras.layers.Reshape((-1, per_slot), name=f"head_{level}_slots")(raw))
    outputs = keras.layers.Concatenate(axis=1, name="raw")(heads)
    settings = {"anchors": anchors.tolist(), "strides": list(STRIDES)}
    outputs = Metadata(task="detect", class_names=class_names, settings=settings)(outputs)
    return keras.Model(inputs, outputs, name="detector")


def assign_targets(boxes, class_ids, geometry, ratio_limit=ANCHOR_RATIO_LIMIT):
    """Training targets for one image (NumPy; runs in the data pipeline).

    Rule: a truth box is assigned, at every level, to the cell holding its centre and to each
    anchor of that level whose width and height are both within ``ratio_limit`` times the box's
    (max(w / a_w, a_w / w, h / a_h, a_h / h) < ratio_limit). A slot claimed twice keeps the box
    listed last.

    Args:
        boxes: (M, 4) xyxy in model-input pixels; class_ids: (M,).
        geometry: the model's :class:`SlotGeometry`.

    Returns:
        (slots, 6) float32 rows [positive (0/1), x1, y1, x2, y2, class_id].
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1)
    targets = np.zeros((len(geometry), 6), np.float32)
    if len(boxes) == 0:
        return targets
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = np.maximum(boxes[:, 2:] - boxes[:, :2], 1e-6)
    levels = zip(geometry.offsets, geometry.shapes, geometry.level_anchors, geometry.level_strides)
    for offset, (rows, columns), anchors_here, stride in levels:
        ratio = sizes[:, None, :] / anchors_here[None, :, :]  # (M, A, 2)
        worst = np.maximum(ratio, 1 / ratio).max(axis=2)  # (M, A)
        column = np.clip((centres[:, 0] // stride).astype(int), 0, columns - 1)
        row = np.clip((centres[:, 1] // stride).astype(int), 0, rows - 1)
        for m, a in zip(*np.nonzero(worst < ratio_limit)):
            slot = offset + (row[m] * columns + column[m]) * len(anchors_here) + a
            targets[slot] = (1.0, *boxes[m], class_ids[m])
    return targets


# --- loss (keras.ops only: runs on any backend) --------------------------------------------------

LOSS_WEIGHTS = {"box": 0.05, "objectness": 1.0, "classes": 0.5}  # YOLOv5's
OBJECTNESS_BALANCE = (4.0, 1.0, 0.4)  # P3, P4, P5: small objects are the hard ones


def complete_iou(a, b):
    """CIoU of aligned boxes (..., 4) xyxy, in ``keras.ops`` (differentiable).

    CIoU = IoU - rho^2 / c^2 - alpha v, rho the distance between centres, c the diagonal of the
    smallest enclosing box, v = 4 / pi^2 (atan(w_b / h_b) - atan(w_a / h_a))^2 and
    alpha = v / (1 - IoU + v) (held constant, as in Zheng et al.). Same values as
    :func:`cvapps.core.boxes.complete_box_iou` with ``aligned=True``.
    """
    from keras import ops

    eps = 1e-7
    width_a, height_a = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    width_b, height_b = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    overlap_w = ops.relu(ops.minimum(a[..., 2], b[..., 2]) - ops.maximum(a[..., 0], b[..., 0]))
    overlap_h = ops.relu(ops.minimum(a[..., 3], b[..., 3]) - ops.maximum(a[..., 1], b[..., 1]))
    overlap = overlap_w * overlap_h
    iou = overlap / (width_a * height_a + width_b * height_b - overlap + eps)
    enclosing_w = ops.maximum(a[..., 2], b[..., 2]) - ops.minimum(a[..., 0], b[..., 0])
    enclosing_h = ops.maximum(a[..., 3], b[..., 3]) - ops.minimum(a[..., 1], b[..., 1])
    diagonal = enclosing_w**2 + enclosing_h**2 + eps
    centres = (
        (a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) ** 2 + (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) ** 2
    ) / 4
    v = (4 / np.pi**2) * (ops.arctan(width_b / (height_b + eps)) - ops.arctan(width_a / (height_a + eps))) ** 2
    alpha = ops.stop_gradient(v / (v - iou + 1 + eps))
    return iou - centres / diagonal - alpha * v


def decode_slots(raw, geometry):
    """(..., slots, 4) raw offsets -> (..., slots, 4) xyxy pixels, in ``keras.ops``; the same
    formula as :func:`cvapps.core.boxes.decode` (YOLOv5)."""
    from keras import ops

    centre = (2 * ops.sigmoid(raw[..., :2]) - 0.5 + geometry.grid) * geometry.strides
    size = geometry.anchors * (2 * ops.sigmoid(raw[..., 2:4])) ** 2
    return ops.concatenate([centre - size / 2, centre + size / 2], axis=-1)


def detection_loss(geometry, num_classes, weights=LOSS_WEIGHTS):
    """The training loss for targets from :func:`assign_targets`: a function
    ``loss(y_true (B, slots, 6), y_pred (B, slots, 5 + C)) -> (B,)``.

    Per image: box = mean over positive slots of (1 - CIoU); objectness = binary cross-entropy
    over all slots against the (detached) CIoU at positive slots and 0 elsewhere, each level
    weighted by ``OBJECTNESS_BALANCE``; classes = binary cross-entropy of the class logits
    against one-hot targets, mean over positive slots. Total = weighted sum (``weights``).
    """
    from keras import ops

    balance = np.concatenate(
        [
            np.full(end - start, weight, np.float32)
            for start, end, weight in zip(geometry.offsets, (*geometry.offsets[1:], len(geometry)), OBJECTNESS_BALANCE)
        ]
    )

    def loss(y_true, y_pred):
        positive = y_true[..., 0]
        count = ops.maximum(ops.sum(positive, axis=1), 1.0)
        ciou = complete_iou(decode_slots(y_pred[..., :4], geometry), y_true[..., 1:5])
        box = ops.sum((1 - ciou) * positive, axis=1) / count
        objectness_target = positive * ops.stop_gradient(ops.clip(ciou, 0.0, 1.0))
        objectness = ops.binary_crossentropy(objectness_target, y_pred[..., 4], from_logits=True)
        objectness = ops.mean(objectness * balance, axis=1)
        onehot = ops.one_hot(ops.cast(y_true[..., 5], "int32"), num_classes)
        classes = ops.mean(ops.binary_crossentropy(onehot, y_pred[..., 5:], from_logits=True), axis=-1)
        classes = ops.sum(classes * positive, axis=1) / count
        return weights["box"] * box + weights["objectness"] * objectness + weights["classes"] * classes

    return loss


# --- training ----------------------------------------------------------------------------------


def fit_anchors(data, image_size, per_level=3, seed=0):
    """Anchors for :func:`build_detector` fitted to a data set's boxes as the model will see
    them (letterboxed to ``image_size``): k-means with 1 - IoU distance, 3 x ``per_level``
    clusters sorted by area, the smallest to P3. Returns ((3, per_level, 2), mean best IoU)."""
    from cvapps.core.boxes import kmeans_anchors

    sizes = []
    for sample in data.samples:
        scale = image_size / max(sample.width, sample.height)
        if len(sample.boxes):
            sizes.append((sample.boxes[:, 2:] - sample.boxes[:, :2]) * scale)
    sizes = np.concatenate(sizes) if sizes else np.zeros((0, 2))
    count = len(LEVELS) * per_level
    if len(sizes) < count:
        raise ValueError(
            f"fitting {count} anchors needs at least {count} boxes; the data has {len(sizes)}. Pass anchors=."
        )
    anchors, mean_best_iou = kmeans_anchors(np.maximum(sizes, 1.0), count, seed=seed)
    return np.asarray(anchors, np.float32).reshape(len(LEVELS), per_level, 2), float(mean_best_iou)


def train_detector(
    data,
    output,
    *,
    validation=None,
    image_size=320,
    family="compact",
    size="s",
    alpha=0.35,
    weights=None,
    anchors=None,
    width=64,
    epochs=50,
    batch_size=16,
    learning_rate=1e-3,
    weight_decay=5e-4,
    augment=True,
    mosaic=0.5,
    checkpoint_dir=None,
    seed=0,
    verbose=1,
):
    """Train a detector on a :class:`cvapps.detection_data.DetectionData`; save it to ``output``.

    Args:
        data, validation: training and (optional) validation data.
        anchors: (3, A, 2) pixels at ``image_size``; default fitted to ``data`` (:func:`fit_anchors`).
        family, size, alpha, weights: the backbone (see :func:`cvapps.nn.backbone.build_backbone`).
        epochs, batch_size, learning_rate, weight_decay: AdamW with a one-cycle schedule.
        augment, mosaic: flip, scale/translate, HSV and mosaic augmentation (cvapps.augment).
        checkpoint_dir: resumable state; rerunning the same command resumes. Default
            ``runs/<output stem>``.

    Returns:
        :class:`cvapps.nn.training.TrainResult` (the model is saved to ``output``).
    """
    from cvapps._keras import import_keras

    keras = import_keras()
    from cvapps.detection_data import DetectionBatches
    from cvapps.models import save_model
    from cvapps.nn.backbone import build_backbone
    from cvapps.nn.layers import OneCycle
    from cvapps.nn.training import TrainResult, fit_resumable, run_folder

    started = time.time()

    if anchors is None:
        anchors, _ = fit_anchors(data, image_size, seed=seed)
    keras.utils.set_random_seed(seed)
    backbone = build_backbone(family=family, size=size, alpha=alpha, image_size=image_size, weights=weights)
    model = build_detector(backbone, len(data.class_names), anchors, data.class_names, width=width)
    geometry = SlotGeometry.build(image_size, anchors)

    class AssignedBatches(keras.utils.PyDataset):
        """DetectionBatches with per-slot targets from :func:`assign_targets`."""

        def __init__(self, batches):
            super().__init__(workers=2, use_multiprocessing=False)
            self.batches = batches

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            images, boxes = self.batches[index]
            return images, np.stack([_slot_targets(rows, geometry) for rows in boxes])

        def on_epoch_end(self):
            self.batches.on_epoch_end()

    train = AssignedBatches(DetectionBatches(data, image_size, batch_size, augment=augment, mosaic=mosaic, seed=seed))
    val = AssignedBatches(DetectionBatches(validation, image_size, batch_size)) if validation is not None else None
    run_dir = run_folder(checkpoint_dir, output)
    model.compile(
        optimizer=keras.optimizers.AdamW(OneCycle(learning_rate, epochs * len(train)), weight_decay=weight_decay),
        loss=detection_loss(geometry, len(data.class_names)),
    )
    done = fit_resumable(model, train, run_dir, epochs=epochs, validation=val, verbose=verbose)
    save_model(model, output)
    return TrainResult(
        Path(output),
        {"main": done.history},
        time.time() - started,
        list(data.problems),
        ("main",) if done.reused else (),
    )


def _slot_targets(rows, geometry):
    """(max_boxes, 5) [class, x1, y1, x2, y2] rows (class -1 = padding) -> (slots, 6) targets."""
    real = rows[:, 0] >= 0
    return assign_targets(rows[real, 1:5], rows[real, 0], geometry)


# --- inference ---------------------------------------------------------------------------------


def decode_predictions(raw, geometry):
    """NumPy twin of :func:`decode_slots` plus scores: (slots, 5 + C) raw -> (boxes (slots, 4)
    xyxy model-input pixels, scores (slots, C) = sigmoid(objectness) * sigmoid(class logit))."""
    raw = np.asarray(raw, np.float32)
    sigmoid = 1 / (1 + np.exp(-raw))
    centre = (2 * sigmoid[:, :2] - 0.5 + geometry.grid) * geometry.strides
    size = geometry.anchors * (2 * sigmoid[:, 2:4]) ** 2
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1), sigmoid[:, 4:5] * sigmoid[:, 5:]


def detect(
    images,
    model=None,
    *,
    confidence_threshold=0.25,
    iou_threshold=0.45,
    classes=None,
    max_detections=300,
    class_thresholds=None,
    runtime="auto",
):
    """Detect objects; boxes come back in each original image's pixels.

    Args:
        images: a path, an (H, W, 3) RGB array, or a list of them.
        model: a detector: shipped name, ``.keras``/``.onnx`` path, ``keras.Model`` or opened
            model; default the shipped ``person`` detector.
        confidence_threshold: keep detections scoring at least this (objectness x class).
        iou_threshold: class-aware NMS suppresses overlaps above this IoU.
        classes: class names (or ids) to keep; default all. A box is given the best of these
            classes, so asking for ``["cat"]`` still finds a cat the model scored second to dog.
        max_detections: at most this many per image, best first.
        class_thresholds: ``{class name: threshold}`` overriding ``confidence_threshold`` for
            those classes (e.g. ``{"person": 0.5}`` with 0.25 for the rest).

    Returns:
        list of :class:`Detections`, one per image.
    """
    from cvapps.augment import letterbox, unletterbox_boxes
    from cvapps.core.boxes import clip_boxes, nms
    from cvapps.core.sources import read_image
    from cvapps.runtime import open_model

    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1]; received {iou_threshold}.")
    model = open_model("person" if model is None else model, task="detect", runtime=runtime)
    info = model.info
    thresholds = class_threshold_vector(info.class_names, confidence_threshold, classes, class_thresholds)
    geometry = _geometry(info.image_size, json.dumps(info.settings["anchors"]), tuple(info.settings["strides"]))
    if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    results = []
    for image in images:
        image = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"an image array must be (H, W, 3) uint8 RGB; received {image.dtype} of shape {image.shape}."
            )
        boxed, scale, pad = letterbox(image, info.image_size)
        boxes, scores = decode_predictions(model.predict(boxed[None].astype(np.float32))[0], geometry)
        scores = np.where(np.isfinite(thresholds), scores, 0.0)  # classes not asked for score 0
        class_id = scores.argmax(axis=1)
        confidence = scores[np.arange(len(scores)), class_id]
        keep = np.flatnonzero((confidence >= thresholds[class_id]) & (confidence > 0))
        kept = keep[
            nms(boxes[keep], confidence[keep], iou_threshold, class_ids=class_id[keep], max_detections=max_detections)
        ]
        height, width = image.shape[:2]
        xyxy = clip_boxes(unletterbox_boxes(boxes[kept], scale, pad), width, height)
        inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # not wholly in the padding
        results.append(Detections(xyxy[inside], confidence[kept][inside], class_id[kept][inside], info.class_names))
    return results


def class_threshold_vector(class_names, confidence_threshold=0.25, classes=None, class_thresholds=None):
    """The confidence each class must reach, as a (C,) array; ``inf`` for classes left out.

    >>> class_threshold_vector(("person", "dog", "cat"), 0.25, classes=["person", "cat"],
    ...                        class_thresholds={"cat": 0.6}).tolist()
    [0.25, inf, 0.6]

    Raises:
        ValueError: a threshold outside [0, 1], or a class the model does not have.
    """
    names = list(class_names)

    def index(name, what):
        if isinstance(name, (int, np.integer)) and 0 <= name < len(names):
            return int(name)
        if name in names:
            return names.index(name)
        raise ValueError(f"{what}: the model has no class {name!r}; its classes are {', '.join(names)}.")

    def checked(value, what):
        if not isinstance(value, (int, float, np.floating)) or not 0 <= value <= 1:
            raise ValueError(f"{what} must be a number in [0, 1]; received {value!r}.")
        return float(value)

    thresholds = np.full(len(names), checked(confidence_threshold, "confidence_threshold"), np.float64)
    for name, value in (class_thresholds or {}).items():
        thresholds[index(name, "class_thresholds")] = checked(value, f"class_thresholds[{name!r}]")
    if classes is not None:
        if isinstance(classes, (str, int, np.integer)):
            classes = [classes]
        wanted = np.zeros(len(names), bool)
        wanted[[index(c, "classes") for c in classes]] = True
        thresholds[~wanted] = np.inf
    return thresholds


def crop_detections(image, detections):
    """The pixels inside each box: a list of (h, w, 3) arrays, one per detection (boxes are
    rounded outwards to whole pixels; a box smaller than a pixel gives a 1-pixel crop).

    >>> import numpy as np
    >>> image = np.zeros((10, 20, 3), np.uint8)
    >>> found = Detections([[2.5, 1, 6, 4]], [0.9], [0])
    >>> [c.shape for c in crop_detections(image, found)]
    [(3, 4, 3)]
    """
    height, width = image.shape[:2]
    crops = []
    for x1, y1, x2, y2 in detections.xyxy:
        left, top = min(int(np.floor(x1)), width - 1), min(int(np.floor(y1)), height - 1)
        right, bottom = max(int(np.ceil(x2)), left + 1), max(int(np.ceil(y2)), top + 1)
        crops.append(image[top:bottom, left:right].copy())
    return crops


@functools.lru_cache(maxsize=8)
def _geometry(image_size, anchors_json, strides):
    """:class:`SlotGeometry` of a model, built once per (size, anchors, strides)."""
    return SlotGeometry.build(image_size, json.loads(anchors_json), strides)


# --- evaluation --------------------------------------------------------------------------------


def match_predictions(pred_xyxy, pred_scores, true_xyxy, iou_thresholds=COCO_IOU_THRESHOLDS):
    """COCO matching in one image for one class: which predictions are true positives.

    Predictions are taken in descending score order; each is matched to the unmatched truth box
    it overlaps most, if that IoU >= the threshold. Done for every threshold at once.

    Args:
        pred_xyxy: (P, 4) predicted boxes; pred_scores: (P,).
        true_xyxy: (T, 4) truth boxes.
        iou_thresholds: (K,) IoU thresholds.

    Returns:
        (P, K) bool: true positive at each threshold, rows in the input order.
    """
    pred_count, thresholds = len(pred_xyxy), np.asarray(iou_thresholds)
    hits = np.zeros((pred_count, len(thresholds)), bool)
    if pred_count == 0 or len(true_xyxy) == 0:
        return hits
    iou = box_iou(pred_xyxy, true_xyxy)  # (P, T)
    for k, threshold in enumerate(thresholds):
        taken = np.zeros(len(true_xyxy), bool)
        for p in np.argsort(-np.asarray(pred_scores), kind="stable"):
            candidates = np.where(taken, -1.0, iou[p])
            best = int(np.argmax(candidates))
            if candidates[best] >= threshold:
                taken[best] = True
                hits[p, k] = True
    return hits


def average_precision(tp, scores, num_true):
    """COCO's 101-point interpolated average precision for one class.

    Args:
        tp: (P,) bool true-positive flags of all predictions of the class over the data set.
        scores: (P,) their confidences.
        num_true: number of truth boxes of the class.

    precision(r) is made monotone (the envelope max over r' >= r), then averaged at
    r = 0, 0.01, ..., 1; recall levels never reached count as precision 0.
    """
    if num_true == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(tp, np.float64)[order]
    true_positives = np.cumsum(hits)
    recall = true_positives / num_true
    precision = true_positives / np.arange(1, len(hits) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    levels = np.linspace(0, 1, 101)
    where = np.searchsorted(recall, levels, side="left")  # first rank reaching each recall level
    sampled = np.where(where < len(envelope), envelope[np.minimum(where, len(envelope) - 1)], 0.0)  # unreached: 0
    return float(sampled.mean())


def mean_average_precision(predictions, truths, num_classes, confidence_threshold=0.25):
    """COCO-style mAP over a data set.

    Args:
        predictions: one :class:`Detections` per image (predict with a low confidence threshold,
            e.g. 0.001, for mAP).
        truths: one (boxes (T, 4) xyxy, class_ids (T,)) pair per image, same order.
        num_classes: number of classes (class ids 0 .. num_classes - 1 in both).
        confidence_threshold: where the per-class ``precision`` and ``recall`` (at IoU 0.5) are
            read off; mAP itself uses every prediction.

    Returns:
        dict: ``map50`` and ``map50_95`` (means over classes that have truth boxes), and
        ``per_class``: a list of dicts with ``ap50``, ``ap50_95``, ``precision``, ``recall``,
        ``num_true``, and ``pr_curve`` (recall, precision arrays at IoU 0.5) per class.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction sets for {len(truths)} images; they must match.")
    hits, scores, labels, num_true = [], [], [], np.zeros(num_classes, np.int64)
    for found, (true_xyxy, true_ids) in zip(predictions, truths):
        true_xyxy = np.asarray(true_xyxy, np.float32).reshape(-1, 4)
        true_ids = np.asarray(true_ids, np.int64).reshape(-1)
        num_true += np.bincount(true_ids, minlength=num_classes)[:num_classes]
        for c in np.unique(found.class_id):
            mine = found.class_id == c
            hits.append(match_predictions(found.xyxy[mine], found.confidence[mine], true_xyxy[true_ids == c]))
            scores.append(found.confidence[mine])
            labels.append(np.full(int(mine.sum()), c))
    hits = np.concatenate(hits) if hits else np.zeros((0, len(COCO_IOU_THRESHOLDS)), bool)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    per_class = []
    for c in range(num_classes):
        mine = labels == c
        aps = [average_precision(hits[mine, k], scores[mine], num_true[c]) for k in range(hits.shape[1])]
        kept = mine & (scores >= confidence_threshold)
        found_true = hits[kept, 0].sum()
        order = np.argsort(-scores[mine], kind="stable")
        cumulative = np.cumsum(hits[mine, 0][order])
        per_class.append(
            {
                "ap50": aps[0],
                "ap50_95": float(np.mean(aps)),
                "precision": float(found_true / kept.sum()) if kept.sum() else 0.0,
                "recall": float(found_true / num_true[c]) if num_true[c] else float("nan"),
                "num_true": int(num_true[c]),
                "pr_curve": (cumulative / max(num_true[c], 1), cumulative / np.arange(1, len(order) + 1)),
            }
        )
    scored = [row for row in per_class if row["num_true"] > 0]
    return {
        "map50": float(np.mean([r["ap50"] for r in scored])) if scored else float("nan"),
        "map50_95": float(np.mean([r["ap50_95"] for r in scored])) if scored else float("nan"),
        "per_class": per_class,
    }


def evaluate_detector(model, data, confidence_threshold=0.001, iou_threshold=0.6, progress=None, with_curves=False):
    """COCO-style mAP of a detector on a :class:`cvapps.detection_data.DetectionData`.

    The model's classes are matched to the data's by name: boxes of classes the model does not
    know are left out, so a person detector can be scored on the persons of a multi-class set.

    Returns:
        dict from :func:`mean_average_precision` (``map50``, ``map50_95``, ``per_class``), with
        ``per_class`` keyed by class name. With ``with_curves``, also ``pr_curves``:
        {class name: (recall, precision) arrays at IoU 0.5} for :func:`cvapps.core.plots.pr_curve_image`
        (not JSON; take it out before writing the report).
    """
    from cvapps.runtime import open_model

    model = open_model(model, task="detect", runtime="keras")
    names = model.info.class_names
    to_model = np.array([names.index(n) if n in names else -1 for n in data.class_names], np.int64)
    truths = []
    for sample in data.samples:
        ids = to_model[sample.class_ids] if len(sample.class_ids) else np.zeros(0, np.int64)
        truths.append((sample.boxes[ids >= 0], ids[ids >= 0]))
    paths = [str(p) for p in data.paths]
    found = [
        detect(path, model, confidence_threshold=confidence_threshold, iou_threshold=iou_threshold)[0]
        for path in (progress(paths, len(paths)) if progress else paths)
    ]
    metrics = mean_average_precision(found, truths, len(names))
    if with_curves:
        metrics["pr_curves"] = {name: row["pr_curve"] for name, row in zip(names, metrics["per_class"])}
    metrics["per_class"] = {
        name: {k: v for k, v in row.items() if k != "pr_curve"} for name, row in zip(names, metrics["per_class"])
    }
    return metrics
