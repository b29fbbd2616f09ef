"""Neural style transfer: Gatys et al.'s optimisation and Johnson et al.'s fast feed-forward nets.

Workflow:

    >>> from cvapps.style import stylize
    >>> [result] = stylize("photo.jpg", style="starry_night")             # doctest: +SKIP
    >>> result.image.shape, result.method, round(result.seconds, 2)       # doctest: +SKIP
    ((480, 640, 3), 'fast', 0.08)
    >>> [result] = stylize("photo.jpg", style="my_painting.jpg")          # any painting  # doctest: +SKIP
    >>> result.method                                                      # doctest: +SKIP
    'optimize'

    cvapps stylize photo.jpg --style starry_night --output out.jpg
    cvapps train style painting.jpg --content photos/ more_photos/ --output models/mine.keras

The costs (Gatys et al. 2016), on activations a[l] of a fixed *loss network* at pyramid level l:

    Gram matrix       G[l]_kk' = 1/(n_H n_W) sum_ij a[l]_ijk a[l]_ijk'          (channel correlations)
    content cost      J_content(C, G) = 1/2 mean (a[l](C) - a[l](G))^2           (one middle level)
    style cost        J_style[l](S, G) = 1/4 mean_kk' (G[l](S) - G[l](G))^2      (= 1/(4 n_C^2) sum)
    total             J(G) = alpha J_content + beta sum_l lambda_l J_style[l] + gamma TV(G)

Means instead of sums keep the costs independent of the image size. So that alpha and beta mean
the same for any loss network, each term is divided by its value against an all-zero image:
J_content by 1/2 mean a[l](C)^2 (per image) and J_style[l] by 1/4 mean G[l](S)^2, so both read
as relative errors (0 = identical, about 1 = nothing in common); lambda_l are the user's level
weights, normalised to sum to 1. TV is the mean squared difference between neighbouring pixels
(pixels scaled to [0, 1]).

The loss network is a :class:`cvapps.nn.backbone.Backbone` whose levels are taken by pyramid key
(P2..P5), never by layer name: ImageNet MobileNetV2 alpha 0.35 where its weights are on the
machine, else the backbone of our shipped CIFAR-10 classifier (see :func:`build_loss_network`).

Fast styles: :func:`build_transformer` makes Johnson et al.'s image transformation network
(strided convolutions down, residual blocks, upsampling back, instance normalisation), lighter
for a 2-core CPU: depthwise-separable residual blocks, few channels. :func:`train_style` trains
one per style on a folder of photos with the same costs. It is fully convolutional (any H, W);
:func:`stylize` pads to its stride and crops back.
"""

from __future__ import annotations

from cvapps.core.lazy import lazy_exports

LEVELS = ("P2", "P3", "P4", "P5")
DEFAULT_CONTENT_LEVEL = "P3"
DEFAULT_STYLE_LEVELS = {"P2": 1.0, "P3": 1.0, "P4": 1.0, "P5": 1.0}
METHODS = ("fast", "optimize")
LOSS_NETWORKS = ("auto", "mobilenetv2", "efficientnet_lite0", "cifar10")

_EXPORTS = {
    "gram_matrix": "cvapps.style.costs",
    "content_cost": "cvapps.style.costs",
    "style_cost": "cvapps.style.costs",
    "total_variation": "cvapps.style.costs",
    "LossNetwork": "cvapps.style.costs",
    "build_loss_network": "cvapps.style.costs",
    "PerceptualLoss": "cvapps.style.costs",
    "evaluate_style": "cvapps.style.evaluate",
    "_image_model_class": "cvapps.style.optimize",
    "optimize_image": "cvapps.style.optimize",
    "_step_history_class": "cvapps.style.optimize",
    "Stylized": "cvapps.style.predict",
    "_resize_short": "cvapps.style.predict",
    "resize_long": "cvapps.style.predict",
    "pad_to_multiple": "cvapps.core.images",
    "stylize_array": "cvapps.style.predict",
    "preserve_colors": "cvapps.style.predict",
    "blend": "cvapps.style.predict",
    "is_style_image": "cvapps.style.predict",
    "shipped_styles": "cvapps.style.predict",
    "StyleRunner": "cvapps.style.predict",
    "_style_name": "cvapps.style.predict",
    "_painting_of_model": "cvapps.style.predict",
    "stylize": "cvapps.style.predict",
    "StyleOptions": "cvapps.style.predict",
    "list_content_images": "cvapps.style.train",
    "load_photos": "cvapps.style.train",
    "_batches_class": "cvapps.style.train",
    "_trainer_class": "cvapps.style.train",
    "_samples_callback": "cvapps.style.train",
    "read_style_image": "cvapps.style.predict",
    "train_style": "cvapps.style.train",
    "build_transformer": "cvapps.style.transformer",
}
__getattr__, __dir__ = lazy_exports(
    __name__, _EXPORTS, ["LEVELS", "DEFAULT_CONTENT_LEVEL", "DEFAULT_STYLE_LEVELS", "METHODS", "LOSS_NETWORKS"]
)
