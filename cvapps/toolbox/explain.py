"""What a ConvNet computes, layer by layer: shapes, parameters, multiply-adds, receptive fields.

    cvapps explain resnet50                      # a classic network at its native input
    cvapps explain lenet5 --input-size 32 32 --channels 3
    cvapps explain cifar10 --json cifar10.json   # a shipped or saved model

    >>> from cvapps.nn.architectures import build_architecture
    >>> report = explain(build_architecture("lenet5"))
    >>> [(row.name, row.output_shape, row.params) for row in report.rows[:2]]
    [('c1', (28, 28, 6), 156), ('s2', (14, 14, 6), 0)]
    >>> report.total_params, report.mismatches
    (61706, [])

Every figure is computed from the layer's configuration with the textbook formulas, then checked
against what Keras built (``mismatches`` lists any disagreement):

- output side of a convolution or pooling: floor((n + 2p - f) / s) + 1. "valid" means p = 0;
  "same" pads p_total = max((ceil(n / s) - 1) * s + f - n, 0) split top/bottom (p = (f - 1) / 2 at
  stride 1), so the output side is ceil(n / s).
- parameters of a convolution: (f * f * c_in / groups + 1) * c_out (the +1 is the bias); of a
  depthwise convolution f * f * c_in (+ c_in); of a dense layer (n_in + 1) * n_out; batch norm 4 * c.
- multiply-adds: h_out * w_out * f * f * c_in / groups * c_out for a convolution, n_in * n_out for
  a dense layer (pooling, activations and normalisation are not counted).
- receptive field r, jump j (input pixels between neighbouring outputs) and start (centre of the
  first output, in input pixels) through a layer of kernel f, stride s and left padding p_left:
  r_out = r_in + (f - 1) * j_in, j_out = j_in * s, start_out = start_in + ((f - 1) / 2 - p_left) * j_in.
  Where branches merge, the largest r is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

SKIPPED_KINDS = ("InputLayer",)


@dataclass(frozen=True)
class Geometry:
    """Where a feature map looks in the input: output (i, j) is centred on input pixel
    (start + i * jump, start + j * jump) (row, column) and sees ``size`` x ``size`` pixels."""

    size: float
    jump: float
    start: float


@dataclass(frozen=True)
class LayerRow:
    """One layer of the table. ``output_shape`` is computed; ``keras_shape`` is what Keras built."""

    name: str
    kind: str
    kernel: str
    output_shape: tuple
    params: int
    macs: int
    receptive_field: float
    jump: float
    keras_shape: tuple
    keras_params: int
    level: str = ""

    @property
    def agrees(self) -> bool:
        shape_ok = all(k is None or k == c for k, c in zip(self.keras_shape, self.output_shape)) and len(
            self.keras_shape
        ) == len(self.output_shape)
        return shape_ok and self.params == self.keras_params


@dataclass(frozen=True)
class Explanation:
    """The per-layer table of a model, its totals and the lessons it illustrates."""

    model: str
    input_shape: tuple
    rows: list
    keras_params: int
    lessons: list = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def mismatches(self) -> list[str]:
        """Rows whose computed shape or parameter count differs from Keras's."""
        return [row.name for row in self.rows if not row.agrees]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "layers": [
                {
                    "name": r.name,
                    "type": r.kind,
                    "kernel": r.kernel,
                    "output_shape": list(r.output_shape),
                    "params": r.params,
                    "multiply_adds": r.macs,
                    "receptive_field": r.receptive_field,
                    "jump": r.jump,
                    "level": r.level,
                    "keras_output_shape": list(r.keras_shape),
                    "keras_params": r.keras_params,
                }
                for r in self.rows
            ],
            "total_params": self.total_params,
            "keras_params": self.keras_params,
            "total_multiply_adds": self.total_macs,
            "mismatches": self.mismatches,
            "lessons": self.lessons,
        }

    def table(self) -> str:
        """The report as fixed-width text."""
        header = ("layer", "type", "kernel", "output", "params", "mult-adds", "RF", "level")
        lines = [
            (
                r.name,
                r.kind,
                r.kernel,
                "x".join(map(str, r.output_shape)),
                f"{r.params:,}",
                f"{r.macs:,}" if r.macs else "",
                _number(r.receptive_field),
                r.level,
            )
            for r in self.rows
        ]
        widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
        right = {4, 5, 6}

        def line(cells):
            return "  ".join(
                str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        out = [
            f"{self.model}: input {'x'.join(map(str, self.input_shape))}",
            line(header),
            line(["-" * w for w in widths]),
        ]
        out += [line(cells) for cells in lines]
        out.append(line(["-" * w for w in widths]))
        out.append(
            f"total: {self.total_params:,} parameters (Keras counts {self.keras_params:,}), "
            f"{self.total_macs:,} multiply-adds per image"
        )
        out.append(
            "check: every computed shape and parameter count agrees with Keras"
            if not self.mismatches
            else f"check: computed and Keras figures differ at {', '.join(self.mismatches)}"
        )
        if self.lessons:
            out.append("")
            out += [f"* {lesson}" for lesson in self.lessons]
        return "\n".join(out)


def _number(x):
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


# --- the arithmetic ----------------------------------------------------------------------------


def conv_output_size(n: int, f: int, s: int = 1, padding: str | int = "valid") -> int:
    """Output side of a convolution or pooling window: floor((n + 2p - f) / s) + 1.

    ``padding`` is ``"valid"`` (p = 0), ``"same"`` (2p = :func:`same_padding`) or an int p per side.

    >>> # 6x6 input, 3x3 filter: (6 - 3) + 1 = 4; padding 1: (6 + 2 - 3) + 1 = 6; stride 2: (6 - 3) // 2 + 1 = 2
    >>> conv_output_size(6, 3), conv_output_size(6, 3, padding=1), conv_output_size(6, 3, s=2)
    (4, 6, 2)
    """
    if padding == "same":
        total = same_padding(n, f, s)
    elif padding == "valid":
        total = 0
    elif isinstance(padding, int) and padding >= 0:
        total = 2 * padding
    else:
        raise ValueError(f"padding must be 'valid', 'same' or a non-negative int; received {padding!r}.")
    return (n + total - f) // s + 1


def same_padding(n: int, f: int, s: int = 1) -> int:
    """Total padding of a "same" window: max((ceil(n / s) - 1) * s + f - n, 0); f - 1 at stride 1."""
    return max((math.ceil(n / s) - 1) * s + f - n, 0)


def conv_params(f: int | tuple[int, int], c_in: int, c_out: int, groups: int = 1, bias: bool = True) -> int:
    """(f * f * c_in / groups + bias) * c_out; ``f`` an int or (fh, fw).

    >>> conv_params(5, 3, 6)   # (5*5*3 + 1) * 6
    456
    """
    fh, fw = (f, f) if isinstance(f, int) else f
    return (fh * fw * c_in // groups + int(bias)) * c_out


# --- walking the model -------------------------------------------------------------------------


@dataclass
class _Tensor:
    shape: tuple  # (h, w, c) or (n,) without the batch
    r: float = 1.0
    j: float = 1.0
    start: float = 0.0  # input position (pixel index) of the centre of output 0


def explain(model: keras.Model, input_shape: Sequence[int] | None = None, name: str | None = None) -> Explanation:
    """The per-layer table of a functional Keras model (nested models are walked through).

    Args:
        model: a functional ``keras.Model`` with one image input.
        input_shape: (height, width, channels) when the model's input has free height and width.
        name: the title (default the model's name).

    Returns:
        :class:`Explanation`.
    """
    import keras

    if not isinstance(model, keras.Model) or not hasattr(model, "inputs") or len(model.inputs) != 1:
        raise TypeError(f"explain needs a functional keras.Model with one input; received {type(model).__name__}.")
    shape = tuple(model.inputs[0].shape[1:])
    if input_shape is not None:
        input_shape = tuple(int(v) for v in input_shape)
        if len(input_shape) != len(shape) or any(k is not None and k != v for k, v in zip(shape, input_shape)):
            raise ValueError(
                f"input_shape {input_shape} does not fit the model's input {shape}; the model was built for that size."
            )
        shape = input_shape
    if any(v is None for v in shape):
        raise ValueError(f"{model.name} takes any image size ({shape}); give one with --input-size H W.")
    rows = []
    walker = _Walker(rows)
    walker.walk(model, [_Tensor(shape)])
    report = Explanation(name or model.name, shape, rows, model.count_params())
    return Explanation(report.model, shape, rows, model.count_params(), _lessons(report, walker))


class _Walker:
    def __init__(self, rows):
        self.rows = rows
        self.tensors = {}
        self.producer = {}  # id(tensor) -> row that made it
        self.called = set()  # ids of the layers already described
        self.level_of = {}

    def walk(self, model, inputs, prefix=""):
        import keras

        for tensor, info in zip(model.inputs, inputs):
            self.tensors[id(tensor)] = info
        levels = {id(t): k for k, t in (getattr(model, "pyramid_outputs", None) or {}).items()}
        if isinstance(getattr(model, "output", None), dict):
            levels.update({id(t): k for k, t in model.output.items()})
        for layer in model.layers:
            if type(layer).__name__ in SKIPPED_KINDS:
                continue
            for node in layer._inbound_nodes:
                ins = node.input_tensors
                if not ins or any(id(t) not in self.tensors for t in ins):
                    continue  # a call of this layer in another graph
                infos = [self.tensors[id(t)] for t in ins]
                outs = node.output_tensors
                if isinstance(layer, keras.Model) and hasattr(layer, "inputs"):
                    results = self.walk(layer, infos, prefix=f"{prefix}{layer.name}/")
                    for tensor, info in zip(outs, results):
                        self.tensors[id(tensor)] = info
                    continue
                info, row = _describe(layer, infos, outs[0], prefix + layer.name, levels.get(id(outs[0]), ""))
                if id(layer) in self.called:  # a shared layer called again: its weights are counted once
                    row = replace(row, name=f"{row.name} (again)", params=0, keras_params=0)
                self.called.add(id(layer))
                self.tensors[id(outs[0])] = info
                self.rows.append(row)
                self.producer[id(outs[0])] = (row, [self.producer.get(id(t)) for t in ins])
        flat = keras.tree.flatten(model.output)
        return [self.tensors[id(t)] for t in flat]


def _describe(layer, infos, keras_tensor, name, level):
    kind = type(layer).__name__
    first = infos[0]
    keras_shape = tuple(keras_tensor.shape[1:])
    keras_params = layer.count_params() if layer.built else 0
    kernel, params, macs = "", 0, 0
    out = _Tensor(first.shape, first.r, first.j, first.start)
    config = layer.get_config()
    if kind == "GroupedConv2D":
        kind = "Conv2D"  # the same arithmetic; computed as separate convolutions for export
    if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D"):
        pooling = "Pooling" in kind
        f = _pair(config["pool_size" if pooling else "kernel_size"])
        s = _pair(config["strides"] if config.get("strides") is not None else f)
        d = _pair(config.get("dilation_rate", 1))
        f_eff = tuple(dd * (ff - 1) + 1 for ff, dd in zip(f, d))
        padding = config["padding"]
        h, w, c_in = first.shape
        sizes = [conv_output_size(n, ff, ss, padding) for n, ff, ss in zip((h, w), f_eff, s)]
        p_left = same_padding(h, f_eff[0], s[0]) // 2 if padding == "same" else 0
        if pooling:
            c_out = c_in
        elif kind == "Conv2D":
            c_out, groups = config["filters"], config.get("groups", 1)
            params = conv_params(f, c_in, c_out, groups, config["use_bias"])
            macs = sizes[0] * sizes[1] * f[0] * f[1] * c_in // groups * c_out
        elif kind == "DepthwiseConv2D":
            c_out = c_in * config["depth_multiplier"]
            params = f[0] * f[1] * c_out + (c_out if config["use_bias"] else 0)
            macs = sizes[0] * sizes[1] * f[0] * f[1] * c_out
        else:  # SeparableConv2D: depthwise then 1x1 pointwise
            mid = c_in * config["depth_multiplier"]
            c_out = config["filters"]
            params = f[0] * f[1] * mid + mid * c_out + (c_out if config["use_bias"] else 0)
            macs = sizes[0] * sizes[1] * (f[0] * f[1] * mid + mid * c_out)
        kernel = f"{f[0]}x{f[1]}/{s[0]} {padding}" + (
            f" p={_number(same_padding(h, f_eff[0], s[0]) / 2)}" if padding == "same" else ""
        )
        if kind == "Conv2D" and config.get("groups", 1) > 1:
            kernel += f" groups={config['groups']}"
        out = _Tensor(
            (*sizes, c_out),
            first.r + (f_eff[0] - 1) * first.j,
            first.j * s[0],
            first.start + ((f_eff[0] - 1) / 2 - p_left) * first.j,
        )
    elif kind == "Conv2DTranspose":
        f, s = _pair(config["kernel_size"]), _pair(config["strides"])
        h, w, c_in = first.shape
        c_out = config["filters"]
        sizes = [n * ss if config["padding"] == "same" else (n - 1) * ss + ff for n, ff, ss in zip((h, w), f, s)]
        params = conv_params(f, c_in, c_out, 1, config["use_bias"])
        macs = h * w * f[0] * f[1] * c_in * c_out
        kernel = f"{f[0]}x{f[1]}/{s[0]} transposed"
        out = _Tensor((*sizes, c_out), first.r + (math.ceil(f[0] / s[0]) - 1) * first.j, first.j / s[0], first.start)
    elif kind == "ZeroPadding2D":
        (top, bottom), (left, right) = config["padding"]
        h, w, c = first.shape
        out = _Tensor((h + top + bottom, w + left + right, c), first.r, first.j, first.start - top * first.j)
        kernel = f"pad {top},{bottom},{left},{right}"
    elif kind == "UpSampling2D":
        size = _pair(config["size"])
        h, w, c = first.shape
        out = _Tensor((h * size[0], w * size[1], c), first.r, first.j / size[0], first.start)
        kernel = f"x{size[0]}"
    elif kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten"):
        h, w, c = first.shape
        shape = (c,) if kind != "Flatten" else (h * w * c,)
        if kind != "Flatten" and config.get("keepdims"):
            shape = (1, 1, c)
        out = _Tensor(shape, first.r + (max(h, w) - 1) * first.j, first.j * max(h, w), first.start)
    elif kind == "Dense":
        n_in, n_out = first.shape[-1], config["units"]
        params = n_in * n_out + (n_out if config["use_bias"] else 0)
        macs = n_in * n_out * math.prod(first.shape[:-1])
        out = _Tensor((*first.shape[:-1], n_out), first.r, first.j, first.start)
    elif kind == "BatchNormalization":
        c = first.shape[-1]
        params = 4 * c if config["scale"] and config["center"] else (2 + config["scale"] + config["center"]) * c
    elif kind == "Concatenate":
        axis = config["axis"]
        axis = axis - 1 if axis > 0 else len(first.shape) + axis  # the shapes here have no batch axis
        shape = list(first.shape)
        shape[axis] = sum(info.shape[axis] for info in infos)
        out = _Tensor(tuple(shape), max(i.r for i in infos), max(i.j for i in infos), first.start)
    elif kind in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        shape = tuple(max(sizes) for sizes in zip(*(info.shape for info in infos)))
        out = _Tensor(shape, max(i.r for i in infos), max(i.j for i in infos), first.start)
    elif kind == "Luminance":
        out = _Tensor((*first.shape[:-1], 1), first.r, first.j, first.start)
    else:
        # Shape-keeping layers (activations, dropout, rescaling, normalisation, metadata, ...): the
        # output is the input; anything else takes Keras's shape and count.
        if not _keeps_shape(kind):
            # No formula here: ask the layer for its shape at these input sizes, and Keras for its count.
            shapes = [(1, *info.shape) for info in infos]
            shape = layer.compute_output_shape(shapes[0] if len(shapes) == 1 else shapes)
            out = _Tensor(tuple(shape[1:]), first.r, first.j, first.start)
            params = keras_params
            kernel = "(by Keras)"
    row = LayerRow(
        name, kind, kernel, tuple(out.shape), int(params), int(macs), out.r, out.j, keras_shape, keras_params, level
    )
    return out, row


_SHAPE_KEEPING = (
    "Activation",
    "GELU",
    "HorizontalFlip",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Softmax",
    "Dropout",
    "SpatialDropout2D",
    "Rescaling",
    "Identity",
    "Metadata",
    "LocalResponseNormalization",
    "GaussianNoise",
    "LayerNormalization",
    "Normalization",
)


def _keeps_shape(kind):
    return kind in _SHAPE_KEEPING


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def level_geometry(backbone: keras.Model, level: str, image_size: int | None = None) -> Geometry:
    """:class:`Geometry` of a backbone level: where each of its positions looks in the input.

    Args:
        backbone: a :class:`cvapps.nn.backbone.Backbone` (or any model with ``pyramid_outputs``).
        level: a key of ``backbone.pyramid_outputs``.
        image_size: input side used for "same" padding offsets when the backbone takes any size
            (default the backbone's own, else 224).

    >>> from cvapps.nn.backbone import Backbone
    >>> level_geometry(Backbone(family="vgg16", image_size=64), "P2")   # 7 3x3 convs, 2 pools
    Geometry(size=40.0, jump=4.0, start=1.5)
    """
    pyramid = getattr(backbone, "pyramid_outputs", None)
    if not pyramid or level not in pyramid:
        raise ValueError(f"level must be one of {list(pyramid or [])}; received {level!r}.")
    shape = tuple(backbone.inputs[0].shape[1:])
    if shape[0] is None:
        side = image_size or 224
        shape = (side, side, shape[-1])
    walker = _Walker([])
    walker.walk(backbone, [_Tensor(shape)])
    info = walker.tensors[id(pyramid[level])]
    return Geometry(float(info.r), float(info.j), float(info.start))


# --- lessons -----------------------------------------------------------------------------------


def _lessons(report, walker):
    """Sentences about this model that make the classic lessons visible, computed from its rows."""
    lessons = []
    convs = [r for r in report.rows if r.kind == "Conv2D"]
    same = sorted({int(r.kernel.split("x")[0]) for r in convs if "same" in r.kernel and "/1 " in r.kernel})
    same = [f for f in same if f > 1]
    if same:
        lessons.append(
            '"same" padding keeps height and width at stride 1 with p = (f - 1) / 2: '
            + ", ".join(f"{f}x{f} -> p = {(f - 1) // 2}" for f in same)
            + "."
        )
    seen = set()  # a shared backbone (a flip-averaged model) reaches each level twice: name it once
    levels = [r for r in report.rows if r.level and not (r.level in seen or seen.add(r.level))]
    if levels:
        steps = " -> ".join(f"{'x'.join(map(str, r.output_shape))} ({r.level})" for r in levels)
        lessons.append(f"Depth trades space for channels: {'x'.join(map(str, report.input_shape))} -> {steps}.")
    if convs and len(report.input_shape) == 3:
        first = convs[0]
        n_in = math.prod(report.input_shape)
        n_out = math.prod(first.output_shape)
        dense = (n_in + 1) * n_out
        lessons.append(
            f"Parameter sharing: the first convolution ({first.name}) maps "
            f"{'x'.join(map(str, report.input_shape))} to {'x'.join(map(str, first.output_shape))} with "
            f"{first.params:,} parameters; a fully connected layer between the same shapes would "
            f"need ({n_in:,} + 1) * {n_out:,} = {dense:,}."
        )
    savings = _bottlenecks(walker)
    if savings:
        largest = max(s[4] for s in savings)  # the first of the largest kernels (GoogLeNet: 3a's 5x5)
        name, size, c_in, mid, f, c_out, direct, reduced = next(s for s in savings if s[4] == largest)
        lessons.append(
            f"1x1 bottlenecks: at {name}, a direct {f}x{f} convolution from {c_in} to {c_out} channels on "
            f"{size} maps would take {size.replace('x', '*')}*{f}*{f}*{c_in}*{c_out} = {direct:,} multiply-adds; reducing to {mid} "
            f"channels with a 1x1 convolution first takes {reduced:,} ({direct / reduced:.1f}x fewer). "
            f"{len(savings)} such reductions in this model save {sum(s[6] - s[7] for s in savings):,} in all."
        )
    separable = _separable(walker)
    if separable:
        name, size, c_in, c_out, direct, split, f = separable[len(separable) // 2]
        lessons.append(
            f"Depthwise-separable convolutions: at {name}, a full {f}x{f} convolution from {c_in} to {c_out} channels on "
            f"{size} maps would take {direct:,} multiply-adds; a {f}x{f} depthwise then a 1x1 pointwise take {split:,} "
            f"({direct / split:.1f}x fewer). Over the {len(separable)} blocks: "
            f"{sum(s[4] for s in separable):,} against {sum(s[5] for s in separable):,}."
        )
    return lessons


def _parent_through_activations(entry):
    """The row feeding ``entry``'s layer, skipping batch norm and activations."""
    chain = entry[1][0] if len(entry[1]) == 1 else None
    while (
        chain and chain[0].kind in ("BatchNormalization", "Activation", "ReLU") and len(chain[1]) == 1 and chain[1][0]
    ):
        chain = chain[1][0]
    return chain[0] if chain else None


def _separable(walker):
    """(pointwise name, "HxW", c_in, c_out, full f x f MACs, depthwise + pointwise MACs, f) per block."""
    found = []
    for entry in walker.producer.values():
        row = entry[0]
        if row.kind != "Conv2D" or not row.kernel.startswith("1x1/1"):
            continue
        depthwise = _parent_through_activations(entry)
        if depthwise is None or depthwise.kind != "DepthwiseConv2D":
            continue
        f = int(depthwise.kernel.split("x")[0])
        h, w, c_out = row.output_shape
        c_in = depthwise.output_shape[-1]
        name = row.name.removesuffix(" (again)")  # a shared block (flip-averaged model): its layer's own name
        found.append((name, f"{h}x{w}", c_in, c_out, h * w * f * f * c_in * c_out, depthwise.macs + row.macs, f))
    return found


def _bottlenecks(walker):
    """(name, "HxW", c_in, c_mid, f, c_out, direct MACs, reduced MACs) for each f x f convolution
    (f > 1) fed by a channel-reducing 1x1 convolution."""
    found = []
    for entry in walker.producer.values():
        row = entry[0]
        if row.kind != "Conv2D" or row.kernel.startswith("1x1"):
            continue
        parent = _parent_through_activations(entry)
        if parent is None or parent.kind != "Conv2D" or not parent.kernel.startswith("1x1/1"):
            continue
        c_in = _input_channels(parent)
        mid = parent.output_shape[-1]
        if not c_in or mid >= c_in:
            continue
        f = int(row.kernel.split("x")[0])
        h, w, c_out = row.output_shape
        direct = h * w * f * f * c_in * c_out
        found.append((row.name, f"{h}x{w}", c_in, mid, f, c_out, direct, parent.macs + row.macs))
    return found


def _input_channels(row):
    # A 1x1 convolution's MACs are h * w * c_in * c_out.
    h, w, c_out = row.output_shape
    return row.macs // (h * w * c_out) if h * w * c_out else 0
