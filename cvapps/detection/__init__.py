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

import numpy as np

from cvapps.core.lazy import lazy_exports

COCO_IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)  # 0.50, 0.55, ..., 0.95
DEFAULT_MODEL = "person"  # the shipped person detector
LEVELS = ("P3", "P4", "P5")
STRIDES = (8, 16, 32)
ANCHOR_RATIO_LIMIT = 4.0  # a truth box is assigned to anchors within 4x of its width and height

_EXPORTS = {
    "match_predictions": "cvapps.detection.evaluate",
    "average_precision": "cvapps.detection.evaluate",
    "mean_average_precision": "cvapps.detection.evaluate",
    "evaluate_detector": "cvapps.detection.evaluate",
    "SlotGeometry": "cvapps.detection.model",
    "_check_anchors": "cvapps.detection.model",
    "build_detector": "cvapps.detection.model",
    "assign_targets": "cvapps.detection.model",
    "LOSS_WEIGHTS": "cvapps.detection.model",
    "OBJECTNESS_BALANCE": "cvapps.detection.model",
    "complete_iou": "cvapps.detection.model",
    "decode_slots": "cvapps.detection.model",
    "detection_loss": "cvapps.detection.model",
    "Detections": "cvapps.detection.predict",
    "decode_predictions": "cvapps.detection.predict",
    "Teacher": "cvapps.detection.label",
    "open_teacher": "cvapps.detection.label",
    "auto_label": "cvapps.detection.label",
    "LabelReport": "cvapps.detection.label",
    "detect": "cvapps.detection.predict",
    "class_threshold_vector": "cvapps.detection.predict",
    "crop_detections": "cvapps.detection.predict",
    "_geometry": "cvapps.detection.predict",
    "fit_anchors": "cvapps.detection.train",
    "train_detector": "cvapps.detection.train",
    "_slot_targets": "cvapps.detection.train",
}
__getattr__, __dir__ = lazy_exports(
    __name__, _EXPORTS, ["COCO_IOU_THRESHOLDS", "DEFAULT_MODEL", "LEVELS", "STRIDES", "ANCHOR_RATIO_LIMIT"]
)
