"""A face database on disk: one sub-folder of photos per person, embeddings cached beside them.

    faces_db/
      Ada_Lovelace/ada1.jpg, ada2.jpg      <- enrolled photos (copies)
      Alan_Turing/turing.png
      .cache/Ada_Lovelace.npz              <- embeddings of the largest face of every photo
      .lock                                <- taken while a photo is checked and copied in

A cache file holds, per photo, its name, modification time (ns) and size, and the embedding;
the file also records the model fingerprint and detector. :meth:`FaceDatabase.refresh` re-encodes
exactly the photos that are new or changed, drops removed ones, and starts over when the model
or detector differs. The cache is derived data: a damaged one (truncated, empty, foreign) is
rebuilt from the photos, with a warning on the ``cvapps`` logger. Adding a person is copying
photos into a folder: no retraining. Enrolling a photo whose bytes are already in that person's
folder adds nothing (it is reported as already enrolled), also when several processes enroll
at once: the check and the copy happen under an exclusive lock on ``DB/.lock`` (POSIX ``flock``).

Identification names a face only within the model's identification (1:N) threshold
(:attr:`cvapps.faces.encoder.FaceEncoder.identify`), stricter than the 1:1 verification one.

    >>> from cvapps.faces.database import FaceDatabase                   # doctest: +SKIP
    >>> db = FaceDatabase("faces_db")                                   # shipped model, Haar  # doctest: +SKIP
    >>> db.enroll("Ada Lovelace", ["ada1.jpg"])                         # doctest: +SKIP
    >>> [(who.name, round(who.distance, 2)) for who in db.identify("group.jpg")]  # doctest: +SKIP
    [('Ada_Lovelace', 0.41), ('unknown', 1.37)]
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvapps.core.sources import IMAGE_SUFFIXES

if TYPE_CHECKING:
    import keras

    from cvapps.core.tracking import Tracker
    from cvapps.faces.detector import Face, FaceDetector
    from cvapps.faces.encoder import FaceEncoder
    from cvapps.runtime import KerasModel, OnnxModel

UNKNOWN = "unknown"
CACHE = ".cache"
LOCK = ".lock"
log = logging.getLogger("cvapps")


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
        track_id: with tracking (``cvapps webcam faces --track``, :func:`track_identities`), the face's
            track id across frames (-1: not a confirmed track yet); None when not tracked.
    """

    box: tuple
    name: str
    distance: float | None
    candidate: str | None
    threshold: float
    track_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {
            "box": [round(float(v), 1) for v in self.box],
            "name": self.name,
            "distance": None if self.distance is None else round(self.distance, 6),
            "candidate": self.candidate,
            "threshold": round(self.threshold, 6),
        }
        if self.track_id is not None:
            record["track_id"] = int(self.track_id)
        return record


def track_identities(identities: Sequence[Identity], tracker: Tracker) -> list[Identity]:
    """The faces of one frame through ``tracker`` (a :class:`cvapps.core.tracking.Tracker` kept across the
    frames): each gets its ``track_id``, and a track keeps the name it was identified as (the majority of
    its named frames), so a face turned away for a moment stays "ada" instead of turning "unknown".

    Faces carry no detector score here: every face is a confident box for the tracker.
    """
    identities = list(identities)
    boxes = np.array([who.box for who in identities], np.float32).reshape(-1, 4)
    index, track_id = tracker.update(boxes, np.ones(len(boxes), np.float32), np.zeros(len(boxes), np.int64))
    kept = [identities[i] for i in index]
    names = tracker.name_tracks(track_id, [who.name for who in kept], unknown="unknown")
    return [dataclasses.replace(who, name=name, track_id=int(t)) for who, name, t in zip(kept, names, track_id)]


