"""The bottom layer: NumPy, OpenCV and Pillow only; no Keras, no click, nothing above it.

- :mod:`cvapps.core.boxes`: box formats, IoU family, anchors, encode/decode, non-max suppression.
- :mod:`cvapps.core.sources` / :mod:`cvapps.core.sinks`: images, folders, globs, videos and cameras in;
  atomic image, video and JSON Lines files out.
- :mod:`cvapps.core.annotate` / :mod:`cvapps.core.plots`: drawing results, confusion matrices, PR curves.
- :mod:`cvapps.core.webcam`: the live loop (a reader thread, stale frames dropped, q/Esc to quit).
- :mod:`cvapps.core.kernels`: hand-made convolution kernels (Sobel, Scharr, Laplacian, ...).
- :mod:`cvapps.core.torch_weights`: a torch-free, allow-listed reader of PyTorch state dicts.

import-linter contracts in ``pyproject.toml`` keep it below :mod:`cvapps.nn` and free of Keras.
"""

from __future__ import annotations
