"""Face data sets and training of the embedding network.

Data: one sub-folder per identity (``root/<person>/*.jpg``), already face crops (LFW, ORL,
IMFDB) or whole photos (Yale; pass ``detector="haar"``). Several roots may be merged; identities
are then named ``<root name>/<person>``. Every face goes through :func:`cvapps.faces.face_pixels`
(grayscale replicated to 3 channels, square resize), the same as at inference.

Splits are by identity (:func:`split_identities`), so validation and ``cvapps eval faces
--holdout`` never see a person that training saw.

Batches (:class:`PKBatches`) hold P identities x K images, the layout online triplet mining
needs; identities are drawn uniformly (not by image count, so the many two-image people of LFW
count as much as George W. Bush), images without replacement when an identity has K or more.
Augmentation in NumPy/OpenCV: flip, small rotation/scale/shift, brightness/contrast, blur.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvapps.core.sources import IMAGE_SUFFIXES
from cvapps.nn.training import (
    TrainResult,
    data_fingerprint,
    fit_resumable,
    record_output,
    run_folder,
    split_record,
    start_run,
)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@dataclass
class FaceData:
    """Aligned faces and their identities.

    Attributes:
        images: (N, S, S) uint8 grayscale aligned faces.
        labels: (N,) int32 indices into ``identities``.
        identities: one name per identity.
        paths: (N,) source file of every face.
        skipped: one-line messages for files that could not be read or had no face.
    """

    images: np.ndarray
    labels: np.ndarray
    identities: tuple
    paths: tuple
    skipped: list = field(default_factory=list)

    def __post_init__(self):
        if not len(self.images) == len(self.labels) == len(self.paths):
            raise ValueError(
                f"{len(self.images)} images, {len(self.labels)} labels, {len(self.paths)} paths; they must match."
            )

    def __len__(self):
        return len(self.labels)

    def subset(self, index: ArrayLike) -> FaceData:
        index = np.asarray(index, np.int64)
        return FaceData(
            self.images[index], self.labels[index], self.identities, tuple(self.paths[i] for i in index), self.skipped
        )


def list_identity_folders(roots: str | Path | Iterable[str | Path]) -> list[tuple[str, list[Path]]]:
    """[(identity name, [image paths])] of one or more folder-per-identity roots, sorted."""
    roots = [Path(r) for r in ([roots] if isinstance(roots, (str, Path)) else roots)]
    if not roots:
        raise ValueError("no data folder given; pass one or more folders of <person>/<image> files.")
    people = []
    for root in roots:
        if not root.is_dir():
            raise ValueError(f"{root}: no such folder; expected a folder with one sub-folder per person.")
        prefix = f"{root.name}/" if len(roots) > 1 else ""
        for folder in sorted(d for d in root.iterdir() if d.is_dir()):
            files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                people.append((prefix + folder.name, files))
    if len(people) < 2:
        raise ValueError(
            f"{', '.join(map(str, roots))}: found {len(people)} person folder(s) with images; "
            "need at least 2 (layout: root/<person>/*.jpg)."
        )
    return people


def load_faces(
    roots: str | Path | Iterable[str | Path],
    image_size: int,
    detector: str = "none",
    workers: int = 4,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
    holdout: float | None = None,
    seed: int = 0,
) -> FaceData:
    """Read every image of folder-per-identity ``roots`` as an aligned ``image_size`` face.

    Unreadable files and (with a detector) photos without a face are skipped and reported in
    ``skipped``; the rest are kept. With ``holdout``, only the identities that
    ``split_identities(..., holdout, seed)`` would hold out are read (the same people, faster).
    """
    from cvapps.core.sources import read_image
    from cvapps.faces import face_pixels
    from cvapps.faces.detector import FaceDetector

    people = list_identity_folders(roots)
    wanted = held_out_identities(len(people), holdout, seed) if holdout else np.ones(len(people), bool)
    files = [p for i, (_, paths) in enumerate(people) if wanted[i] for p in paths]
    labels = [i for i, (_, paths) in enumerate(people) if wanted[i] for _ in paths]
    finder = FaceDetector(detector) if detector != "none" else None

    def load(path):
        try:
            image = read_image(path)
        except ValueError as error:
            return None, str(error)
        if finder is None:
            return face_pixels(image, image_size)[..., 0], None
        faces = finder.detect(image)
        if not faces:
            return None, f"{path}: no face found"
        return face_pixels(finder.align(image, faces[0], image_size), image_size)[..., 0], None

    with ThreadPoolExecutor(workers if finder is None else 1) as pool:
        results = pool.map(load, files, chunksize=32)
        results = list(progress(results, len(files)) if progress else results)
    keep = [i for i, (face, _) in enumerate(results) if face is not None]
    images = np.stack([results[i][0] for i in keep]) if keep else np.zeros((0, image_size, image_size), np.uint8)
    return FaceData(
        images,
        np.asarray(labels, np.int32)[keep],
        tuple(n for n, _ in people),
        tuple(str(files[i]) for i in keep),
        [m for _, m in results if m],
    )


def split_identities(data: FaceData, fraction: float, seed: int = 0) -> tuple[FaceData, FaceData]:
    """Split by identity: (train, held_out); ``fraction`` of the identities (at least one) go to
    held_out, chosen by ``seed``. Training and ``eval --holdout`` call this with the same
    arguments, so they agree on who is held out.

    >>> data = FaceData(np.zeros((6, 4, 4), np.uint8), np.array([0, 0, 1, 1, 2, 2]), ("a", "b", "c"), tuple("uvwxyz"))
    >>> train, held = split_identities(data, 0.34, seed=0)
    >>> len(set(train.labels) & set(held.labels)), len(held)
    (0, 2)
    """
    mask = held_out_identities(len(data.identities), fraction, seed)[data.labels]
    return data.subset(np.flatnonzero(~mask)), data.subset(np.flatnonzero(mask))


def held_out_identities(count: int, fraction: float, seed: int = 0) -> np.ndarray:
    """(count,) bool: which of ``count`` identities (in sorted folder order) are held out:
    round(count * fraction), at least one, drawn by a permutation seeded with ``seed``."""
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction must be in (0, 1), received {fraction}.")
    order = np.random.default_rng(seed).permutation(count)
    held = np.zeros(count, bool)
    held[order[: max(1, round(count * fraction))]] = True
    return held


def augment_faces(
    images: np.ndarray,
    rng: np.random.Generator,
    rotate: float = 10.0,
    scale: float = 0.1,
    shift: float = 0.06,
    flip: bool = True,
) -> np.ndarray:
    """(N, S, S) uint8 -> augmented (N, S, S) uint8: flip, rotation in +-rotate degrees, scale
    1 +- scale, shift +- shift * S, contrast x[0.7, 1.3], brightness +-25, Gaussian blur (20%)."""
    import cv2

    n, size, _ = images.shape
    out = np.empty_like(images)
    angles = rng.uniform(-rotate, rotate, n)
    scales = rng.uniform(1 - scale, 1 + scale, n)
    shifts = rng.uniform(-shift, shift, (n, 2)) * size
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    blurs = rng.random(n) < 0.2
    for i in range(n):
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angles[i], scales[i])
        matrix[:, 2] += shifts[i]
        face = images[i, :, ::-1] if flips[i] else images[i]
        face = cv2.warpAffine(np.ascontiguousarray(face), matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
        if blurs[i]:
            face = cv2.GaussianBlur(face, (0, 0), rng.uniform(0.5, 1.5))
        out[i] = face
    contrast = rng.uniform(0.7, 1.3, (n, 1, 1))
    brightness = rng.uniform(-25, 25, (n, 1, 1))
    mean = out.mean(axis=(1, 2), keepdims=True)
    return np.clip((out - mean) * contrast + mean + brightness, 0, 255).astype(np.uint8)


def _py_dataset_base():
    from cvapps._keras import import_keras

    return import_keras().utils.PyDataset


class PKBatches(_py_dataset_base()):
    """Batches of P identities x K faces: (float32 (P*K, S, S, 3) pixels in [0, 255], (P*K,) labels).

    Args:
        data: :class:`FaceData`; identities with fewer than 2 faces are left out (no positive).
        identities_per_batch, images_per_identity: P and K.
        steps: batches per epoch.
        augment: apply :func:`augment_faces`.
    """

    def __init__(
        self,
        data: FaceData,
        identities_per_batch: int = 16,
        images_per_identity: int = 4,
        steps: int = 100,
        augment: bool = True,
        seed: int = 0,
        workers: int = 2,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        counts = np.bincount(data.labels, minlength=len(data.identities))
        self.people = np.flatnonzero(counts >= 2)
        if len(self.people) < 2:
            raise ValueError(
                f"only {len(self.people)} identities have 2 or more faces; triplet training needs at least 2."
            )
        self.members = {int(p): np.flatnonzero(data.labels == p) for p in self.people}
        self.data, self.steps, self.augment, self.seed = data, steps, augment, seed
        self.p = min(identities_per_batch, len(self.people))
        self.k = images_per_identity
        self.epoch = 0

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        rng = np.random.default_rng((self.seed, self.epoch, index))
        people = rng.choice(self.people, self.p, replace=False)
        rows = np.concatenate(
            [rng.choice(self.members[int(p)], self.k, replace=len(self.members[int(p)]) < self.k) for p in people]
        )
        images = self.data.images[rows]
        if self.augment:
            images = augment_faces(images, rng)
        pixels = np.repeat(images[..., None], 3, axis=-1).astype(np.float32)
        return pixels, self.data.labels[rows].astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def set_epoch(self, epoch: int) -> None:
        """Draw the batches of (0-based) ``epoch`` next: a resumed run replays the epoch it resumes at."""
        self.epoch = epoch


def train_faces(
    data: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    loss: str = "triplet",
    mining: str = "semihard",
    margin: float = 0.2,
    val_fraction: float = 0.1,
    detector: str = "none",
    family: str = "mobilenetv2",
    size: str = "s",
    alpha: float = 0.35,
    weights: str | Path | None = "imagenet",
    image_size: int = 96,
    embedding_dim: int = 128,
    epochs: int = 20,
    steps_per_epoch: int = 100,
    identities_per_batch: int = 16,
    images_per_identity: int = 4,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    val_pairs: int = 3000,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    verbose: int | str = 1,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
    log: Callable[[str], object] | None = None,
    restart: str = "check",
    overwrite: bool = False,
) -> TrainResult:
    """Train a face embedding model on folder-per-identity ``data``; save it to ``output``.

    Args:
        data: a folder or a list of folders (``root/<person>/*``), merged.
        loss: ``"triplet"`` (online ``mining``, margin ``margin``) or ``"pairs"`` (logistic
            regression on element-wise squared differences of every pair in the batch).
        val_fraction: identities held out (by :func:`split_identities` with ``seed``) to choose
            the threshold and report pair accuracy after every epoch.
        detector: ``"none"`` when the images are face crops, else ``"haar"``/``"yunet"``.
        family, size, alpha, weights, image_size: the backbone (:func:`cvapps.nn.backbone.build_backbone`).
        epochs, steps_per_epoch: training length; a batch is identities_per_batch x
            images_per_identity faces.
        checkpoint_dir: resumable state (default ``runs/<output stem>``); rerunning the same
            command resumes after the last finished epoch.
        log: optional callable(str) for one-line progress messages (the CLI prints them).
        restart: ``"check"``, ``"resume"`` or ``"fresh"`` (see :func:`cvapps.nn.training.start_run`);
            more ``epochs`` than a finished run continue it.
        overwrite: replace an existing ``output`` this run folder did not write (a rerun needs none).

    Returns:
        :class:`cvapps.nn.training.TrainResult` (``metrics``: held-out pair metrics); the model's
        Metadata settings hold the threshold that maximised pair accuracy on the held-out
        identities (``threshold``, for 1:1 verification) and the identification threshold of
        :func:`identify_settings` on them (``identify_threshold``, for 1:N), when there are
        enough held-out people.
    """
    from cvapps.nn.training import run_arguments

    arguments = run_arguments(locals(), exclude=("log", "val_pairs"))  # what defines the run
    from cvapps._keras import import_keras

    keras = import_keras()
    from cvapps.faces import build_face_model, embed_faces, pair_metrics, sample_pairs
    from cvapps.faces.losses import PairLogits, PairLoss, TripletLoss
    from cvapps.models import keras_output_path, save_model
    from cvapps.nn.backbone import build_backbone
    from cvapps.nn.layers import OneCycle

    started = time.time()
    log = log or (lambda message: None)
    output = keras_output_path(output)
    if loss not in ("triplet", "pairs"):
        raise ValueError(f"loss must be 'triplet' or 'pairs', received {loss!r}.")
    faces = load_faces(data, image_size, detector, progress=progress)
    train, val = split_identities(faces, val_fraction, seed)
    log(
        f"{len(faces)} faces of {len(faces.identities)} people; training on {len(train)} faces, "
        f"{len(val)} faces of {len(set(val.labels.tolist()))} held-out people for validation"
    )
    val_pairs_index = sample_pairs(val.labels, val_pairs, seed)

    keras.utils.set_random_seed(seed)
    backbone = build_backbone(family=family, size=size, alpha=alpha, image_size=image_size, weights=weights)
    settings = {
        "loss": loss,
        "mining": mining if loss == "triplet" else None,
        "margin": margin,
        "colour": "gray3",
        "detector_margin": None,
        "data": [str(d) for d in np.atleast_1d(data)],
        "split": split_record(val_fraction, seed, val),
    }
    model = build_face_model(backbone, embedding_dim, settings=settings)
    if loss == "triplet":
        trainer, objective = model, TripletLoss(margin, mining)
    else:
        trainer = keras.Model(model.input, PairLogits(name="pair_logits")(model.output), name="pair_trainer")
        objective = PairLoss()
    batches = PKBatches(train, identities_per_batch, images_per_identity, steps_per_epoch, seed=seed)
    optimizer = keras.optimizers.AdamW(
        OneCycle(learning_rate, epochs * steps_per_epoch, warmup=0.1), weight_decay=weight_decay
    )
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    trainer.compile(optimizer=optimizer, loss=objective)

    run_dir = run_folder(checkpoint_dir, output)
    start_run(
        run_dir,
        arguments,
        data_fingerprint(train, val),
        restart=restart,
        output=output,
        overwrite=overwrite,
    )

    class PairAccuracy(keras.callbacks.Callback):
        """Held-out pair accuracy and AUC after every epoch (logged as val_accuracy, val_auc)."""

        def on_epoch_end(self, epoch, logs=None):
            embeddings = embed_faces(model, val.images, batch_size=128)
            metrics = pair_metrics(embeddings, val_pairs_index, folds=10)
            if logs is not None:
                logs["val_accuracy"], logs["val_auc"] = metrics["accuracy"], metrics["auc"]
            log(
                f"epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f}, held-out pair accuracy "
                f"{metrics['accuracy']:.4f}, auc {metrics['auc']:.4f} ({time.time() - started:.0f} s)"
            )

    done = fit_resumable(
        trainer, batches, run_dir, epochs=epochs, callbacks=[PairAccuracy()], verbose=verbose, keep=model
    )
    embeddings = embed_faces(model, val.images, batch_size=128)
    metrics = pair_metrics(embeddings, val_pairs_index, folds=10)
    threshold = metrics["threshold"]
    metadata = model.get_layer("cvapps_metadata")
    metadata.settings.update(
        {"threshold": threshold, "val_accuracy": metrics["accuracy"], "val_fraction": val_fraction, "seed": seed}
    )
    metadata.settings.update(identify_settings(embeddings, val.labels, seed=seed))
    save_model(model, output)
    record_output(run_dir, output)
    return TrainResult(
        output,
        {"main": done.history},
        time.time() - started,
        list(faces.skipped),
        ("main",) if done.reused else (),
        metrics,
    )


def identify_settings(
    embeddings: np.ndarray,
    labels: np.ndarray,
    gallery_people: int = 10,
    false_name_rate: float = 1e-3,
    trials: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The identification (1:N) settings of a face model, from embeddings of held-out people.

    Simulated galleries (:func:`cvapps.faces.metrics.simulate_galleries`, one photo a person)
    of ``gallery_people`` people (fewer when fewer were held out): ``identify_threshold`` is the
    largest threshold naming at most ``false_name_rate`` of the strangers;
    ``identify_false_name_rates`` ({people: rate}) and ``identify_correct_name_rate`` are
    measured there. Returns {} when there are too few held-out people (fewer than 3, or too
    few with two photos): the model then identifies with its verification threshold.
    """
    from cvapps.faces.metrics import simulate_galleries

    people = len(set(np.asarray(labels).tolist()))
    size = min(gallery_people, people - 1)
    if size < 2:
        return {}
    try:
        sim = simulate_galleries(embeddings, labels, size, 1, trials, seed)
    except ValueError:  # too few people with a second photo to probe with
        return {}
    threshold = sim.threshold_at(false_name_rate)
    return {
        "identify_threshold": threshold,
        "identify_false_name_rates": {str(size): sim.false_name_rate(threshold)},
        "identify_correct_name_rate": sim.correct_name_rate(threshold),
        "identify_gallery_people": size,
    }