@dataclass(frozen=True)
class Enrollment:
    """Result of :meth:`FaceDatabase.enroll`.

    Attributes:
        name: the person's folder name.
        added: files copied into the person's folder.
        skipped: "source: reason" for photos left out (unreadable, no face).
        already: "source: already enrolled as FILE" for photos whose bytes were already in the
            person's folder (nothing added for them).
    """

    name: str
    added: tuple
    skipped: tuple
    already: tuple = ()


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

        A photo whose bytes are already in the person's folder is not copied again (listed in
        ``Enrollment.already``); the check and the copy hold the database's lock, so concurrent
        enrolls of the same photo leave one copy.

        Returns:
            :class:`Enrollment`.

        Raises:
            ValueError: no image given, or none of them had a face (nothing is added then).
        """
        from cvapps.core.sources import read_image

        images = (
            [images]
            if isinstance(images, (str, Path, np.ndarray)) and not (isinstance(images, np.ndarray) and images.ndim == 4)
            else list(images)
        )
        if not images:
            raise ValueError("no images given to enroll; pass one or more photos of the person.")
        person = safe_name(name)
        added, skipped, already = [], [], []
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
            source_file = Path(image) if isinstance(image, (str, Path)) else None
            target, new = store_photo(self.root, person, source_file or pixels, f"photo_{number}.png")
            (added if new else already).append(str(target) if new else f"{source}: already enrolled as {target}")
        if not added and not already:
            raise ValueError(f"no face found in any photo of {name!r}: " + "; ".join(skipped))
        self.refresh(person)
        return Enrollment(person, tuple(added), tuple(skipped), tuple(already))

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
            threshold: squared-distance threshold (default: the model's identification
                threshold, ``encoder.identify_threshold``; see :class:`cvapps.faces.encoder.IdentifyThreshold`).
            gallery: (names, embeddings) from :meth:`embeddings`, to skip the refresh per call
                (the webcam loop refreshes once).

        Returns:
            list of :class:`Identity` (empty when no face is found).
        """
        threshold = self.encoder.identify_threshold if threshold is None else float(threshold)
        names, gallery_codes = gallery if gallery is not None else self.embeddings()
        faces, codes = self.encoder.encode(image)
        return match_faces(faces, codes, names, gallery_codes, threshold)

    def _read_cache(self, path):
        """{file name: ((mtime_ns, size), embedding or None)} if the cache matches model and detector.

        A damaged cache (empty, truncated, not an .npz, missing or inconsistent fields) reads as
        empty, so the person's photos are re-encoded and the cache rewritten; a warning says so.
        """
        if path in self._memory:
            return dict(self._memory[path])
        if not path.is_file():
            return {}
        dim = int(self.encoder.info.settings.get("embedding_dim", 128))
        try:
            with np.load(path, allow_pickle=False) as data:
                if (
                    str(data["model_id"]) != self.encoder.model_id
                    or str(data["detector"]) != self.encoder.detector.kind
                ):
                    return {}
                names, mtimes, sizes = data["names"], data["mtimes"], data["sizes"]
                has_face, embeddings = data["has_face"], data["embeddings"]
                if not len(names) == len(mtimes) == len(sizes) == len(has_face) == len(embeddings):
                    raise ValueError("its arrays differ in length")
                if embeddings.ndim != 2 or embeddings.shape[1] != dim:
                    raise ValueError(f"embeddings of shape {embeddings.shape}, expected (N, {dim})")
                return {
                    str(n): ((int(m), int(s)), code if ok else None)
                    for n, m, s, ok, code in zip(names, mtimes, sizes, has_face, embeddings)
                }
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as error:
            log.warning(
                "warning: %s: damaged face-database cache (%s); rebuilding it from the photos", path, _damage(error)
            )
            return {}

    def _write_cache(self, path, entries):
        from cvapps.core.sinks import atomic_path

        self._memory[path] = dict(entries)
        dim = int(self.encoder.info.settings.get("embedding_dim", 128))
        names = sorted(entries)
        codes = [entries[n][1] for n in names]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = atomic_path(path)
        except (OSError, ValueError) as error:  # derived data: identification goes on without it
            log.warning(
                "warning: cannot write the face-database cache %s (%s); the next run re-encodes its photos", path, error
            )
            return
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


def store_photo(
    root: str | Path, person: str, image: str | Path | np.ndarray, name: str = "photo.png"
) -> tuple[Path, bool]:
    """Put one photo into ``root/person/`` unless its bytes are already there.

    ``image``: a file (copied, keeping its name; ``stem_2.ext`` ... when taken) or an RGB array
    (written as PNG named ``name``). The check and the copy hold an exclusive lock on
    ``root/.lock``, so concurrent calls (threads or processes) never store the same bytes twice.

    Returns:
        (path in the folder, True when it was added; False: the existing copy's path).
    """
    from cvapps.core.sinks import write_image

    folder = Path(root) / person
    with database_lock(root):
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(image, (str, Path)):
            existing = _same_bytes(folder, Path(image).read_bytes())
            if existing is not None:
                return existing, False
            target = _free_name(folder, Path(image).name)
            shutil.copy2(image, target)
            return target, True
        target = write_image(_free_name(folder, name), image)
        existing = _same_bytes(folder, Path(target).read_bytes(), besides=Path(target))
        if existing is not None:
            Path(target).unlink()
            return existing, False
        return Path(target), True


@contextlib.contextmanager
def database_lock(root: str | Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``root/.lock`` for a ``with`` block (creates ``root``).

    POSIX only; where ``fcntl`` is missing (Windows) the block runs unlocked.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        fcntl = None
    with open(root / LOCK, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _damage(error):
    """What is wrong with a cache file, in a few words, from the exception reading it raised."""
    if isinstance(error, EOFError):
        return "empty file"
    if isinstance(error, (zipfile.BadZipFile, zlib.error)):
        return "truncated or not an .npz file"
    if isinstance(error, KeyError):
        return f"no {error} field"
    text = str(error).strip()
    if "pickled" in text:  # np.load's words for bytes that are not an .npy/.npz
        return "not an .npz file"
    return (text.splitlines()[0][:120] if text else type(error).__name__) or "unreadable"


def _same_bytes(folder, content, besides=None):
    """The photo of ``folder`` holding exactly ``content``, or None."""
    digest = None
    for photo in _photos(folder):
        if photo == besides or photo.stat().st_size != len(content):
            continue
        digest = digest or hashlib.sha256(content).digest()
        if hashlib.sha256(photo.read_bytes()).digest() == digest:
            return photo
    return None


def _free_name(folder, name):
    """``folder/name``, or ``folder/stem_2.suffix`` ... when that exists."""
    target = Path(folder) / name
    stem, suffix, k = target.stem, target.suffix, 2
    while target.exists():
        target = Path(folder) / f"{stem}_{k}{suffix}"
        k += 1
    return target
