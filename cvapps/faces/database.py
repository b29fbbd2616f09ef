"""A face database on disk: one sub-folder of photos per person, embeddings cached beside them.

    faces_db/
      Ada_Lovelace/ada1.jpg, ada2.jpg      <- enrolled photos (copies)
      Alan_Turing/turing.png
      .cache/Ada_Lovelace.npz              <- embeddings of the largest face of every photo

A cache file holds, per photo, its name, modification time (ns) and size, and the embedding;
the file also records the model fingerprint and detector. :meth:`FaceDatabase.refresh` re-encodes
exactly the photos that are new or changed, drops removed ones, and starts over when the model
or detector differs. Adding a person is copying photos into a folder: no retraining.

    >>> from cvapps.faces.database import FaceDatabase                   # doctest: +SKIP
    >>> db = FaceDatabase("faces_db")                                   # shipped model, Haar  # doctest: +SKIP
    >>> db.enroll("Ada Lovelace", ["ada1.jpg"])                         # doctest: +SKIP
    >>> [(who.name, round(who.distance, 2)) for who in db.identify("group.jpg")]  # doctest: +SKIP
    [('Ada_Lovelace', 0.41), ('unknown', 1.37)]
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvapps.core.sources import IMAGE_SUFFIXES

if TYPE_CHECKING:
    import keras

    from cvapps.faces.detector import Face, FaceDetector
    from cvapps.faces.encoder import FaceEncoder
    from cvapps.runtime import KerasModel, OnnxModel

UNKNOWN = "unknown"
CACHE = ".cache"


@dataclass(frozen=True)
class Identity:
    """Who one face is.

    Attributes:
        box: (x1, y1, x2, y2) pixels of the face.
        name: the closest enrolled person, or ``"unknown"`` when farther than ``threshold``.
        distance: squared distance to the closest enrolled photo of ``candidate`` (None if the
            database is empty).
        candidate: the closest enrolled person whatever the distance (None if empty).
        threshold: the threshold used.
    """

    box: tuple
    name: str
    distance: float | None
    candidate: str | None
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "name": self.name,
            "distance": None if self.distance is None else round(self.distance, 6),
            "candidate": self.candidate,
            "threshold": round(self.threshold, 6),
        }


@dataclass(frozen=True)
class Enrollment:
    """Result of :meth:`FaceDatabase.enroll`: files added to the person's folder, and
    "source: reason" for photos left out (unreadable, no face)."""

    name: str
    added: tuple
    skipped: tuple


def safe_name(name: str) -> str:
    """A person's name as a folder name: spaces to underscores, no path characters.

    >>> safe_name("Ada Lovelace"), safe_name(" J. R. R. Tolkien ")
    ('Ada_Lovelace', 'J._R._R._Tolkien')
    """
    cleaned = re.sub(r"[^\w.\-]+", "_", str(name).strip()).strip("._")
    if not cleaned:
        raise ValueError(f"person name {name!r} has no usable characters; use letters, digits, spaces, . or -.")
    return cleaned


class FaceDatabase:
    """Enrolled people and their cached embeddings in folder ``root``.

    Args:
        root: the database folder (created by :meth:`enroll` if missing).
        encoder: a :class:`cvapps.faces.FaceEncoder`, or a model name/path (then ``detector`` is used).
    """

    def __init__(
        self,
        root: str | Path,
        encoder: FaceEncoder | str | Path | keras.Model | OnnxModel | KerasModel | None = None,
        detector: str | FaceDetector = "haar",
    ):
        from cvapps.faces import FaceEncoder

        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"{self.root} is a file; a face database is a folder with one sub-folder per person.")
        self.encoder = encoder if isinstance(encoder, FaceEncoder) else FaceEncoder(encoder, detector)
        self._memory = {}

    def people(self) -> list[str]:
        """Names of the enrolled people (sub-folders holding at least one photo), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and d.name != CACHE and _photos(d))

    def enroll(self, name: str, images: str | Path | np.ndarray | Iterable[str | Path | np.ndarray]) -> Enrollment:
        """Copy ``images`` (paths or (H, W, 3) uint8 RGB arrays) into ``root/<name>/`` after
        checking each holds a face; then refresh that person's cache.

        Returns:
            :class:`Enrollment`.

        Raises:
            ValueError: no image given, or none of them had a face (nothing is added then).
        """
        from cvapps.core.sinks import write_image
        from cvapps.core.sources import read_image

        images = (
            [images]
            if isinstance(images, (str, Path, np.ndarray)) and not (isinstance(images, np.ndarray) and images.ndim == 4)
            else list(images)
        )
        if not images:
            raise ValueError("no images given to enroll; pass one or more photos of the person.")
        person = safe_name(name)
        folder = self.root / person
        added, skipped = [], []
        for number, image in enumerate(images):
            source = str(image) if isinstance(image, (str, Path)) else f"array {number}"
            try:
                pixels = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
                faces = self.encoder.detector.detect(pixels)
            except ValueError as error:
                skipped.append(str(error))
                continue
            if not faces:
                skipped.append(f"{source}: no face found")
                continue
            folder.mkdir(parents=True, exist_ok=True)
            if isinstance(image, (str, Path)):
                target = _free_name(folder, Path(image).name)
                shutil.copy2(image, target)
            else:
                target = write_image(_free_name(folder, f"photo_{number}.png"), pixels)
            added.append(str(target))
        if not added:
            raise ValueError(f"no face found in any photo of {name!r}: " + "; ".join(skipped))
        self.refresh(person)
        return Enrollment(person, tuple(added), tuple(skipped))

    def refresh(self, person: str) -> tuple[list[str], np.ndarray]:
        """Bring ``person``'s cache up to date; returns (files, (F, D) embeddings) of the photos
        that have a face. Re-encodes only new or changed photos (name, mtime, size)."""
        folder = self.root / person
        cache_path = self.root / CACHE / f"{person}.npz"
        photos = _photos(folder)
        stamp = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in photos}
        old = self._read_cache(cache_path)
        files, codes, changed = [], [], set(old) != set(stamp)
        for photo in photos:
            entry = old.get(photo.name)
            if entry is not None and entry[0] == stamp[photo.name]:
                code = entry[1]
            else:
                changed = True
                try:
                    faces, embeddings = self.encoder.encode(photo)
                except ValueError:
                    faces = []
                code = embeddings[0] if faces else None
            old[photo.name] = (stamp[photo.name], code)
            if code is not None:
                files.append(photo.name)
                codes.append(code)
        if changed:
            self._write_cache(cache_path, {name: old[name] for name in stamp})
        dim = int(self.encoder.info.settings.get("embedding_dim", 128))
        return files, (np.stack(codes) if codes else np.zeros((0, dim), np.float32))

    def embeddings(self) -> tuple[list[str], np.ndarray]:
        """(names, (M, D) embeddings): one row per enrolled photo with a face, after refreshing."""
        names, rows = [], []
        for person in self.people():
            _, codes = self.refresh(person)
            names += [person] * len(codes)
            rows.append(codes)
        dim = int(self.encoder.info.settings.get("embedding_dim", 128))
        return names, (np.concatenate(rows) if rows else np.zeros((0, dim), np.float32))

    def identify(
        self,
        image: str | Path | np.ndarray,
        threshold: float | None = None,
        gallery: tuple[Sequence[str], np.ndarray] | None = None,
    ) -> list[Identity]:
        """Name every face in ``image`` (path or RGB array), largest first.

        Args:
            threshold: squared-distance threshold (default: the model's).
            gallery: (names, embeddings) from :meth:`embeddings`, to skip the refresh per call
                (the webcam loop refreshes once).

        Returns:
            list of :class:`Identity` (empty when no face is found).
        """
        threshold = self.encoder.threshold if threshold is None else float(threshold)
        names, gallery_codes = gallery if gallery is not None else self.embeddings()
        faces, codes = self.encoder.encode(image)
        return match_faces(faces, codes, names, gallery_codes, threshold)

    def _read_cache(self, path):
        """{file name: ((mtime_ns, size), embedding or None)} if the cache matches model and detector."""
        if path in self._memory:
            return dict(self._memory[path])
        if not path.is_file():
            return {}
        try:
            with np.load(path, allow_pickle=False) as data:
                if (
                    str(data["model_id"]) != self.encoder.model_id
                    or str(data["detector"]) != self.encoder.detector.kind
                ):
                    return {}
                return {
                    str(n): ((int(m), int(s)), code if ok else None)
                    for n, m, s, ok, code in zip(
                        data["names"], data["mtimes"], data["sizes"], data["has_face"], data["embeddings"]
                    )
                }
        except (OSError, KeyError, ValueError):
            return {}  # a damaged cache is rebuilt

    def _write_cache(self, path, entries):
        from cvapps.core.sinks import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        dim = int(self.encoder.info.settings.get("embedding_dim", 128))
        names = sorted(entries)
        codes = [entries[n][1] for n in names]
        temporary = atomic_path(path)
        with open(temporary, "wb") as handle:
            np.savez(
                handle,
                names=np.array(names, dtype=str),
                model_id=self.encoder.model_id,
                detector=self.encoder.detector.kind,
                mtimes=np.array([entries[n][0][0] for n in names], np.int64),
                sizes=np.array([entries[n][0][1] for n in names], np.int64),
                has_face=np.array([c is not None for c in codes], bool),
                embeddings=np.stack([c if c is not None else np.zeros(dim, np.float32) for c in codes])
                if codes
                else np.zeros((0, dim), np.float32),
            )
        Path(temporary).replace(path)
        self._memory[path] = dict(entries)


