"""Classification speed, ours beside peers, in one run. Prints Markdown tables for the README.

    CVAPPS_DATA=../shared/data python benchmarks/bench_classify.py [--model cifar10] [--images 1000]

Measures, on this machine:
1. ``cvapps classify photo.jpg`` end to end (process start to printed answer), onnx vs keras
   runtime, median of several runs;
2. latency at batch 1 and throughput at batch 32 of each shipped classifier with onnxruntime
   and with Keras's compiled ``predict_on_batch``, beside ``keras.applications.MobileNetV2``
   (alpha 1.0 and 0.35, random weights) at the same input size;
2b. the ImageNet classifier at 224 (flip-averaged as shipped, and one view) beside
   ``keras.applications.MobileNetV2`` (alpha 1.0) and ``keras.applications.EfficientNetB0``, both
   with random weights and 1000 classes, each through Keras, ours also through onnxruntime;
3. ``cvapps classify`` over a folder of CIFAR-10 test JPEGs (decode + resize + predict, decoding
   overlapped on a thread) against the bare model on the same images already in memory;
4. the webcam loop's FPS on the shared video file, headless, with each runtime.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import timed  # noqa: E402


def speed(predict, size, repeats=30):
    """(batch-1 latency in ms, batch-32 throughput in images/s) of ``predict(batch)``."""
    one = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    many = np.random.default_rng(1).uniform(0, 255, (32, size, size, 3)).astype("float32")
    latency = timed(lambda: predict(one), repeats)
    batch = timed(lambda: predict(many), max(5, repeats // 3))
    return latency * 1000, 32 / batch


def end_to_end(photo, model, runtime, runs=5):
    """Median wall seconds of a fresh ``cvapps classify`` process."""
    command = [
        sys.executable,
        "-m",
        "cvapps",
        "classify",
        str(photo),
        "--model",
        model,
        "--runtime",
        runtime,
        "--quiet",
    ]
    subprocess.run(command, check=True, capture_output=True)  # warm the file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def quietly(function, *args):
    devnull = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, devnull
    try:
        return function(*args)
    finally:
        sys.stdout = stdout


def imagenet_table(keras):
    """Our ImageNet classifier at 224 beside keras.applications' MobileNetV2 1.0 and EfficientNetB0."""
    from cvapps.classification.imagenet import build_imagenet_classifier
    from cvapps.export import export_model
    from cvapps.models import save_model
    from cvapps.runtime import open_model

    rows = []
    shipped = open_model("imagenet", runtime="keras")
    rows.append(
        (
            "cvapps imagenet, EfficientNet-Lite0, flip-averaged (2 views)",
            "onnxruntime",
            *speed(open_model("imagenet", runtime="onnx").predict, 224),
        )
    )
    rows.append(("cvapps imagenet, EfficientNet-Lite0, flip-averaged (2 views)", "keras", *speed(shipped.predict, 224)))
    with tempfile.TemporaryDirectory() as folder:
        single = Path(folder) / "imagenet_one_view.keras"
        save_model(build_imagenet_classifier(tta=False), single)
        export_model(single, format="onnx")
        rows.append(
            (
                "cvapps EfficientNet-Lite0, one view",
                "onnxruntime",
                *speed(open_model(single, runtime="onnx").predict, 224),
            )
        )
        rows.append(
            ("cvapps EfficientNet-Lite0, one view", "keras", *speed(open_model(single, runtime="keras").predict, 224))
        )
    for label, build in (
        ("keras.applications.MobileNetV2 alpha 1.0", keras.applications.MobileNetV2),
        ("keras.applications.EfficientNetB0", keras.applications.EfficientNetB0),
    ):
        peer = build(input_shape=(224, 224, 3), weights=None, classes=1000)
        rows.append(
            (f"{label} ({peer.count_params() / 1e6:.2f} M params)", "keras", *speed(peer.predict_on_batch, 224))
        )
    reference = {r[1]: r for r in rows if r[0].startswith("cvapps EfficientNet-Lite0, one view")}["keras"]
    print(f"\n### ImageNet classifiers at 224x224, 1000 classes, {os.cpu_count()} CPU cores\n")
    print("| model | runtime | batch 1 latency (ms) | batch 32 throughput (img/s) | latency / ours one view keras |")
    print("|---|---|---:|---:|---:|")
    for name, runtime, latency, throughput in rows:
        print(f"| {name} | {runtime} | {latency:.2f} | {throughput:.0f} | {latency / reference[2]:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar10")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()

    from skimage import data as samples

    from cvapps.core.sinks import write_image

    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as folder:
        photo = write_image(Path(folder) / "chelsea.jpg", samples.chelsea())
        seconds = {runtime: end_to_end(photo, args.model, runtime) for runtime in ("onnx", "keras")}
    print(f"\n### `cvapps classify photo.jpg --model {args.model}`, process start to printed answer ({cores} cores)\n")
    print("| runtime | seconds (median of 5) |")
    print("|---|---:|")
    for runtime, value in seconds.items():
        print(f"| {runtime} | {value:.2f} |")

    from cvapps._keras import import_keras
    from cvapps.models import shipped_models
    from cvapps.runtime import open_model

    keras = import_keras()
    rows = []
    reference = None  # batch-32 throughput of --model with the keras runtime
    for name in shipped_models():
        keras_model = open_model(name, runtime="keras")  # builds the imagenet model on first use
        path = keras_model.path
        if keras_model.info.task != "classify":
            continue
        size = keras_model.info.image_size
        params = keras_model.model.count_params() / 1e6
        if path.with_suffix(".onnx").is_file():
            rows.append(
                (
                    f"cvapps {name} ({params:.2f} M params)",
                    "onnxruntime",
                    size,
                    *speed(open_model(path, runtime="onnx").predict, size),
                )
            )
        rows.append((f"cvapps {name} ({params:.2f} M params)", "keras", size, *speed(keras_model.predict, size)))
        if name == args.model:
            reference = rows[-1][-1]
            for alpha in (1.0, 0.35):
                peer = keras.applications.MobileNetV2(
                    input_shape=(size, size, 3), alpha=alpha, weights=None, classes=10
                )
                label = f"keras.applications.MobileNetV2 alpha {alpha} ({peer.count_params() / 1e6:.2f} M)"
                rows.append((label, "keras", size, *speed(peer.predict_on_batch, size)))
    print(f"\n### Model speed, {cores} CPU cores\n")
    print(
        f"| model | runtime | input | batch 1 latency (ms) | batch 32 throughput (img/s) | throughput / cvapps {args.model} keras |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for name, runtime, size, latency, throughput in rows:
        ratio = f"{throughput / reference:.2f}x" if reference else "-"
        print(f"| {name} | {runtime} | {size} | {latency:.2f} | {throughput:.0f} | {ratio} |")

    imagenet_table(keras)

    data = os.environ.get("CVAPPS_DATA")
    if not data:
        print("\nCVAPPS_DATA not set: skipping the folder and webcam measurements.")
        return
    from cvapps.classification import predict_probabilities
    from cvapps.cli.classify import ClassifyOptions, run_classify, run_webcam_classify
    from cvapps.cli.common import OutputOptions, WebcamOptions
    from cvapps.core.sources import read_image, resize_square

    per_class = max(1, args.images // 10)
    files = sorted(Path(data, "cifar10", "test").glob("*/*.jpg"))
    chosen = [f for f in files if int(f.stem) < per_class][: args.images]
    print(f"\n### Folder of {len(chosen)} CIFAR-10 test JPEGs, batch 32\n")
    print("| runtime | `cvapps classify FOLDER` (img/s) | bare model, images in memory (img/s) | pipeline / bare |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for i, f in enumerate(chosen):  # links, not copies, to the shared files
            os.symlink(f.resolve(), Path(folder) / f"{i:05d}_{f.parent.name}.jpg")
        for runtime in ("onnx", "keras"):
            model = open_model(args.model, runtime=runtime)
            options = ClassifyOptions(top_k=5)
            silent = OutputOptions(quiet=True)
            quietly(run_classify, folder, model, options, silent, batch_size=32, runtime=runtime)  # warm-up
            start = time.perf_counter()
            quietly(run_classify, folder, model, options, silent, batch_size=32, runtime=runtime)
            pipeline = len(chosen) / (time.perf_counter() - start)
            images = np.stack([resize_square(read_image(f), model.info.image_size) for f in chosen])
            start = time.perf_counter()
            predict_probabilities(model, images, 32)
            bare = len(chosen) / (time.perf_counter() - start)
            print(f"| {runtime} | {pipeline:.0f} | {bare:.0f} | {pipeline / bare:.2f} |")

    video = Path(data, "style", "videos", "fox.mp4")
    if video.is_file():
        print(f"\n### Webcam loop on {video.name}, headless (capture, resize, classify, draw)\n")
        print("| runtime | frames | FPS |")
        print("|---|---:|---:|")
        for runtime in ("onnx", "keras"):
            headless = WebcamOptions(str(video), show=False, max_frames=300, quiet=True)
            stats = quietly(run_webcam_classify, args.model, ClassifyOptions(top_k=3), headless, runtime=runtime)
            print(f"| {runtime} | {stats.frames} | {stats.fps:.1f} |")


if __name__ == "__main__":
    main()
