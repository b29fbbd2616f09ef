"""Training a fast style net: cvapps train style's recipe."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cvapps.core.sources import IMAGE_SUFFIXES
from cvapps.style import DEFAULT_CONTENT_LEVEL
from cvapps.style.costs import PerceptualLoss, build_loss_network
from cvapps.style.predict import _resize_short, read_style_image, stylize_array
from cvapps.style.transformer import build_transformer

if TYPE_CHECKING:
    from cvapps.nn.training import TrainResult
    from cvapps.style.costs import LossNetwork

# --- training ----------------------------------------------------------------------------------


def list_content_images(folders: Sequence[str | Path]) -> list[Path]:
    """Image files under each folder (recursive, sorted), a list of Paths.

    Raises:
        ValueError: a folder does not exist, or no images were found at all.
    """
    paths = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a folder; --content takes folders of photos.")
        paths += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images found under {', '.join(map(str, folders))}.")
    return paths


def load_photos(paths: Iterable[str | Path], side: int) -> tuple[list[np.ndarray], list[str]]:
    """Decode photos with the shorter side resized to ``side`` (JPEG draft mode: fast).

    Returns:
        (list of (H, W, 3) uint8 arrays, list of "path: reason" for unreadable files).
    """
    from PIL import Image

    photos, skipped = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (side, side))
                image = image.convert("RGB")
                scale = side / min(image.size)
                size = (max(side, round(image.size[0] * scale)), max(side, round(image.size[1] * scale)))
                photos.append(np.asarray(image.resize(size, Image.BILINEAR)))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            skipped.append(f"{path}: {type(error).__name__}: {error}")
    return photos, skipped


def _batches_class():
    import keras

    class ContentBatches(keras.utils.PyDataset):
        """Random ``size`` x ``size`` crops (random horizontal flips) of the photos, ``batch_size``
        per step, ``steps`` steps per epoch; (B, S, S, 3) float32 pixels."""

        def __init__(self, photos, size, batch_size, steps, seed=0):
            super().__init__()
            self.photos, self.size, self.batch_size, self.steps, self.seed = photos, size, batch_size, steps, seed
            self.epoch = 0

        def __len__(self):
            return self.steps

        def on_epoch_end(self):
            self.epoch += 1

        def set_epoch(self, epoch):
            """Draw the crops of ``epoch`` next (a resumed run replays the epoch it resumes at)."""
            self.epoch = epoch

        def __getitem__(self, index):
            rng = np.random.default_rng((self.seed, self.epoch, index))
            batch = np.empty((self.batch_size, self.size, self.size, 3), np.float32)
            for b in range(self.batch_size):
                photo = self.photos[rng.integers(len(self.photos))]
                top = rng.integers(photo.shape[0] - self.size + 1)
                left = rng.integers(photo.shape[1] - self.size + 1)
                crop = photo[top : top + self.size, left : left + self.size]
                batch[b] = crop[:, ::-1] if rng.random() < 0.5 else crop
            return batch

    return ContentBatches


def _trainer_class():
    from cvapps.style.costs import perceptual_model_class

    class StyleTrainer(perceptual_model_class()):
        """Wraps the transformation net; its loss is the perceptual loss of its outputs."""

        def __init__(self, transformer, loss):
            super().__init__(loss)  # each batch of photos is its own content
            self.transformer = transformer

        def call(self, x, training=False):
            return self.transformer(x, training=training)

    return StyleTrainer


def _samples_callback(transformer, photos, folder, every):
    import keras

    from cvapps.core.sinks import write_image

    class Samples(keras.callbacks.Callback):
        """Every ``every`` epochs, stylise the sample photos and save them side by side."""

        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % every:
                return
            outputs = [stylize_array(transformer, photo) for photo in photos]
            write_image(Path(folder) / f"epoch_{epoch + 1:03d}.jpg", np.concatenate(outputs, axis=1), overwrite=True)

    return Samples()


def train_style(
    style_image: str | Path,
    content: Sequence[str | Path],
    output: str | Path,
    *,
    image_size: int = 160,
    batch_size: int = 4,
    epochs: int = 10,
    steps_per_epoch: int = 80,
    learning_rate: float = 3e-3,
    content_weight: float = 1.0,
    style_weight: float = 2.0,
    tv_weight: float = 5.0,
    style_size: int = 256,
    loss_network: str | LossNetwork = "auto",
    content_level: str = DEFAULT_CONTENT_LEVEL,
    style_levels: Mapping[str, float] | None = None,
    width: int = 16,
    residual_blocks: int = 4,
    downsamples: int = 2,
    separable: bool = True,
    max_images: int | None = None,
    checkpoint_dir: str | Path | None = None,
    sample_every: int = 1,
    seed: int = 0,
    verbose: int | str = 2,
    restart: str = "check",
    overwrite: bool = False,
) -> TrainResult:
    """Train a fast style network for one painting on folders of content photos.

    Args:
        style_image: path of the painting (its shorter side is resized to ``style_size``: this
            sets the scale of the brush strokes relative to ``image_size`` crops).
        content: list of folders of photos (recursive).
        output: the ``.keras`` file written at the end (atomically).
        image_size: side of the square random crops trained on.
        epochs, steps_per_epoch: training length; ``batch_size`` crops per step; Adam with a
            one-cycle ``learning_rate``.
        content_weight, style_weight, tv_weight: alpha, beta, gamma of the perceptual loss.
        width, residual_blocks, downsamples, separable: :func:`build_transformer`.
        checkpoint_dir: resumable state (``BackupAndRestore``), ``log.csv`` and ``samples/``
            (stylised sample photos every ``sample_every`` epochs); default ``runs/<output stem>``.
            Rerunning the same command resumes; after a finished run it only re-saves; more
            ``epochs`` continue it.
        restart: ``"check"``, ``"resume"`` or ``"fresh"`` (see :func:`cvapps.nn.training.start_run`).
        overwrite: replace an existing ``output`` this run folder did not write (a rerun needs none).

    Besides ``output`` it writes ``<output stem>.style.jpg``, the painting at ``style_size``.

    Returns:
        :class:`cvapps.nn.training.TrainResult` (``history["main"]``: loss, content_loss, style_loss, tv_loss per epoch).
    """
    from cvapps.nn.training import run_arguments

    arguments = run_arguments(locals(), exclude=("style_image", "content", "sample_every"))  # what defines the run
    from cvapps._keras import import_keras

    keras = import_keras()
    from cvapps.models import keras_output_path, save_model
    from cvapps.nn.layers import OneCycle
    from cvapps.nn.training import (
        TrainResult,
        fingerprint,
        fit_resumable,
        read_history,
        record_output,
        run_folder,
        start_run,
    )

    started = time.time()
    output = keras_output_path(output)
    if not isinstance(image_size, int) or image_size < 32 or image_size % 2**downsamples:
        raise ValueError(
            f"image_size must be an integer >= 32 and a multiple of {2**downsamples}, received {image_size!r}."
        )
    style_path = Path(style_image)
    painting = read_style_image(style_path, style_size)
    paths = list_content_images(content)
    if max_images:
        paths = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))[:max_images]]
    photos, skipped = load_photos(paths, round(image_size * 1.15))
    if not photos:
        raise ValueError(f"none of the {len(paths)} content images could be read.")

    keras.utils.set_random_seed(seed)
    network = build_loss_network(loss_network, content_level, style_levels)
    loss = PerceptualLoss(network, painting, content_weight, style_weight, tv_weight)
    settings = {
        "style_image": style_path.name,
        "style_image_path": str(style_path),
        "style_size": style_size,
        "loss_network": network.name,
        "content_level": content_level,
        "style_levels": network.style_levels,
        "content_weight": content_weight,
        "style_weight": style_weight,
        "tv_weight": tv_weight,
        "image_size_trained": image_size,
    }
    transformer = build_transformer(width, residual_blocks, downsamples, separable, settings, name=output.stem)
    trainer = _trainer_class()(transformer, loss)
    trainer(np.zeros((1, image_size, image_size, 3), np.float32))  # built, as BackupAndRestore needs
    trainer.compile(optimizer=keras.optimizers.Adam(OneCycle(learning_rate, epochs * steps_per_epoch, warmup=0.1)))

    run_dir = run_folder(checkpoint_dir, output)
    arguments["loss_network"] = network.name
    start_run(
        run_dir,
        arguments,
        fingerprint(style_path, [str(p) for p in paths]),
        restart=restart,
        output=output,
        overwrite=overwrite,
    )
    sample_photos = [_resize_short(p, 192)[:192, :192] for p in photos[:3]]
    batches = _batches_class()(photos, image_size, batch_size, steps_per_epoch, seed)
    done = fit_resumable(
        trainer,
        batches,
        run_dir,
        epochs=epochs,
        verbose=verbose,
        keep=transformer,
        callbacks=[_samples_callback(transformer, sample_photos, run_dir / "samples", sample_every)],
    )
    save_model(transformer, output)
    record_output(run_dir, output)
    from cvapps.core.sinks import write_image

    # The painting travels with the model (eval and --method optimize with this style use it).
    write_image(output.with_suffix(".style.jpg"), painting, overwrite=True)
    history = read_history(run_dir / "main_log.csv") if (run_dir / "main_log.csv").is_file() else done.history
    return TrainResult(output, {"main": history}, time.time() - started, skipped, ("main",) if done.reused else ())
