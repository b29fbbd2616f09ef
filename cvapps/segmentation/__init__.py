"""Semantic segmentation: a U-Net (Ronneberger et al. 2015) on the shared backbone.

Python:

    >>> from cvapps import segmentation
    >>> [result] = segmentation.segment("people.jpg", model="person_seg")     # doctest: +SKIP
    >>> result.labels.shape, result.probabilities.shape                       # doctest: +SKIP
    ((480, 640), (480, 640, 2))
    >>> blurred = segmentation.blur_background(image, result)                 # doctest: +SKIP

CLI:

    cvapps segment photo.jpg --model person_seg --overlay --output out.png
    cvapps train segment ../shared/data/membrane --output membrane.keras --family unet --image-size 256
    cvapps eval segment ../shared/data/membrane --model membrane --holdout 0.2 --json r.json
    cvapps webcam segment --model person_seg --blur

Model: the encoder is the shared backbone (its P2..P5 pyramid plus the stride-2 stem as skips)
or, with ``family="unet"``, the classic from-scratch U-Net encoder (two 3x3 convolutions per
level, max pooling, filters doubling). The decoder upsamples by 2 (transposed convolution, or
bilinear resize + 3x3 convolution), concatenates the skip of that resolution and applies two
3x3 conv-BN-ReLU; a 1x1 convolution and a softmax give per-pixel class probabilities
(class 0 is the background; a binary model has 2 classes). Convolutions are "same" padded
(the paper's are "valid"), so the output is the input's size.

Any input size: the model is built for any H, W; :func:`predict_probabilities` pads the image to
a multiple of the network's stride (``settings["stride"]``) and crops the output back. Images
bigger than the training tile (``settings["tile"]``) are predicted by overlap-tile (the paper's
strategy): overlapping tiles, blended with weights that fall off towards tile borders. Models
trained on whole scenes (``settings["scale_to"]``) first scale each image so its longer side
is the training tile and scale the probabilities back to the original resolution.

Losses (:class:`SegmentationLoss`): cross-entropy, soft Dice, focal, and weighted sums of them,
with the paper's border-weight map as an option (:func:`cvapps.segmentation.data.border_weights`).
Metrics (:func:`segmentation_metrics`): IoU and Dice per class from the data set's confusion matrix,
their means ``miou`` and ``dice``, and pixel accuracy.
"""

from __future__ import annotations

from cvapps.core.lazy import lazy_exports
from cvapps.nn.families import FAMILIES as BACKBONE_FAMILIES

DEFAULT_MODEL = "person_seg"
FAMILIES = ("unet", *BACKBONE_FAMILIES)  # the classic U-Net, or the shared backbone as its encoder
LOSS_TERMS = ("ce", "dice", "focal")

_EXPORTS = {
    "SegmentationLoss": "cvapps.segmentation.losses",
    "MeanIoU": "cvapps.segmentation.losses",
    "colour_labels": "cvapps.segmentation.draw",
    "overlay": "cvapps.segmentation.draw",
    "cutout": "cvapps.segmentation.draw",
    "blur_background": "cvapps.segmentation.draw",
    "_check_match": "cvapps.segmentation.draw",
    "comparison_figure": "cvapps.segmentation.draw",
    "evaluate_segmenter": "cvapps.segmentation.evaluate",
    "parse_loss": "cvapps.segmentation.metrics",
    "confusion_matrix": "cvapps.segmentation.metrics",
    "segmentation_metrics": "cvapps.segmentation.metrics",
    "_encoder_from_backbone": "cvapps.segmentation.model",
    "_classic_encoder": "cvapps.segmentation.model",
    "build_unet": "cvapps.segmentation.model",
    "Segmentation": "cvapps.segmentation.predict",
    "_class_ids": "cvapps.segmentation.predict",
    "pad_to_multiple": "cvapps.core.images",
    "_tile_starts": "cvapps.segmentation.predict",
    "_tile_weight": "cvapps.segmentation.predict",
    "predict_probabilities": "cvapps.segmentation.predict",
    "_overlap_tile": "cvapps.segmentation.predict",
    "_check_image": "cvapps.segmentation.predict",
    "segment": "cvapps.segmentation.predict",
    "train_segmenter": "cvapps.segmentation.train",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, ["DEFAULT_MODEL", "FAMILIES", "LOSS_TERMS"])
