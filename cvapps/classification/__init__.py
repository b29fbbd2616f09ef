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

from cvapps.core.lazy import lazy_exports

DEFAULT_MODEL = (
    "imagenet"  # EfficientNet-Lite0, ImageNet-1k (cvapps.classification.imagenet): built into the cache on first use
)
UNKNOWN = "unknown"  # the label when the top probability is below min_confidence

_EXPORTS = {
    "evaluate_classifier": "cvapps.classification.evaluate",
    "data_to_model_classes": "cvapps.classification.evaluate",
    "classification_metrics": "cvapps.classification.evaluate",
    "build_classifier": "cvapps.classification.model",
    "with_flip_averaging": "cvapps.classification.model",
    "Classification": "cvapps.classification.predict",
    "predict_probabilities": "cvapps.classification.predict",
    "prepare": "cvapps.classification.predict",
    "top_k_results": "cvapps.classification.predict",
    "check_min_confidence": "cvapps.classification.predict",
    "group_classes": "cvapps.classification.predict",
    "classify": "cvapps.classification.predict",
    "results_from_probabilities": "cvapps.classification.predict",
    "train_classifier": "cvapps.classification.train",
    "TrainResult": "cvapps.nn.training",
    "read_history": "cvapps.nn.training",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, ["DEFAULT_MODEL", "UNKNOWN"])
