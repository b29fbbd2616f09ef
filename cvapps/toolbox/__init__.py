"""The ConvNet toolbox: what a network computes and learns, as tables and pictures.

    >>> from cvapps.toolbox import first_layer_filters, feature_maps, top_patches   # doctest: +SKIP
    >>> from cvapps.toolbox.explain import explain      # the module, by its own path (not re-exported)

- :mod:`cvapps.toolbox.explain`: per-layer shapes, parameters, multiply-adds and receptive fields, checked
  against Keras, with the lessons they illustrate (``cvapps explain``).
- :mod:`cvapps.toolbox.visualise`: first-layer filters, feature maps, top activating patches.
- The hand-made kernels live in :mod:`cvapps.core.kernels` and their Keras layer in :mod:`cvapps.nn.kernel_layers`;
  both are reachable from here.
"""

from __future__ import annotations

from cvapps.core.lazy import lazy_exports

_EXPORTS = {
    "first_layer_filters": "cvapps.toolbox.visualise",
    "feature_maps": "cvapps.toolbox.visualise",
    "top_patches": "cvapps.toolbox.visualise",
    "KERNELS": "cvapps.core.kernels",
    "apply_kernel": "cvapps.core.kernels",
    "response_image": "cvapps.core.kernels",
    "FixedConv2D": "cvapps.nn.kernel_layers",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, [])
