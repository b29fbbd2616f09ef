"""Classification speed, ours beside a peer, in one run. Prints a Markdown table for the README.

    CVAPPS_DATA=../shared/data python benchmarks/bench_classify.py [--model cifar10] [--images 1000]

Measures, on this machine:
1. latency at batch 1 and throughput at batch 32 of the shipped model and of
   ``keras.applications.MobileNetV2`` (alpha 1.0 and 0.35, random weights) at the same input size,
   both through the compiled ``predict_on_batch``;
2. ``cvapps classify`` over a folder of images (decode + resize + predict, decoding overlapped
   on a thread) against the bare model on the same images already in memory;
3. the webcam loop's FPS on the shared video file, headless.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def timed(function, repeats, warmup=3):
    """Median seconds of ``function()`` over ``repeats`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def model_speed(model, size, repeats=30):
    one = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    many = np.random.default_rng(1).uniform(0, 255, (32, size, size, 3)).astype("float32")
    latency = timed(lambda: model.predict_on_batch(one), repeats)
    batch = timed(lambda: model.predict_on_batch(many), max(5, repeats // 3))
    return latency * 1000, 32 / batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar10")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()

    import keras

    from cvapps.classification import predict_probabilities
    from cvapps.commands import run_classify
    from cvapps.models import load_model, model_info
    from cvapps.sources import read_image, resize_square

    model = load_model(args.model, task="classify")
    size = model_info(model).image_size
    rows = []
    ours = model_speed(model, size)
    rows.append((f"cvapps {args.model} ({model.count_params() / 1e6:.2f} M params)", *ours))
    for alpha in (1.0, 0.35):
        peer = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None, classes=10)
        rows.append((f"keras.applications.MobileNetV2 alpha {alpha} ({peer.count_params() / 1e6:.2f} M)", *model_speed(peer, size)))
    print(f"\n### Model speed at {size}x{size} input, compiled predict_on_batch, {os.cpu_count()} CPU cores\n")
    print("| model | batch 1 latency (ms) | batch 32 throughput (img/s) | throughput vs ours |")
    print("|---|---:|---:|---:|")
    for name, latency, throughput in rows:
        print(f"| {name} | {latency:.2f} | {throughput:.0f} | {throughput / ours[1]:.2f}x |")

    data = os.environ.get("CVAPPS_DATA")
    if not data:
        print("\nCVAPPS_DATA not set: skipping the folder and webcam measurements.")
        return
    per_class = max(1, args.images // 10)
    files = sorted(Path(data, "cifar10", "test").glob("*/*.jpg"))
    chosen = [f for f in files if int(f.stem) < per_class][: args.images]
    with tempfile.TemporaryDirectory() as folder:
        # Links, not copies: the folder the CLI walks, pointing at the shared files.
        for i, f in enumerate(chosen):
            os.symlink(f.resolve(), Path(folder) / f"{i:05d}_{f.parent.name}.jpg")
        devnull = open(os.devnull, "w")
        stdout, sys.stdout = sys.stdout, devnull
        try:
            run_classify(folder, args.model, 5, None, False, None, 32, True)  # warm-up
            start = time.perf_counter()
            run_classify(folder, args.model, 5, None, False, None, 32, True)
            pipeline = len(chosen) / (time.perf_counter() - start)
        finally:
            sys.stdout = stdout
        images = np.stack([resize_square(read_image(f), size) for f in chosen])
        start = time.perf_counter()
        predict_probabilities(model, images, 32)
        bare = len(chosen) / (time.perf_counter() - start)
    print(f"\n### Folder of {len(chosen)} CIFAR-10 test JPEGs\n")
    print("| path | img/s |")
    print("|---|---:|")
    print(f"| `cvapps classify FOLDER` (decode + resize + predict, batch 32) | {pipeline:.0f} |")
    print(f"| bare model on the same images in memory (batch 32) | {bare:.0f} |")
    print(f"| pipeline / bare | {pipeline / bare:.2f} |")

    video = Path(data, "style", "videos", "fox.mp4")
    if video.is_file():
        from cvapps.commands import run_webcam_classify

        stdout, sys.stdout = sys.stdout, devnull
        try:
            stats = run_webcam_classify(str(video), args.model, 3, False, None, False, 300, True)
        finally:
            sys.stdout = stdout
        print(f"\n### Webcam loop on {video.name}, headless\n")
        print(f"{stats.frames} frames, {stats.fps:.1f} FPS (capture, resize, classify, draw)")


if __name__ == "__main__":
    main()
