"""Detection data formats: YOLO, Pascal VOC, COCO JSON and Penn-Fudan folders -> :class:`DetectionData`.

:func:`load_detection` recognises the layout; :func:`load_detection_sets` loads and merges several
(keeping named classes). Boxes come back as xyxy float32 pixels of the original image; every
label that was skipped or clipped is one ``path:line: reason`` line in ``DetectionData.problems``.
The layouts and their conventions are described in :mod:`cvapps.detection.data`.

    >>> from cvapps.detection.formats import load_detection_sets
    >>> people = load_detection_sets(["../shared/data/coco128", "../shared/data/pennfudan"], ["person"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml import ElementTree as ET

from cvapps.core.boxes import parse_yolo_labels
from cvapps.core.data import read_yaml_names
from cvapps.core.sources import IMAGE_SUFFIXES, check_image
from cvapps.detection.data import DetectionData, DetectionSample


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, EXIF orientation applied, after the
    cheap checks of :func:`cvapps.core.sources.check_image` (pixel cap, truncated JPEG or PNG).

    Raises:
        ValueError: the file is missing, not an image, too large or truncated; the message names it.
    """
    return check_image(path)


def load_detection(path: str | Path, split: str | None = None) -> DetectionData:
    """Load a detection data set in YOLO, Pascal VOC, COCO JSON or Penn-Fudan layout.

    Args:
        path: the data set folder, a COCO ``.json`` file or a YOLO ``data.yaml``.
        split: optional split name. YOLO: ``images/<split>`` (or the path under ``<split>:`` in
            the yaml); VOC: the ids in ``ImageSets/Main/<split>.txt``; COCO folder: the json
            whose name contains ``split``. None: everything.

    Returns:
        A :class:`DetectionData` (see the module docstring for each format's conventions).

    Raises:
        ValueError: nothing at ``path``, a layout none of the formats match, an unknown split.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder; expected a detection data set folder or a COCO .json file.")
    if path.is_file():
        if path.suffix.lower() == ".json":
            return load_coco(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            return load_yolo(path.parent, split, yaml_path=path)
        raise ValueError(
            f"{path}: expected a data set folder, a COCO .json or a YOLO data.yaml, got a {path.suffix or 'plain'} file."
        )
    if (path / "labels").is_dir() and (path / "images").is_dir():
        return load_yolo(path, split)
    if (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir():
        return load_voc(path, split, images="JPEGImages", annotations="Annotations")
    annotations = path / "annotations"
    if annotations.is_dir() and any(annotations.glob("*.xml")):
        return load_voc(path, split)
    if (path / "annots").is_dir() and any((path / "annots").glob("*.xml")):  # a common VOC-format layout
        return load_voc(path, split, annotations="annots")
    if annotations.is_dir() and any(annotations.glob("*.txt")):
        _no_split(path, split, "Penn-Fudan")
        return load_pennfudan(path)
    jsons = sorted(path.glob("*.json")) + (sorted(annotations.glob("*.json")) if annotations.is_dir() else [])
    if jsons:
        if split is not None:
            jsons = [j for j in jsons if split in j.stem]
            if not jsons:
                raise ValueError(
                    f"{path}: no COCO json whose name contains split {split!r}; pass split=None or the json path."
                )
        preferred = [j for j in jsons if j.name == "annotations.json"]
        return load_coco((preferred or jsons)[0])
    raise ValueError(
        f"{path}: not a detection layout this loader knows. Expected images/ + labels/ (YOLO), "
        "images/ + annotations/*.xml (or annots/*.xml) or JPEGImages/ + Annotations/ (Pascal VOC), a COCO .json, "
        "or images/ + annotations/*.txt (Penn-Fudan)."
    )


def _no_split(path, split, kind):
    if split is not None:
        raise ValueError(
            f"{path}: a {kind} folder has no splits, received split={split!r}; pass split=None and use split_detection()."
        )


def _images_by_stem(folder):
    """``{stem: path}`` for the image files directly in ``folder``, first by sorted name."""
    found = {}
    for p in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else []:
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(p.stem, p)
    return found


def _sized_sample(image_path, problems, unreadable):
    """(width, height), or None after reporting an unreadable image (and listing it in ``unreadable``)."""
    try:
        return image_size(image_path)
    except ValueError as error:
        problems.append(f"{error} Image left out.")
        unreadable.append(image_path)
        return None


def _count_unreadable(where, unreadable, kept, problems):
    """The closing count line after the per-file lines of :func:`_sized_sample`."""
    if unreadable:
        problems.append(
            f"{where}: {len(unreadable)} of {len(unreadable) + kept} images could not be read and were left out "
            "(each named above)"
        )


def _clip_report(rows, width, height, where, problems):
    """Clip (N, 4) xyxy rows to the image; report and drop empty ones. ``where[i]`` = ``path:line``.

    Returns the (M,) indices kept and the (M, 4) float32 clipped boxes.
    """
    rows = np.asarray(rows, np.float64).reshape(-1, 4)
    limits = np.array([width, height, width, height], np.float64)
    kept, out = [], []
    for i, row in enumerate(rows):
        if not np.isfinite(row).all() or row[2] <= row[0] or row[3] <= row[1]:
            problems.append(f"{where[i]}: box {_fmt(row)} has no area (expected x1 < x2, y1 < y2); skipped")
            continue
        clipped = np.clip(row, 0, limits)
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            problems.append(f"{where[i]}: box {_fmt(row)} lies wholly outside the {width}x{height} image; skipped")
            continue
        if (clipped != row).any():
            problems.append(
                f"{where[i]}: box {_fmt(row)} reaches outside the {width}x{height} image; clipped to {_fmt(clipped)}"
            )
        kept.append(i)
        out.append(clipped)
    return np.array(kept, int), np.array(out, np.float32).reshape(-1, 4)


def _fmt(row):
    return "(" + ", ".join(f"{v:g}" for v in row) + ")"


# YOLO ------------------------------------------------------------------------------------------


def load_yolo(root: str | Path, split: str | None = None, yaml_path: str | Path | None = None) -> DetectionData:
    """Load a YOLO folder: ``images/[split/]*.jpg`` with ``labels/[split/]*.txt`` and a ``*.yaml``.

    Class names come from the yaml's ``names``; without a yaml or ``names`` the class ids
    themselves become the names (``"0"``, ``"1"``, ...) and that is reported in ``problems``.
    A label line whose class id has no name is reported and skipped.
    """
    root = Path(root)
    problems = []
    if yaml_path is None:
        candidates = [root / "data.yaml"] + sorted(p for p in root.glob("*.y*ml") if p.name != "data.yaml")
        yaml_path = next((p for p in candidates if p.is_file()), None)
    names, keys = read_yaml_names(yaml_path) if yaml_path else (None, {})
    if names is None:
        problems.append(
            f"{yaml_path or root}: no class names found (expected a data.yaml with 'names:'); class ids used as names"
        )
    image_dir = root / "images"
    if split is not None:
        relative = keys.get(split) or f"images/{split}"
        image_dir = (root / relative) if (root / relative).is_dir() else root / "images" / split
        if not image_dir.is_dir():
            raise ValueError(
                f"{root}: split {split!r} not found (looked for {root / relative}); pass split=None for all images."
            )
    images = sorted(p for p in image_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    label_dir = _label_path_for(image_dir / "x.jpg").parent

    pending, max_id, stems, unreadable = [], -1, set(), []
    for image_path in images:
        label_path = _label_path_for(image_path)
        stems.add(label_path)
        size = _sized_sample(image_path, problems, unreadable)
        if size is None:
            continue
        text = label_path.read_text(encoding="utf-8", errors="replace") if label_path.is_file() else ""
        lines = text.splitlines()
        if names is not None:
            for number, line in enumerate(lines, start=1):
                fields = line.split()
                if fields and re.fullmatch(r"\d+", fields[0]) and int(fields[0]) >= len(names):
                    problems.append(
                        f"{label_path}:{number}: class id {fields[0]} has no name ({len(names)} names in the yaml); line skipped"
                    )
                    lines[number - 1] = ""
        boxes, ids, messages = parse_yolo_labels(lines, size[0], size[1])
        for message in messages:
            match = re.match(r"line (\d+): (.*)$", message)
            problems.append(f"{label_path}:{match[1]}: {match[2]}" if match else f"{label_path}: {message}")
        max_id = max(max_id, int(ids.max()) if len(ids) else -1)
        pending.append(DetectionSample(image_path, size[0], size[1], boxes, ids))
    if label_dir.is_dir():
        for label_path in sorted(label_dir.rglob("*.txt")):
            if label_path not in stems:
                looked = image_dir / label_path.parent.relative_to(label_dir) / f"{label_path.stem}.*"
                problems.append(f"{label_path}: label file without an image (looked for {looked}); ignored")
    _count_unreadable(image_dir, unreadable, len(pending), problems)
    class_names = tuple(names) if names is not None else tuple(str(i) for i in range(max_id + 1))
    return DetectionData(pending, class_names, problems)


def _label_path_for(image_path):
    """Ultralytics' rule: the last ``images`` folder in the path becomes ``labels``, suffix ``.txt``."""
    parts = list(Path(image_path).parts)
    for k in range(len(parts) - 1, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


# Pascal VOC ------------------------------------------------------------------------------------


def load_voc(
    root: str | Path, split: str | None = None, images: str = "images", annotations: str = "annotations"
) -> DetectionData:
    """Load Pascal VOC XML: ``root/<annotations>/*.xml`` describing images in ``root/<images>/``.

    Boxes ``xmin ymin xmax ymax`` (1-based, inclusive) become ``(xmin - 1, ymin - 1, xmax, ymax)``.
    The image is found by the XML's ``<filename>``, else by the XML's stem. An unparsable XML,
    a missing image, an object without a name or with non-numeric coordinates is reported.
    """
    root = Path(root)
    xml_files = sorted((root / annotations).glob("*.xml"))
    if split is not None:
        listing = root / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise ValueError(f"{root}: split {split!r} needs {listing}; pass split=None and use split_detection().")
        wanted = {line.split()[0] for line in listing.read_text().splitlines() if line.strip()}
        xml_files = [p for p in xml_files if p.stem in wanted]
    by_stem = _images_by_stem(root / images)
    problems, records, names, unreadable = [], [], set(), []
    for xml_path in xml_files:
        text = xml_path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ET.fromstring(text)
        except ET.ParseError as error:
            problems.append(f"{xml_path}:{error.position[0]}: not valid XML ({error}); file skipped")
            continue
        except DefusedXmlException as error:
            problems.append(
                f"{xml_path}: refused, the XML declares {_what_forbidden(error)}, which annotations never need "
                "(an entity-expansion or external-entity attack); file skipped"
            )
            continue
        filename = (tree.findtext("filename") or "").strip()
        image_path = root / images / filename if filename else None
        if image_path is None or not image_path.is_file():
            image_path = by_stem.get(Path(filename).stem) or by_stem.get(xml_path.stem)
        if image_path is None:
            problems.append(f"{xml_path}: no image {filename or xml_path.stem + '.*'} in {root / images}; file skipped")
            continue
        size = _sized_sample(image_path, problems, unreadable)
        if size is None:
            continue
        declared = (tree.findtext("size/width"), tree.findtext("size/height"))
        if all(declared) and _ints(declared) not in (None, size):
            problems.append(
                f"{xml_path}: declares size {declared[0]}x{declared[1]} but {image_path.name} is {size[0]}x{size[1]}; boxes kept as written"
            )
        object_lines = [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r"<object[\s>]", text)]
        rows, labels, flags, where = [], [], [], []
        for k, obj in enumerate(tree.iter("object")):
            line = f"{xml_path}:{object_lines[k] if k < len(object_lines) else '?'}"
            name = (obj.findtext("name") or "").strip()
            coords = [obj.findtext(f"bndbox/{tag}") for tag in ("xmin", "ymin", "xmax", "ymax")]
            if not name:
                problems.append(f"{line}: object {k + 1} has no <name>; skipped")
                continue
            try:
                xmin, ymin, xmax, ymax = (float(c) for c in coords)
            except (TypeError, ValueError):
                problems.append(
                    f"{line}: object {k + 1} ({name}) needs numeric bndbox xmin ymin xmax ymax, got {coords}; skipped"
                )
                continue
            rows.append((xmin - 1, ymin - 1, xmax, ymax))
            labels.append(name)
            flags.append((obj.findtext("difficult") or "0").strip() == "1")
            where.append(line)
        kept, boxes = _clip_report(rows, size[0], size[1], where, problems)
        labels = [labels[i] for i in kept]
        names.update(labels)
        records.append(
            (image_path, size, boxes, labels, np.array(flags, bool)[kept] if len(kept) else np.zeros(0, bool))
        )
    _count_unreadable(root / images, unreadable, len(records), problems)
    class_names = tuple(sorted(names))
    samples = [
        DetectionSample(p, s[0], s[1], b, np.array([class_names.index(n) for n in labels], np.int64), f)
        for p, s, b, labels, f in records
    ]
    return DetectionData(samples, class_names, problems)


