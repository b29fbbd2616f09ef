"""Bodies of the segmentation commands: they print, show progress and write files; the library
(:mod:`cvapps.segmentation`) does not. Imported lazily by :mod:`cvapps.cli_segment`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from cvapps.commands import Outputs, bar, eval_report
from cvapps.core.sinks import write_image, write_json
from cvapps.core.sources import open_source

VIEWS = ("overlay", "mask", "cutout", "blur")


def render(image, result, view, alpha=0.5, strength=31):
    """One output image of ``view`` for a :class:`cvapps.segmentation.Segmentation`."""
    from cvapps.segmentation import blur_background, colour_labels, cutout, overlay

    if view == "overlay":
        return overlay(image, result, alpha)
    if view == "mask":
        return colour_labels(result.labels, len(result.class_names))
    if view == "cutout":
        return cutout(image, result)
    if view == "blur":
        return blur_background(image, result, strength)
    raise ValueError(f"view must be one of {VIEWS}, received {view!r}.")


def run_segment(source, model_name, output, view, alpha, tile, overwrite, json_path, quiet, runtime="auto"):
    """``cvapps segment``: returns the number of inputs that failed."""
    from cvapps.runtime import open_model
    from cvapps.segmentation import segment

    source = open_source(source)
    if view == "cutout" and output and source.is_stream:
        raise ValueError(
            "--cutout makes transparent PNGs; a video cannot hold them. Use --overlay or --blur for videos."
        )
    if (
        view == "cutout"
        and output
        and Path(output).suffix
        and Path(output).suffix.lower() != ".png"
        and len(source.items) == 1
    ):
        raise ValueError(f"--cutout writes an RGBA image; name a .png output, received {output}.")
    outputs = Outputs(source, output, json_path, overwrite)
    model = open_model(model_name, task="segment", runtime=runtime)
    with outputs:
        for frame in outputs.frames(quiet):
            started = time.perf_counter()
            [result] = segment(frame.image, model, tile=tile or "auto")
            milliseconds = (time.perf_counter() - started) * 1000
            if outputs.records:
                outputs.records.write(
                    {
                        "source": frame.source,
                        "frame": frame.index,
                        "task": "segment",
                        "model": model.info.name,
                        "runtime": model.runtime,
                        "results": result.to_dict(),
                        "milliseconds": round(milliseconds, 3),
                    }
                )
            if json_path != "-":
                label = f"{frame.source}" + (f"[{frame.index}]" if outputs.is_video else "")
                shares = ", ".join(f"{n} {f:.1%}" for n, f in result.fractions().items() if f > 0)
                click.echo(f"{label}: {shares}")
            if outputs.wants_images:
                picture = render(frame.image, result, view, alpha)
                if view == "cutout" and outputs.images.multiple:  # RGBA needs PNG names in the folder
                    path = outputs.images.path_for(frame.source, frame.index).with_suffix(".png")
                    write_image(path, picture, overwrite)
                else:
                    outputs.write(picture, frame)
    return outputs.failures


def _segmentation_sets(data, classes, holdout, seed, quiet):
    """Load and merge DATA folders; with ``holdout``, the (train, held_out) split, else (all, None)."""
    from cvapps.segmentation.data import load_segmentation_sets, split_segmentation

    names = [c.strip() for c in classes.split(",")] if classes else None
    merged = load_segmentation_sets(list(data), names, progress=bar(quiet, "reading masks", "mask"))
    for problem in merged.problems:
        click.echo(f"warning: {problem}", err=True)
    if len(merged) == 0:
        raise ValueError(f"{' '.join(map(str, data))}: no usable image/mask pairs (see the warnings above).")
    return split_segmentation(merged, holdout, seed) if holdout else (merged, None)


def run_train_segment(data, output, classes, val_fraction, seed, quiet, options):
    """``cvapps train segment``."""
    from cvapps.segmentation import train_segmenter

    started = time.time()
    train, val = _segmentation_sets(data, classes, val_fraction, seed, quiet)
    if not quiet:
        counts = train.pixel_counts()
        shares = ", ".join(f"{n} {c / max(1, counts.sum()):.1%}" for n, c in zip(train.class_names, counts))
        click.echo(f"{len(train)} training pairs, {len(val)} held out; classes: {shares}")
    options = dict(options)
    fit = options.pop("fit")
    augment = not options.pop("no_augment")
    result = train_segmenter(
        train,
        output,
        validation=val,
        fit=fit,
        augment=augment,
        seed=seed,
        verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
        **options,
    )
    for message in result.skipped:
        click.echo(f"warning: {message}", err=True)
    from cvapps.cli_common import report_reused

    report_reused(result)
    click.echo(f"saved {output} after {time.time() - started:.0f} s")
    return result


def run_eval_segment(data, model_name, classes, holdout, seed, json_path, figure, samples, tile, quiet):
    """``cvapps eval segment``: print and save the report and the figure."""
    from cvapps.segmentation import evaluate_segmenter

    started = time.time()
    everything, held_out = _segmentation_sets(data, classes, holdout, seed, quiet)
    dataset = held_out if holdout else everything
    metrics, picture = evaluate_segmenter(
        model_name, dataset, tile=tile or "auto", progress=bar(quiet, "segmenting", "img"), samples=samples
    )
    for problem in metrics["problems"]:
        click.echo(f"warning: {problem}", err=True)
    report = eval_report(
        "segment", model_name, " + ".join(map(str, data)), holdout, seed, len(dataset), started, metrics
    )
    click.echo(
        f"miou {metrics['miou']:.4f}   dice {metrics['dice']:.4f}   pixel_accuracy {metrics['pixel_accuracy']:.4f}"
    )
    click.echo(f"{'class':<16}{'iou':>8}{'dice':>8}{'pixels':>12}")
    for name, row in metrics["per_class"].items():
        click.echo(f"{name:<16}{row['iou']:>8.4f}{row['dice']:>8.4f}{row['pixels']:>12}")
    if json_path:
        write_json(json_path, report)
        figure = figure or str(Path(json_path).with_suffix("")) + "_samples.png"
    if figure and picture is not None:
        write_image(figure, picture, overwrite=True)
        click.echo(f"figure: {figure}")
    return report


def run_webcam_segment(
    source, model_name, blur, alpha, strength, show, output, overwrite, max_frames, quiet, runtime="auto"
):
    """``cvapps webcam segment``: live overlay or background blur over a camera or video."""
    from cvapps.core.webcam import run_loop
    from cvapps.runtime import open_model
    from cvapps.segmentation import segment

    model = open_model(model_name, task="segment", runtime=runtime)
    view = "blur" if blur else "overlay"

    def process(image):
        [result] = segment(image, model)
        return render(image, result, view, alpha, strength)

    stats = run_loop(source, process, show=show, output=output, overwrite=overwrite, max_frames=max_frames)
    if not quiet:
        click.echo(
            f"{stats.frames} frames in {stats.seconds:.1f} s: {stats.fps:.1f} FPS ({stats.dropped} stale frames dropped)"
        )
    return stats
