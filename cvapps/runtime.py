"""Runtimes: run a cvapps model with onnxruntime or with Keras, through one small interface.

    >>> from cvapps.runtime import open_model
    >>> model = open_model("cifar10", task="classify")        # doctest: +SKIP
    >>> model.runtime, model.info.class_names[:2]             # doctest: +SKIP
    ('onnx', ('airplane', 'automobile'))
    >>> outputs = model.predict(batch)   # (N, S, S, 3) float32 pixels in [0, 255]  # doctest: +SKIP

Pre-processing lives inside the model and post-processing outside it (in the apps), so both
runtimes give the same results. ``runtime="auto"`` picks onnx wherever an ``.onnx`` made by
``cvapps export`` sits beside the ``.keras`` (and still matches it), else Keras. The onnx path
never imports TensorFlow or Keras: a process that only predicts starts in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from cvapps.models import ModelInfo, resolve_model_path

if TYPE_CHECKING:
    import keras
    import onnxruntime

RUNTIMES = ("auto", "onnx", "keras")
METADATA_KEY = "cvapps"


class OnnxModel:
    """A cvapps model exported to ONNX, run by onnxruntime on the CPU.

    Attributes:
        info: :class:`cvapps.models.ModelInfo` read from the file's metadata.
        path: the ``.onnx`` file.
    """

    runtime = "onnx"

    def __init__(self, path: str | Path):
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise ValueError(f"{self.path}: not a loadable ONNX model ({str(error).splitlines()[0][:200]}).") from None
        metadata = read_onnx_metadata(self.session)
        if metadata is None:
            raise ValueError(
                f"{self.path}: this ONNX file has no cvapps metadata; export it with 'cvapps export MODEL --format onnx'."
            )
        self.metadata = metadata
        self.info = ModelInfo(
            metadata["task"],
            tuple(metadata["class_names"]),
            metadata["image_size"],
            self.path.stem,
            metadata.get("settings", {}),
        )
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, batch: ArrayLike) -> np.ndarray:
        """(N, S, S, 3) pixels -> the model's output for the batch, as NumPy."""
        return self.session.run(None, {self.input_name: np.asarray(batch, np.float32)})[0]


class KerasModel:
    """A cvapps Keras model, run through its compiled predict function."""

    runtime = "keras"

    def __init__(self, model: keras.Model, path: str | Path | None = None):
        from cvapps.models import model_info

        self.model = model
        self.path = Path(path) if path else None
        self.info = model_info(model, path)

    def predict(self, batch: ArrayLike) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(np.asarray(batch, np.float32)))


OpenedModel = OnnxModel | KerasModel
"""What :func:`open_model` returns: ``.predict(batch)``, ``.info`` (:class:`cvapps.models.ModelInfo`), ``.runtime``."""


def open_model(
    model: str | Path | keras.Model | OpenedModel, task: str | None = None, runtime: str = "auto"
) -> OpenedModel:
    """A runnable model from a name, a path, a Keras model or an already opened model.

    Args:
        model: shipped name, ``.keras`` or ``.onnx`` path, ``keras.Model``, or the result of
            an earlier ``open_model`` (returned as is).
        task: when given, the model must be for this task.
        runtime: ``"onnx"``, ``"keras"`` or ``"auto"`` (onnx when a matching ``.onnx`` exists).

    Raises:
        ValueError: unknown runtime, no ``.onnx`` for ``runtime="onnx"``, no ``.keras`` for
            ``runtime="keras"``, or a model for another task.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, received {runtime!r}.")
    if isinstance(model, (OnnxModel, KerasModel)):
        opened = model
    elif hasattr(model, "predict_on_batch"):
        opened = KerasModel(model)
    else:
        opened = _open_cached(resolve_model_path(model), runtime)
    if task is not None and opened.info.task != task:
        raise ValueError(f"{model}: this is a {opened.info.task!r} model; a {task!r} model is needed here.")
    return opened


_OPENED: dict = {}  # (path, runtime, file times) -> opened model, most recently used last
CACHE_SIZE = 8


def _open_cached(path, runtime):
    """:func:`_open_path`, remembered: a loop of ``cvapps.classify(frame)`` opens its model once.

    The key holds the resolved path, the runtime asked for and the modification times of the ``.keras`` and
    ``.onnx`` files, so a model retrained or re-exported in place is opened again. At most ``CACHE_SIZE``
    models are kept (the least recently used goes first); :func:`clear_cache` empties it.
    """
    path = Path(path).resolve()
    stamps = tuple(
        p.stat().st_mtime_ns if p.is_file() else None for p in (path.with_suffix(".keras"), path.with_suffix(".onnx"))
    )
    key = (str(path), runtime, stamps)
    opened = _OPENED.pop(key, None)
    if opened is None:
        opened = _open_path(path, runtime)
    _OPENED[key] = opened
    while len(_OPENED) > CACHE_SIZE:
        _OPENED.pop(next(iter(_OPENED)))
    return opened


def clear_cache() -> None:
    """Forget every model :func:`open_model` opened from a name or a path."""
    _OPENED.clear()


def _open_path(path, runtime):
    keras_path = path.with_suffix(".keras")
    onnx_path = path.with_suffix(".onnx")
    if runtime == "keras" or (runtime == "auto" and not onnx_path.is_file()):
        if not keras_path.is_file():
            raise ValueError(f"{keras_path}: no such file; the keras runtime needs the .keras model.")
        from cvapps.models import load_model

        return KerasModel(load_model(keras_path), keras_path)
    if not onnx_path.is_file():
        raise ValueError(
            f"{onnx_path}: no such file. Make it with 'cvapps export {keras_path} --format onnx', "
            "or pass --runtime keras."
        )
    try:
        opened = OnnxModel(onnx_path)
    except ValueError as error:
        if runtime == "onnx" or not keras_path.is_file():
            raise
        warnings.warn(  # a damaged or foreign .onnx beside a good .keras: say which file, use the .keras
            f"{error} Using the keras runtime with {keras_path.name}; re-export with 'cvapps export {keras_path} "
            "--format onnx --overwrite' to get the fast path back.",
            stacklevel=3,
        )
        from cvapps.models import load_model

        return KerasModel(load_model(keras_path), keras_path)
    if keras_path.is_file() and opened.metadata.get("keras_sha256") != file_sha256(keras_path):
        if runtime == "onnx":
            raise ValueError(
                f"{onnx_path} was exported from a different {keras_path.name}; re-export it with "
                f"'cvapps export {keras_path} --format onnx --overwrite', or pass --runtime keras."
            )
        warnings.warn(
            f"{onnx_path} is older than {keras_path.name} (it was exported from another version); "
            "using the keras runtime. Re-export with 'cvapps export ... --overwrite' to get the fast path back.",
            stacklevel=3,
        )
        from cvapps.models import load_model

        return KerasModel(load_model(keras_path), keras_path)
    return opened


def read_onnx_metadata(session: onnxruntime.InferenceSession) -> dict[str, Any] | None:
    """The cvapps metadata dict stored in an ONNX file, or None."""
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return json.loads(text) if text else None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