def _what_forbidden(error):
    """``entity 'lol'``, ``external entity 'x' (file:///etc/passwd)``, ... for a defusedxml refusal."""
    sysid = getattr(error, "sysid", None)
    if isinstance(error, EntitiesForbidden):
        return f"external entity {error.name!r} ({sysid})" if sysid else f"entity {error.name!r}"
    if isinstance(error, ExternalReferenceForbidden):
        return f"an external reference ({sysid})"
    return "a DTD"


def _ints(values):
    try:
        return tuple(int(float(v)) for v in values)
    except (TypeError, ValueError):
        return None


# COCO JSON -------------------------------------------------------------------------------------


def load_coco(json_path: str | Path, image_dir: str | Path | None = None) -> DetectionData:
    """Load a COCO detection json: ``images``, ``annotations`` (``bbox`` xywh pixels), ``categories``.

    Args:
        json_path: the json file.
        image_dir: folder of the image files; default: the first of the json's folder,
            ``images/`` beside it, ``images/`` one folder up, holding the first listed file.

    Raises:
        ValueError: not JSON, or missing the ``images`` / ``annotations`` / ``categories`` lists.
    """
    json_path = Path(json_path)
    try:
        content = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{json_path}: not a readable JSON file ({error}); expected COCO detection annotations."
        ) from None
    if not isinstance(content, dict) or not all(
        isinstance(content.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise ValueError(f"{json_path}: expected a COCO json with 'images', 'annotations' and 'categories' lists.")
    for what, entries, keys in (
        ("category", content["categories"], ("id", "name")),
        ("image", content["images"], ("file_name",)),
    ):
        for k, entry in enumerate(entries):
            missing = [key for key in keys if not isinstance(entry, dict) or key not in entry]
            if missing:
                raise ValueError(
                    f"{json_path}: {what} {k} has no {' or '.join(map(repr, missing))}; every COCO "
                    f"{what} needs {', '.join(map(repr, keys))}."
                )
    categories = sorted(content["categories"], key=lambda c: c["id"])
    class_names = tuple(str(c["name"]) for c in categories)
    category_index = {c["id"]: k for k, c in enumerate(categories)}
    if image_dir is None:
        first = content["images"][0]["file_name"] if content["images"] else ""
        options = [json_path.parent, json_path.parent / "images", json_path.parent.parent / "images"]
        image_dir = next((d for d in options if (d / first).is_file()), options[0])
    image_dir = Path(image_dir)
    per_image = {}
    problems, crowd = [], 0
    for k, ann in enumerate(content["annotations"]):
        where = f"{json_path}: annotation {ann.get('id', k)}"
        if ann.get("iscrowd", 0):
            crowd += 1
            continue
        if ann.get("category_id") not in category_index:
            problems.append(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'; skipped")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            problems.append(f"{where}: bbox must be [x, y, w, h] numbers, got {bbox!r}; skipped")
            continue
        x, y, w, h = bbox
        per_image.setdefault(ann.get("image_id"), []).append(
            ((x, y, x + w, y + h), category_index[ann["category_id"]], where)
        )
    if crowd:
        problems.append(
            f"{json_path}: {crowd} iscrowd annotation(s) skipped (crowd regions are groups, not single objects)"
        )
    samples, unreadable = [], []
    for entry in content["images"]:
        image_path = image_dir / entry["file_name"]
        if not image_path.is_file():
            problems.append(f"{json_path}: image {entry['file_name']} not found in {image_dir}; skipped")
            continue
        size = _sized_sample(image_path, problems, unreadable)
        if size is None:
            continue
        objects = per_image.get(entry.get("id"), [])
        kept, boxes = _clip_report([o[0] for o in objects], size[0], size[1], [o[2] for o in objects], problems)
        samples.append(
            DetectionSample(image_path, size[0], size[1], boxes, np.array([objects[i][1] for i in kept], np.int64))
        )
    _count_unreadable(json_path, unreadable, len(samples), problems)
    return DetectionData(samples, class_names, problems)


# Penn-Fudan ------------------------------------------------------------------------------------

_PF_BOX = re.compile(
    r"^Bounding box for object (\d+).*:\s*\(\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\)\s*-\s*\(\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\)"
)


def load_pennfudan(root: str | Path, images: str = "images", annotations: str = "annotations") -> DetectionData:
    """Load Penn-Fudan's PASCAL v1 text annotations, one class ``"person"``.

    Each ``Bounding box for object K ... : (Xmin, Ymin) - (Xmax, Ymax)`` line (1-based, top-left
    pixel (1, 1)) becomes ``(Xmin - 1, Ymin - 1, Xmax, Ymax)``. The image is paired by stem.
    """
    root = Path(root)
    by_stem = _images_by_stem(root / images)
    problems, samples, unreadable = [], [], []
    for text_path in sorted((root / annotations).glob("*.txt")):
        lines = text_path.read_text(encoding="utf-8", errors="replace").splitlines()
        named = next((re.search(r'"([^"]+)"', line) for line in lines if line.startswith("Image filename")), None)
        stem = Path(named[1]).stem if named else text_path.stem
        image_path = by_stem.get(stem) or by_stem.get(text_path.stem)
        if image_path is None:
            problems.append(f"{text_path}: no image {stem}.* in {root / images}; file skipped")
            continue
        size = _sized_sample(image_path, problems, unreadable)
        if size is None:
            continue
        rows, where = [], []
        for number, line in enumerate(lines, start=1):
            if line.startswith("Bounding box"):
                match = _PF_BOX.match(line)
                if not match:
                    problems.append(
                        f"{text_path}:{number}: expected 'Bounding box for object K ... : (Xmin, Ymin) - (Xmax, Ymax)'; line skipped"
                    )
                    continue
                xmin, ymin, xmax, ymax = (float(v) for v in match.groups()[1:])
                rows.append((xmin - 1, ymin - 1, xmax, ymax))
                where.append(f"{text_path}:{number}")
        kept, boxes = _clip_report(rows, size[0], size[1], where, problems)
        samples.append(DetectionSample(image_path, size[0], size[1], boxes, np.zeros(len(kept), np.int64)))
    _count_unreadable(root / images, unreadable, len(samples), problems)
    return DetectionData(samples, ("person",), problems)


def load_detection_sets(paths: Sequence[str | Path], classes: Iterable[str] | None = None) -> DetectionData:
    """Load one or more data sets (any layout :func:`load_detection` reads), keep ``classes`` (by
    name, in that order) if given, and merge them: e.g. the persons of coco128 plus Penn-Fudan.

    Raises:
        ValueError: no paths, or the sets' class names differ (pass ``classes`` to align them).
    """
    if not paths:
        raise ValueError("no data sets given; pass at least one folder.")
    merged = None
    for path in paths:
        data = load_detection(path)
        if classes:
            data = data.select_classes(list(classes))
        merged = data if merged is None else merged.merge(data)
    return merged