def match_faces(
    faces: Sequence[Face], codes: np.ndarray, names: Sequence[str], gallery: np.ndarray, threshold: float
) -> list[Identity]:
    """Nearest enrolled photo for every face: list of :class:`Identity`.

    d(face, photo) = ||f - g||^2 over the (M, D) gallery; name = the closest photo's person
    when d <= threshold, else "unknown".

    >>> from cvapps.faces.detector import Face
    >>> gallery = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> found = match_faces([Face((0, 0, 9, 9)), Face((20, 0, 29, 9))], np.array([[0.96, 0.28], [-1.0, 0.0]]),
    ...                     ["ada", "alan"], gallery, threshold=0.5)
    >>> [(f.name, round(f.distance, 2)) for f in found]
    [('ada', 0.08), ('unknown', 2.0)]
    """
    if not len(faces):
        return []
    if len(names) == 0:
        return [Identity(f.box, UNKNOWN, None, None, threshold) for f in faces]
    distances = np.sum(np.square(np.asarray(codes)[:, None, :] - np.asarray(gallery)[None, :, :]), axis=-1)  # (F, M)
    best = np.argmin(distances, axis=1)
    out = []
    for face, row, k in zip(faces, distances, best):
        distance = float(row[k])
        out.append(Identity(face.box, names[k] if distance <= threshold else UNKNOWN, distance, names[k], threshold))
    return out


def _photos(folder):
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _free_name(folder, name):
    """``folder/name``, or ``folder/stem_2.suffix`` ... when that exists."""
    target = Path(folder) / name
    stem, suffix, k = target.stem, target.suffix, 2
    while target.exists():
        target = Path(folder) / f"{stem}_{k}{suffix}"
        k += 1
    return target
