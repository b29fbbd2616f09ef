"""The backbone families by name: plain data, no Keras, so the CLI and the app packages can list them.

>>> FAMILIES[:3], "vgg16" in EXACT_STRIDES
(('compact', 'mobilenetv2', 'efficientnet_lite0'), True)
"""

from __future__ import annotations

# The classic networks of cvapps.nn.architectures.
ARCHITECTURES = ("lenet5", "alexnet", "vgg16", "resnet50", "googlenet", "mobilenet", "airbench")
# Every family the shared backbone builds (cvapps.nn.backbone.Backbone).
FAMILIES = ("compact", "mobilenetv2", "efficientnet_lite0", *ARCHITECTURES)
# Families with ImageNet weights (``weights="imagenet"``).
PRETRAINED = ("mobilenetv2", "efficientnet_lite0")
# Classic families whose levels are exact fractions of the input (what detection and U-Net need).
EXACT_STRIDES = ("vgg16", "resnet50", "googlenet", "mobilenet")
