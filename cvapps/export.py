"""Export a cvapps model to ONNX, a TensorFlow SavedModel or LiteRT, and prove it matches.

    >>> from cvapps.export import export_model
    >>> report = export_model("cifar10", format="onnx")          # doctest: +SKIP
    >>> report.path, report.max_abs_diff                         # doctest: +SKIP
    (PosixPath('models/cifar10.onnx'), 4.2e-07)

    cvapps export cifar10 --format onnx                  # writes models/cifar10.onnx
    cvapps export runs/mine.keras --format litert --output mine.tflite

Every export is run on the same sample inputs as the Keras model before it is handed over; if
the largest absolute difference exceeds ``tolerance`` the artefact is deleted and a ValueError
says by how much it disagreed. An export is written beside its final place and renamed into it
only once it has passed, so a failed or interrupted export leaves nothing behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = {"onnx": ".onnx", "saved_model": "", "litert": ".tflite"}


@dataclass(frozen=True)
class ExportReport:
    """Result of a verified export: where it went, and how closely it matched Keras."""

    path: Path
    format: str
    max_abs_diff: float
    tolerance: float
    seconds: float


def sample_inputs(image_size: int | None, count: int = 4, seed: int | None = 0) -> np.ndarray:
    """Random pixels plus a black and a white image: (count + 2, S, S, 3) float32 in [0, 255]."""
    size = image_size or 96
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (count, size, size, 3))
    flat = np.stack([np.zeros((size, size, 3)), np.full((size, size, 3), 255.0)])
    return np.concatenate([noise, flat]).astype(np.float32)


def export_model(
    model: str | Path,
    format: str = "onnx",
    output: str | Path | None = None,
    tolerance: float = 1e-4,
    overwrite: bool = False,
) -> ExportReport:
    """Export a cvapps ``.keras`` model (shipped name or path) and verify the result.

    Args:
        format: ``"onnx"``, ``"saved_model"`` (a folder) or ``"litert"`` (``.tflite``).
        output: destination; default beside the ``.keras`` with the format's suffix.
        tolerance: largest allowed absolute difference between the export's and Keras's
            outputs on :func:`sample_inputs`.
        overwrite: replace an existing destination.

    Returns:
        :class:`ExportReport`.

    Raises:
        ValueError: unknown format, destination exists, the export failed, or its outputs
            differ from Keras's by more than ``tolerance`` (nothing is left behind).
    """
    from cvapps.models import load_model, model_info, resolve_model_path
    from cvapps.runtime import METADATA_KEY, file_sha256

    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; received {format!r}.")
    if format == "onnx":
        for package in ("tf2onnx", "onnx"):
            if importlib.util.find_spec(package) is None:
                raise ValueError(f"ONNX export needs the {package} package: pip install 'cvapps[export]'.")
    started = time.time()
    source = resolve_model_path(model)
    keras_model = load_model(source)
    info = model_info(keras_model, source)
    output = Path(output) if output else source.with_suffix(FORMATS[format])
    if output.suffix != FORMATS[format]:
        wanted = f"end in {FORMATS[format]}" if FORMATS[format] else "be a folder name without a suffix"
        raise ValueError(
            f"--output {output} for format {format!r} must {wanted} (received {output.suffix or 'no suffix'})."
        )
    if output.exists() and not overwrite:
        raise ValueError(f"{output} already exists; pass --overwrite (overwrite=True) to replace it.")
    inputs = sample_inputs(info.image_size)
    expected = np.asarray(keras_model.predict_on_batch(inputs))  # also builds the model's call

    output.parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        staged = workspace / output.name
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # tf2onnx's NumPy 2 notices
                keras_model.export(
                    str(staged), format="tf_saved_model" if format == "saved_model" else format, verbose=False
                )
        except Exception as error:  # exporters raise many types; all mean the export failed
            raise ValueError(f"exporting {source} to {format} failed: {type(error).__name__}: {error}") from None
        if format == "onnx":
            metadata = {
                "task": info.task,
                "class_names": list(info.class_names),
                "image_size": info.image_size,
                "settings": info.settings,
                "keras_sha256": file_sha256(source),
                "source": source.name,
            }
            _set_onnx_metadata(staged, {METADATA_KEY: json.dumps(metadata)})
        actual = RUNNERS[format](staged, inputs)
        difference = float(np.max(np.abs(actual - expected))) if actual.shape == expected.shape else float("inf")
        if not difference <= tolerance:
            raise ValueError(
                f"the {format} export of {source} does not match the Keras model: largest absolute difference "
                f"{difference:.3g} > tolerance {tolerance:g} (shapes {actual.shape} vs {expected.shape}); nothing was written."
            )
        if output.exists():
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        os.replace(staged, output)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return ExportReport(output, format, difference, tolerance, time.time() - started)


def _set_onnx_metadata(path, properties):
    import onnx

    model = onnx.load(str(path))
    for key, value in properties.items():
        entry = next((p for p in model.metadata_props if p.key == key), None) or model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _run_onnx(path, inputs):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def _run_saved_model(path, inputs):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(inputs)))


def _run_litert(path, inputs):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], inputs)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


RUNNERS = {"onnx": _run_onnx, "saved_model": _run_saved_model, "litert": _run_litert}
