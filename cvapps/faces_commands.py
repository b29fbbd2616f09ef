"""Bodies of the face commands (``cvapps verify``, ``cvapps faces ...``, ``train/eval/webcam faces``).

The CLI layer: it prints, reads arguments from :mod:`cvapps.cli_faces`, and calls the library
(:mod:`cvapps.faces`, :mod:`cvapps.faces.database`, :mod:`cvapps.faces.train`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from cvapps.commands import Outputs, bar, eval_report
from cvapps.core.sinks import write_image, write_json
from cvapps.core.sources import open_source


def _encoder(model, detector, detector_model):
    from cvapps.faces import FaceEncoder

    return FaceEncoder(model, detector, detector_model)


def _emit_json(json_path, record):
    if json_path == "-":
        click.echo(json.dumps(record))
    elif json_path:
        write_json(json_path, record)


def run_verify(image1, image2, model, threshold, detector, detector_model, all_faces, json_path, quiet):
    """``cvapps verify``: returns 1 when a face was missing, else 0."""
    from cvapps.faces import verify

    encoder = _encoder(model, detector, detector_model)
    result = verify(image1, image2, encoder, threshold=threshold, compare="all" if all_faces else "largest")
    _emit_json(json_path, {"task": "faces", "model": encoder.info.name, "detector": detector, **result.to_dict()})
    if json_path != "-":
        if result.error:
            click.echo(f"error: {result.error} ({result.num_faces[0]} and {result.num_faces[1]} faces found)", err=True)
        else:
            answer = "same person" if result.verified else "different people"
            click.echo(
                f"{answer}: distance {result.distance:.4f} {'<=' if result.verified else '>'} threshold "
                f"{result.threshold:.4f} ({result.seconds * 1000:.0f} ms)"
            )
    return 1 if result.error else 0


def run_enroll(name, images, db, model, detector, detector_model, quiet):
    """``cvapps faces enroll``: returns the number of photos that could not be used."""
    from cvapps.core.sources import resolve_source
    from cvapps.faces.database import FaceDatabase

    paths = []
    for pattern in images:
        kind, found = resolve_source(pattern)
        if kind != "images":
            raise ValueError(f"{pattern}: enrol from photos (files, folders or globs), not a {kind}.")
        paths += found
    database = FaceDatabase(db, _encoder(model, detector, detector_model))
    result = database.enroll(name, paths)
    for message in result.skipped:
        click.echo(f"warning: skipped {message}", err=True)
    click.echo(
        f"enrolled {result.name}: {len(result.added)} photo(s) in {Path(db) / result.name} "
        f"({len(database.people())} people in {db})"
    )
    return len(result.skipped)


def run_identify(source, db, model, threshold, detector, detector_model, output, overwrite, json_path, quiet):
    """``cvapps faces identify``: returns the number of inputs that failed to read."""
    from cvapps.faces.database import FaceDatabase

    database = FaceDatabase(db, _encoder(model, detector, detector_model))
    if not database.people():
        raise ValueError(f"{db}: no enrolled people; add some with 'cvapps faces enroll NAME PHOTOS --db {db}'.")
    gallery = database.embeddings()
    source = open_source(source)
    outputs = Outputs(source, output, json_path, overwrite)
    with outputs:
        for frame in outputs.frames(quiet):
            started = time.perf_counter()
            found = database.identify(frame.image, threshold, gallery)
            milliseconds = (time.perf_counter() - started) * 1000
            if outputs.records:
                outputs.records.write(
                    {
                        "source": frame.source,
                        "frame": frame.index,
                        "task": "faces",
                        "model": database.encoder.info.name,
                        "results": [f.to_dict() for f in found],
                        "milliseconds": round(milliseconds, 3),
                    }
                )
            if json_path != "-":
                label = f"{frame.source}" + (f"[{frame.index}]" if outputs.is_video else "")
                names = ", ".join(f"{f.name} ({f.distance:.3f})" for f in found)
                click.echo(f"{label}: {len(found)} face(s)" + (f": {names}" if names else ""))
            if outputs.wants_images:
                outputs.write(draw_identities(frame.image, found), frame)
    return outputs.failures


def draw_identities(image, identities):
    """A copy of RGB ``image`` with a box per face labelled "name d=distance" (known people in a
    colour per name, unknown in grey)."""
    import zlib

    import cv2

    from cvapps.core.annotate import class_colour, default_scale

    out = np.ascontiguousarray(image).copy()
    scale = default_scale(out)
    thickness = max(1, round(scale * 3))
    for who in identities:
        known = who.name != "unknown"
        colour = class_colour(zlib.crc32(who.name.encode()) % 97) if known else (160, 160, 160)
        x1, y1, x2, y2 = (round(v) for v in who.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        label = who.name if who.distance is None else f"{who.name} d={who.distance:.2f}"
        (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y1 - height - baseline - 2)
        cv2.rectangle(out, (x1, top), (x1 + width + 4, top + height + baseline + 2), colour, -1)
        cv2.putText(out, label, (x1 + 2, top + height + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def run_calibrate(pairs, model, detector, detector_model, roc_path, json_path, quiet):
    """``cvapps faces calibrate``."""
    from cvapps.faces import calibrate

    result = calibrate(pairs, _encoder(model, detector, detector_model))
    for message in result.skipped:
        click.echo(f"warning: skipped {message}", err=True)
    record = {"task": "faces", "pairs": str(pairs), **result.to_dict()}
    _emit_json(json_path, record)
    if json_path != "-":
        click.echo(
            f"{result.num_pairs} pairs: recommended threshold {result.threshold:.4f} (accuracy "
            f"{result.accuracy:.4f}), EER {result.eer:.4f} at {result.eer_threshold:.4f}, AUC {result.auc:.4f}"
        )
    if roc_path:
        write_image(
            roc_path, roc_image(np.array(result.far), np.array(result.tar), "calibration pairs"), overwrite=True
        )
        click.echo(f"ROC curve: {roc_path}")
    return result


def run_eval_faces(data, model_name, json_path, roc_path, holdout, seed, num_pairs, detector, quiet):
    """``cvapps eval faces``: pair protocol on DATA (or its held-out identities)."""
    from cvapps.faces import embed_faces, pair_metrics, sample_pairs
    from cvapps.faces.train import load_faces
    from cvapps.runtime import open_model

    started = time.time()
    model = open_model(model_name, task="faces", runtime="keras")
    faces = load_faces(
        data, model.info.image_size, detector, progress=bar(quiet, "reading", "img"), holdout=holdout, seed=seed
    )
    for message in faces.skipped:
        click.echo(f"warning: skipped {message}", err=True)
    pairs = sample_pairs(faces.labels, num_pairs, seed)
    embeddings = embed_faces(model, faces.images, batch_size=128)
    metrics = pair_metrics(embeddings, pairs, folds=10)
    roc = metrics.pop("roc")
    metrics["model_threshold"] = model.info.settings.get("threshold")
    if metrics["model_threshold"] is not None:
        distances = np.sum(np.square(embeddings[pairs[:, 0]] - embeddings[pairs[:, 1]]), axis=1)
        metrics["accuracy_at_model_threshold"] = float(
            np.mean((distances <= metrics["model_threshold"]) == (pairs[:, 2] == 1))
        )
    metrics["num_identities"] = len(set(faces.labels.tolist()))
    report = eval_report("faces", model_name, " + ".join(map(str, data)), holdout, seed, len(faces), started, metrics)
    click.echo(
        f"{metrics['num_same_pairs']} same / {metrics['num_different_pairs']} different pairs of "
        f"{metrics['num_identities']} people: accuracy {metrics['accuracy']:.4f} +- {metrics['accuracy_std']:.4f}, "
        f"auc {metrics['auc']:.4f}, tar@far=1e-3 {metrics['tar_at_far_1e-3']:.4f}, "
        f"eer {metrics['eer']:.4f}, best threshold {metrics['threshold']:.4f}"
    )
    if json_path:
        write_json(json_path, report)
        roc_path = roc_path or str(Path(json_path).with_suffix("")) + "_roc.png"
    if roc_path:
        write_image(
            roc_path,
            roc_image(np.array(roc["far"]), np.array(roc["tar"]), Path(str(model_name)).stem, metrics["auc"]),
            overwrite=True,
        )
        click.echo(f"ROC curve: {roc_path}")
    return report


def roc_image(far, tar, title="", auc=None, size=420):
    """The ROC curve (x: false accept rate, y: true accept rate) as an RGB uint8 image."""
    import cv2

    margin = 50
    image = np.full((size + 2 * margin, size + 2 * margin, 3), 255, np.uint8)
    x0, y0 = margin, margin + size  # origin at the bottom left
    cv2.rectangle(image, (x0, margin), (x0 + size, y0), (0, 0, 0), 1)
    for k in range(1, 10):
        t = int(k * size / 10)
        cv2.line(image, (x0 + t, margin), (x0 + t, y0), (230, 230, 230), 1)
        cv2.line(image, (x0, y0 - t), (x0 + size, y0 - t), (230, 230, 230), 1)
    cv2.line(image, (x0, y0), (x0 + size, margin), (180, 180, 180), 1)  # chance
    points = np.stack([x0 + np.asarray(far) * size, y0 - np.asarray(tar) * size], 1).round().astype(np.int32)
    cv2.polylines(image, [points], False, (30, 90, 200), 2, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    label = f"ROC {title}" + (f"  AUC {auc:.4f}" if auc is not None else "")
    cv2.putText(image, label, (x0, margin - 15), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "false accept rate", (x0 + size // 2 - 60, y0 + 35), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "0", (x0 - 12, y0 + 15), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "1", (x0 + size - 4, y0 + 15), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "1", (x0 - 15, margin + 5), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    strip = np.full((16, 160, 3), 255, np.uint8)
    cv2.putText(strip, "true accept rate", (2, 12), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    strip = np.rot90(strip)
    image[y0 - size // 2 - 80 : y0 - size // 2 + 80, 10:26] = strip
    return image


def run_webcam_faces(
    source, db, model, threshold, detector, detector_model, show, output, overwrite, max_frames, quiet
):
    """``cvapps webcam faces``: boxes with names from the database, live."""
    from cvapps.core.webcam import run_loop
    from cvapps.faces.database import FaceDatabase

    database = FaceDatabase(db, _encoder(model, detector, detector_model))
    gallery = database.embeddings()
    if not database.people() and not quiet:
        click.echo(f"warning: {db} has no enrolled people; every face will be 'unknown'", err=True)
    counts = {"frames": 0, "faces": 0, "named": 0}

    def process(image):
        found = database.identify(image, threshold, gallery)
        counts["frames"] += 1
        counts["faces"] += len(found)
        counts["named"] += sum(f.name != "unknown" for f in found)
        return draw_identities(image, found)

    stats = run_loop(source, process, show=show, output=output, overwrite=overwrite, max_frames=max_frames)
    if not quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS; {counts['faces']} faces "
            f"seen, {counts['named']} named ({stats.dropped} stale frames dropped)"
        )
    return stats, counts
