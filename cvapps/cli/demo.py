"""``cvapps demo``: every finished app on sample photos that install with scikit-image."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from cvapps.cli.common import fail_on_value_error, quiet_option
from cvapps.core.sinks import JsonLinesSink, write_image

DEMO_MIN_CONFIDENCE = 0.15  # the demo's "none of these": ImageNet has no astronaut class (her top class scores 0.07)
DEMO_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@click.command("demo")
@click.option("--output", type=click.Path(), default="cvapps_demo", show_default=True, help="Folder for the results.")
@click.option("--overwrite", is_flag=True, help="Write into a folder that already holds files.")
@quiet_option
@fail_on_value_error
def demo(output: str, overwrite: bool, quiet: bool) -> None:
    """Run every finished app on sample photos that ship with scikit-image; write annotated
    results to --output."""
    run_demo(output, overwrite, quiet)


def register(cli: click.Group, train: click.Group, evaluate: click.Group, webcam: click.Group) -> None:
    """Add ``cvapps demo`` to the top-level group."""
    cli.add_command(demo, "demo")


# --- command body ------------------------------------------------------------------------------


def demo_photos() -> list[tuple[str, np.ndarray]]:
    """(name, RGB array) of real sample photos that install with scikit-image (no download)."""
    import skimage.data

    return [(name, getattr(skimage.data, name)()) for name in DEMO_PHOTOS]


def run_demo(output: str | Path, overwrite: bool, quiet: bool) -> list[Path]:
    """``cvapps demo``: every finished app on the sample photos; annotated results in ``output``.

    Apps whose shipped model is missing (a trimmed install) are left out with a note."""
    from cvapps.models import shipped_models

    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise ValueError(f"{output} already holds files; pass --overwrite or name an empty or new folder.")
    shipped = shipped_models()
    photos = demo_photos()
    steps = [
        ("classify", "imagenet", _demo_classify),
        ("detect", "person", _demo_detect),
        ("segment", "person_seg", _demo_segment),
        ("faces", "faces", _demo_faces),
        ("style", "starry_night", _demo_style),
    ]
    written = []
    with JsonLinesSink(str(output / "results.jsonl"), overwrite=True) as records:
        for task, model_name, step in steps:
            if model_name not in shipped:
                click.echo(f"{task:<9} skipped: the shipped model {model_name!r} is not installed")
                continue
            for name, file_name, picture, record, line in step(photos, model_name):
                written.append(write_image(output / f"{task}_{file_name}.jpg", picture, overwrite=True))
                records.write(
                    {"source": f"skimage.data.{name}", "frame": 0, "task": task, "model": model_name, **record}
                )
                click.echo(f"{task:<9} {name:<10} {line}")
    click.echo(f"wrote {len(written)} annotated images and results.jsonl to {output}/")
    return written


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, round((time.perf_counter() - started) * 1000, 3)


def _demo_classify(photos, model_name):
    """(name, file name, picture, record, printed line) per photo."""
    from cvapps.classification import classify
    from cvapps.core.annotate import draw_text_lines
    from cvapps.runtime import open_model

    model = open_model(model_name, task="classify")
    for name, image in photos:
        [result], milliseconds = _timed(classify, image, model=model, top_k=3, min_confidence=DEMO_MIN_CONFIDENCE)
        pairs = list(zip(result.class_names, result.scores))
        head = [f"{model_name}: unknown (top class below {DEMO_MIN_CONFIDENCE})"] if result.unknown else []
        picture = draw_text_lines(image, head + [f"{model_name}: {n} {s:.2f}" for n, s in pairs])
        record = {"label": result.label, "results": result.to_dict(), "milliseconds": milliseconds}
        yield (
            name,
            name,
            picture,
            record,
            ("unknown; " if result.unknown else "") + ", ".join(f"{n} {s:.2f}" for n, s in pairs),
        )


def _demo_detect(photos, model_name):
    from cvapps.core.annotate import draw_detections
    from cvapps.detection import detect
    from cvapps.runtime import open_model

    model = open_model(model_name, task="detect")
    for name, image in photos:
        [found], milliseconds = _timed(detect, image, model)
        names = ", ".join(f"{n} {c:.2f}" for n, c in zip(found.class_name, found.confidence))
        yield (
            name,
            name,
            draw_detections(image, found),
            {"results": found.to_dict(), "milliseconds": milliseconds},
            f"{len(found)} found" + (f": {names}" if names else ""),
        )


def _demo_segment(photos, model_name):
    from cvapps.runtime import open_model
    from cvapps.segmentation import blur_background, overlay, segment

    model = open_model(model_name, task="segment")
    for name, image in photos:
        [result], milliseconds = _timed(segment, image, model=model)
        share = {c: round(float(np.mean(result.labels == k)), 4) for k, c in enumerate(result.class_names)}
        record = {"results": {"pixel_share": share}, "milliseconds": milliseconds}
        line = ", ".join(f"{c} {v:.1%}" for c, v in share.items())
        yield name, name, overlay(image, result), record, line
        if name == "astronaut":
            yield name, f"{name}_blur", blur_background(image, result), record, "background blurred"


def _demo_faces(photos, model_name):
    """Faces found in each photo, and the astronaut verified against her mirror image."""
    from cvapps.core.annotate import draw_text_lines
    from cvapps.faces import FaceEncoder, verify

    encoder = FaceEncoder(model_name)
    for name, image in photos:
        faces, _ = encoder.encode(image)
        if not faces:
            continue
        mirror = np.ascontiguousarray(image[:, ::-1])
        result, milliseconds = _timed(verify, image, mirror, encoder)
        picture = _draw_face_boxes(image, [f.box for f in faces])
        answer = "same person" if result.verified else "different people"
        text = f"vs mirror: {answer} (distance {result.distance:.2f}, threshold {result.threshold:.2f})"
        yield (
            name,
            name,
            draw_text_lines(picture, [f"{len(faces)} face(s)", text]),
            {"results": result.to_dict(), "milliseconds": milliseconds},
            f"{len(faces)} face(s); {text}",
        )


def _draw_face_boxes(image, boxes):
    import cv2

    picture = image.copy()
    for x1, y1, x2, y2 in np.asarray(boxes, float).round().astype(int):
        cv2.rectangle(picture, (x1, y1), (x2, y2), (40, 220, 40), max(2, image.shape[0] // 200))
    return picture


def _demo_style(photos, model_name):
    from cvapps.style import stylize

    for name, image in photos:
        [result], milliseconds = _timed(stylize, image, style=model_name)
        yield (
            name,
            name,
            result.image,
            {"results": {"style": result.style, "method": result.method}, "milliseconds": milliseconds},
            f"{model_name} in {milliseconds:.0f} ms",
        )
