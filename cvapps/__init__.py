"""cvapps: computer-vision apps on one Keras 3 backbone.

    >>> import cvapps
    >>> results = cvapps.classify("photo.jpg", top_k=3)   # ImageNet-1k  # doctest: +SKIP
    >>> [found] = cvapps.detect("street.jpg", model="person")              # doctest: +SKIP
    >>> [mask] = cvapps.segment("photo.jpg", model="person_seg")           # doctest: +SKIP
    >>> cvapps.verify("a.jpg", "b.jpg").verified                           # doctest: +SKIP
    >>> [styled] = cvapps.stylize("photo.jpg", style="starry_night")       # doctest: +SKIP
    >>> from cvapps.toolbox.explain import explain     # (the module's name: not a top-level attribute)
    >>> print(explain(cvapps.build_architecture("resnet50")).table())      # doctest: +SKIP
    >>> model = cvapps.load_model("cifar10")                               # doctest: +SKIP

Attributes are imported on first use, so ``import cvapps`` (and ``cvapps --help``) stays fast
and does not import TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "classify": "cvapps.classification",
    "Classification": "cvapps.classification",
    "detect": "cvapps.detection",
    "Detections": "cvapps.detection",
    "load_model": "cvapps.models",
    "open_model": "cvapps.runtime",
    "build_backbone": "cvapps.nn.backbone",
    "Backbone": "cvapps.nn.backbone",
    "build_classifier": "cvapps.classification",
    "train_classifier": "cvapps.classification",
    "evaluate_classifier": "cvapps.classification",
    "segment": "cvapps.segmentation",
    "Segmentation": "cvapps.segmentation",
    "Verification": "cvapps.faces",
    "Identity": "cvapps.faces.database",
    "Stylized": "cvapps.style",
    "verify": "cvapps.faces",
    "identify": "cvapps.faces",
    "enroll": "cvapps.faces",
    "calibrate": "cvapps.faces",
    "stylize": "cvapps.style",
    "StyleOptions": "cvapps.style",
    "build_architecture": "cvapps.nn.architectures",
    "Calibration": "cvapps.faces",
    "TrainResult": "cvapps.nn.training",
    "clear_cache": "cvapps.runtime",
    "ExportReport": "cvapps.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cvapps' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
