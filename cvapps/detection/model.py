"""The detector: a YOLO-style head on the backbone's P3-P5, target assignment and the loss (keras.ops only)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from cvapps.core.boxes import yolo_xyxy
from cvapps.detection import ANCHOR_RATIO_LIMIT, LEVELS, STRIDES

if TYPE_CHECKING:
    import keras

    from cvapps.nn.backbone import Backbone

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
    def build(cls, image_size: int, anchors: ArrayLike, strides: Sequence[int] = STRIDES) -> SlotGeometry:
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


def build_detector(
    backbone: Backbone,
    num_classes: int,
    anchors: ArrayLike,
    class_names: Iterable[str] | None = None,
    width: int = 64,
) -> keras.Model:
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


def assign_targets(
    boxes: ArrayLike, class_ids: ArrayLike, geometry: SlotGeometry, ratio_limit: float = ANCHOR_RATIO_LIMIT
) -> np.ndarray:
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


def complete_iou(a: Any, b: Any) -> Any:
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


def decode_slots(raw: Any, geometry: SlotGeometry) -> Any:
    """(..., slots, 4) raw offsets -> (..., slots, 4) xyxy pixels, in ``keras.ops``; the same
    formula as :func:`cvapps.core.boxes.decode` (YOLOv5)."""
    from keras import ops

    return yolo_xyxy(ops.sigmoid(raw[..., :4]), geometry.anchors, geometry.grid, geometry.strides, ops.concatenate)


def detection_loss(
    geometry: SlotGeometry, num_classes: int, weights: Mapping[str, float] = LOSS_WEIGHTS
) -> Callable[[Any, Any], Any]:
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
