"""Keras layers, backbone families and the one resumable fit; imports only :mod:`cvapps.core` below it.

- :mod:`cvapps.nn.layers`, :mod:`cvapps.nn.style_layers`, :mod:`cvapps.nn.kernel_layers`: the Keras layers of
  every cvapps model (registered for ``safe_mode=True`` loading), among them the ``Metadata`` layer.
- :mod:`cvapps.nn.backbone`: the shared backbone (``pyramid_outputs`` P2-P5) and its families;
  :mod:`cvapps.nn.architectures` the classic networks; :mod:`cvapps.nn.efficientnet_lite` EfficientNet-Lite0
  with its ImageNet weights.
- :mod:`cvapps.nn.training`: ``fit_resumable``, ``TrainResult``.

This ``__init__`` imports no Keras, so light modules (``cvapps.models``) can read ``TASKS`` from it.
"""

from __future__ import annotations

TASKS = ("classify", "detect", "segment", "faces", "style")
