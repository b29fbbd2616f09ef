"""Model files: the shipped models, loading by name or path, and what a model says about itself.

    >>> import cvapps
    >>> model = cvapps.load_model("cifar10")                # a shipped model, by name  # doctest: +SKIP
    >>> model = cvapps.load_model("runs/mine.keras")        # or any cvapps .keras file  # doctest: +SKIP
    >>> cvapps.models.model_info(model)                     # doctest: +SKIP
    ModelInfo(task='classify', class_names=('airplane', ...), image_size=64, name='cifar10')

Every cvapps model ends in a :class:`cvapps.nn.layers.Metadata` layer, an identity layer whose config holds the
task and the class names, so one ``.keras`` file is all a user needs to carry. Models load with
``safe_mode=True``: no Lambda layers, no pickled code.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cvapps.nn import TASKS  # noqa: F401  (the tasks a model can be for; defined below the layers that check them)

if TYPE_CHECKING:
    import keras


def shipped_dir() -> Path:
    """Folder of the shipped models: inside the installed package, or the checkout's models/."""
    package = Path(__file__).resolve().parent
    installed = package / "_models"
    return installed if installed.is_dir() else package.parent / "models"


# Models built on first use from weights that arrive with a dependency (not files in models/): name -> the
# app module that builds it, with ``built_model_path()`` (where it will be) and ``ensure_model()`` (build if
# needed). A table of names, imported on demand: this module sits below the apps and never imports them.
BUILT_MODELS = {"imagenet": "cvapps.classification.imagenet"}


def shipped_models() -> dict:
    """name -> path of every shipped ``.keras`` model, the built-on-first-use ones included (their
    path is in the cache and may not exist yet; :func:`resolve_model_path` builds it)."""
    folder = shipped_dir()
    shipped = {p.stem: p for p in sorted(folder.glob("*.keras"))} if folder.is_dir() else {}
    for name in BUILT_MODELS:
        try:
            shipped[name] = _built_path(name)
        except ValueError:  # its weights package is missing: not available here
            pass
    return dict(sorted(shipped.items()))


def _built_path(name, build=False):
    import importlib

    builder = importlib.import_module(BUILT_MODELS[name])
    return builder.ensure_model() if build else builder.built_model_path()


def model_card(name: str) -> dict:
    """The machine-readable part of a shipped model's card (``models/NAME.json``), or {}."""
    path = shipped_dir() / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A shipped model's name or a path -> an existing model file.

    A built-on-first-use name (``BUILT_MODELS``: ``"imagenet"``) is built into the cache first if needed.

    Raises:
        ValueError: neither a shipped name nor an existing file; the message suggests the
            closest shipped name.
    """
    text = str(name_or_path)
    if text in BUILT_MODELS:
        return _built_path(text, build=True)
    shipped = shipped_models()
    if text in shipped:
        return shipped[text]
    path = Path(text)
    if path.is_file():
        if path.suffix.lower() not in (".keras", ".onnx"):
            raise ValueError(
                f"{text}: not a model file (a {path.suffix or 'suffix-less'} file); pass a .keras or .onnx "
                f"model or a shipped name ({_names(shipped)})."
            )
        return path
    if path.suffix or os.sep in text:
        raise ValueError(f"{text}: no such model file. Pass a .keras file or a shipped name ({_names(shipped)}).")
    close = difflib.get_close_matches(text, list(shipped), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown model {text!r}.{hint} Shipped models: {_names(shipped)}; or pass a path to a .keras file."
    )


def _names(shipped):
    return ", ".join(shipped) or "none installed"


def load_model(name_or_path: str | Path, task: str | None = None) -> keras.Model:
    """Load a cvapps model (shipped name or ``.keras`` path) with ``safe_mode=True``.

    Args:
        task: when given, the model must be for this task (e.g. ``"classify"``).

    Raises:
        ValueError: unknown name, unreadable file, a Keras file that is not a cvapps model, or
            a model for another task.
    """
    path = resolve_model_path(name_or_path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: expected a .keras model file, got {path.suffix or 'no extension'}.")
    from cvapps._keras import import_keras

    keras = import_keras()
    import cvapps.nn.backbone  # noqa: F401  registers the serializable classes
    import cvapps.nn.kernel_layers  # noqa: F401  FixedConv2D (hand-made kernels)
    import cvapps.nn.layers  # noqa: F401
    import cvapps.nn.style_layers  # noqa: F401  instance normalisation of the style nets

    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad file; all mean "not loadable"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a loadable Keras model ({first[:200]}).") from None
    info = model_info(model, path)
    if task is not None and info.task != task:
        raise ValueError(f"{path}: this is a {info.task!r} model; the {task!r} command needs a {task!r} model.")
    return model


@dataclass(frozen=True)
class ModelInfo:
    """What a cvapps model says about itself.

    Attributes:
        task: one of ``TASKS``.
        class_names: names of the output classes (empty for tasks without classes).
        image_size: square input side, or None when any size is accepted.
        name: file stem of the model, for reports.
        settings: JSON values the task's post-processing needs (e.g. a detector's anchors).
    """

    task: str
    class_names: tuple
    image_size: int | None
    name: str
    settings: dict = field(default_factory=dict)


def model_info(model: keras.Model, path: str | Path | None = None) -> ModelInfo:
    """Read :class:`ModelInfo` off a loaded model.

    Raises:
        ValueError: the model has no cvapps ``Metadata`` layer.
    """
    try:
        layer = model.get_layer("cvapps_metadata")
    except ValueError:
        where = f"{path}: " if path else ""
        raise ValueError(
            f"{where}this Keras model is not a cvapps model (it has no 'cvapps_metadata' layer); "
            "train one with 'cvapps train' or pass a shipped model name."
        ) from None
    size = model.input_shape[1]
    name = Path(path).stem if path else model.name
    return ModelInfo(layer.task, tuple(layer.class_names), size, name, dict(layer.settings))


def keras_output_path(output: str | Path) -> Path:
    """Where a training run will save its model, checked before any work: a ``.keras`` path.

    >>> keras_output_path("runs/mine.keras").name
    'mine.keras'

    Raises:
        ValueError: the name does not end in ``.keras``.
    """
    output = Path(output)
    if output.suffix != ".keras":
        raise ValueError(f"output must end in .keras, received {str(output)!r}.")
    return output


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save ``model`` to ``path`` atomically (a temporary file, then a rename), without the
    optimizer state (it would double the file and is not needed to use the model)."""
    import keras

    if getattr(model, "optimizer", None) is not None:
        # Rebuild from config (clone_model would carry the compile state over).
        clean = keras.Model.from_config(model.get_config())
        clean.set_weights(model.get_weights())
        model = clean
    from cvapps.core.sinks import atomic_path

    temporary = atomic_path(path)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise ValueError(f"{path}: cannot write the model ({error.strerror or error}).") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
